"""The isolated worker: ``python -I -S -B -c BOOT READ_FD WRITE_FD EVENT_FD FOLDER...`` (see ``command``).

It reads the host's ``Setup``, restricts itself (``_confine``) before importing anything that could start
a thread, answers ``Hello`` with what it enforces, then imports the extension (``Load``) and serves its
methods until ``Stop`` (or answers ``ConfigQuery`` about its config model without loading it). What
the extension publishes goes to the host on EVENT_FD, a pipe of its own, so an event sent from any
thread never interleaves with a reply.

The interpreter starts without the ``site`` module: no ``.pth`` file of any installed distribution runs,
and nothing but the standard library and the FOLDERs that hold the core and msgspec is importable until
the restrictions hold. Only then does the worker take the import path the host resolved for it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import pkgutil
import sys
import threading
import traceback
from collections.abc import Awaitable
from typing import Any

import msgspec

from symphony_core._model._crossing import error_name
from symphony_core._model._errors import SymphonyError

from ._bulk import Codec
from ._confine import confine
from ._protocol import (
    PROTOCOL,
    Call,
    Channel,
    ConfigQuery,
    Event,
    Failure,
    Hello,
    Load,
    Message,
    Ping,
    ProtocolViolation,
    Reply,
    Setup,
    Stop,
)


class _Publisher:
    """``Context.publish`` in a worker: one event per frame on the event pipe, from any thread."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self.sent = 0
        """Events sent so far: each answer says how many, so the host delivers them before it returns."""

    def __call__(self, name: str, data: Any = None) -> bool:
        if not isinstance(name, str):
            raise TypeError(f"an event's name is a str, not {type(name).__name__}")
        with self._lock:
            try:
                self._channel.send(Event(name=name, data=data))
            except ProtocolViolation:
                return False  # the host went away
            self.sent += 1
        return True


class _Uncached:
    """The source files of modules imported since the last call whose bytecode the host's cache lacks."""

    def __init__(self) -> None:
        self.seen = set(sys.modules)
        self.count = len(sys.modules)

    def __call__(self) -> list[str]:
        if len(sys.modules) == self.count:
            return []
        self.count = len(sys.modules)
        found: list[str] = []
        for name, module in list(sys.modules.items()):
            if name in self.seen:
                continue
            self.seen.add(name)
            spec = getattr(module, "__spec__", None)
            origin, cached = getattr(spec, "origin", None), getattr(spec, "cached", None)
            if not (isinstance(origin, str) and origin.endswith(".py") and isinstance(cached, str)):
                continue
            if not os.path.exists(cached):
                found.append(origin)
        return found


class _Server:
    """Serves one extension's requests, one at a time, in this process."""

    def __init__(
        self, channel: Channel, codec: Codec, publish: _Publisher, uncached: _Uncached | None = None
    ) -> None:
        self.channel = channel
        self.codec = codec
        self.publish = publish
        self.uncached = uncached
        self.extension: str | None = None
        self.instance: Any = None
        self._loop: Any = None

    def serve(self) -> int:
        while True:
            try:
                message = self.channel.receive()
            except ProtocolViolation:
                return 0  # the host went away
            self.codec.release()
            if isinstance(message, Stop):
                self._answer(message.id, self._stop)
                return 0
            if isinstance(message, Load):
                self._answer(message.id, lambda message=message: self._load(message))
            elif isinstance(message, Call):
                self._answer(message.id, lambda message=message: self._call(message))
            elif isinstance(message, ConfigQuery):
                self._answer(message.id, lambda message=message: self._config(message))
            elif isinstance(message, Ping):
                self.channel.send(Reply(id=message.id))
            else:
                self.channel.send(
                    _failure(0, ProtocolViolation(f"unexpected {type(message).__name__}"), None)
                )

    def _answer(self, request: int, work: Any) -> None:
        try:
            value = work()
            reply: Message = Reply(
                id=request,
                value=value,
                uncached=self.uncached() if self.uncached else [],
                events=self.publish.sent,
            )
            self.channel.send(reply)
        except ProtocolViolation:
            raise
        except BaseException as exc:  # noqa: BLE001 - every failure of extension code goes back to the host
            failure = _failure(request, exc, self.extension)
            failure.events = self.publish.sent
            self.channel.send(failure)

    def _load(self, request: Load) -> list[str]:
        from symphony_core._model._extension import Context, Extension

        self.extension = request.extension
        sys.path[:0] = [folder for folder in request.path if folder not in sys.path]
        target = _resolve(request.entry_point)
        if not (isinstance(target, type) and issubclass(target, Extension)):
            raise TypeError(
                f"entry point '{request.entry_point}' names {target!r}, which is not an extension class"
            )
        config = None
        reference = request.manifest.get("config")
        if isinstance(reference, str):
            from symphony_core._store._config import load_config
            from symphony_core._store._home import Home

            resolved = load_config(
                _resolve(reference),
                request.extension,
                home=Home(_path(request.home)),
                overrides=request.config_overrides,
                environ=request.config_environ,
            )
            config = resolved.config
        context = Context(
            id=request.extension,
            version=request.version,
            manifest=request.manifest,
            config=config,
            data_dir=_path(request.data_dir),
            cache_dir=_path(request.cache_dir),
            logger=logging.getLogger(f"symphony.ext.{request.extension}"),
            publish=self.publish,
        )
        instance = target()
        self._settle(instance.activate(context))
        self.instance = instance
        return _methods(target)

    def _config(self, request: ConfigQuery) -> Any:
        from symphony_core._model._errors import ConfigError
        from symphony_core._store._config import Config, config_schema, load_config, public_dump
        from symphony_core._store._home import Home

        self.extension = self.extension or request.extension
        sys.path[:0] = [folder for folder in request.path if folder not in sys.path]
        model = _resolve(request.reference)
        if not (isinstance(model, type) and issubclass(model, Config)):
            raise ConfigError(
                f"the manifest's config '{request.reference}' is not a Config class",
                extension=request.extension,
                hint="derive it from the Config class that the extension's kit exports",
            )
        if request.schema:
            return config_schema(model)
        resolved = load_config(
            model,
            request.extension,
            home=Home(_path(request.home)),
            overrides=request.overrides,
            environ=request.environ,
        )
        sources = {key: [source.layer, source.where] for key, source in resolved.sources.items()}
        return {"config": public_dump(resolved.config), "sources": sources}

    def _call(self, request: Call) -> Any:
        if self.instance is None:
            raise RuntimeError("the extension is not loaded")
        if request.method.startswith("_") or request.method in ("activate", "deactivate"):
            raise AttributeError(f"'{request.method}' is not a callable method of the extension")
        function = getattr(self.instance, request.method, None)
        if not callable(function):
            raise AttributeError(f"the extension has no method '{request.method}'")
        return self.codec.result(self._settle(function(*request.args, **request.kwargs)))

    def _stop(self) -> None:
        if self.instance is not None:
            instance, self.instance = self.instance, None
            self._settle(instance.deactivate())

    def _settle(self, result: Any) -> Any:
        """Run a coroutine result to completion on the worker's own event loop."""
        if not isinstance(result, Awaitable):
            return result
        import asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()

        async def wait() -> Any:
            return await result

        return self._loop.run_until_complete(wait())


def _methods(target: type) -> list[str]:
    """The public methods the host may call (looked up on the class: no property runs)."""
    hidden = {"activate", "deactivate"}
    return sorted(
        name
        for name in dir(target)
        if not name.startswith("_") and name not in hidden and callable(getattr(target, name))
    )


def _failure(request: int, exc: BaseException, extension: str | None) -> Failure:
    """An exception as data: its class name, message, hint and traceback; for a Symphony error also the
    registered name of its nearest class that may cross, its problems and its declared data."""
    cls = type(exc)
    failure = Failure(
        id=request,
        type=f"{cls.__module__}.{cls.__qualname__}",
        message=str(exc),
        errno=exc.errno if isinstance(exc, OSError) else None,
        extension=extension,
        traceback="".join(traceback.format_exception(exc)),
        builtin=next((c.__name__ for c in cls.__mro__ if c.__module__ == "builtins"), None),
    )
    if isinstance(exc, SymphonyError):
        failure.message = exc.summary
        failure.hint = exc.hint
        failure.extension = exc.extension or extension
        failure.symphony = error_name(cls)
        failure.problems = [(p.location, p.message, p.code) for p in exc.problems]
        failure.data = {name: _plain(value) for name, value in exc.data().items()}
    return failure


def _plain(value: Any) -> Any:
    """``value`` as msgpack-ready plain data, or None when it is not plain data (it is then not sent)."""
    try:
        return msgspec.to_builtins(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _resolve(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    return pkgutil.resolve_name(f"{module_name.strip()}:{attribute.strip()}")


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text)


BOOT = (
    "import sys; sys.path += sys.argv[4:]; from symphony_core._security._sandbox._worker import main; "
    "sys.exit(main(sys.argv[:4]))"
)
"""The worker's ``-c`` program: with no ``site`` module, the folders holding the core come as arguments."""


def command(executable: str, bytecode: str, fds: tuple[int, int, int], folders: list[str]) -> list[str]:
    """The worker's command line (``bytecode``: the host-written cache of what it imports unrestricted)."""
    head = [executable, "-I", "-S", "-B", "-X", f"pycache_prefix={bytecode}", "-c", BOOT]
    return [*head, *map(str, fds), *folders]


class _Packages(importlib.abc.MetaPathFinder):
    """Finds the top-level packages the host located outside the import path (editable installs), by name."""

    def __init__(self, locations: dict[str, str]) -> None:
        self.locations = locations

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        location = self.locations.get(name)
        if location is None:
            return None
        if os.path.isdir(location):
            init = os.path.join(location, "__init__.py")
            return importlib.util.spec_from_file_location(name, init, submodule_search_locations=[location])
        return importlib.util.spec_from_file_location(name, location)


def main(argv: list[str]) -> int:
    read_fd, write_fd = int(argv[1]), int(argv[2])
    event_fd = int(argv[3]) if len(argv) > 3 else None  # a host of protocol 1 passes none: refused below
    codec = Codec(side="worker", exchange="", inline_limit=1 << 18)
    channel = Channel(read_fd, write_fd, enc_hook=codec.encode, ext_hook=codec.decode)
    setup = channel.receive()
    if not isinstance(setup, Setup) or setup.protocol != PROTOCOL:
        got = setup.protocol if isinstance(setup, Setup) else type(setup).__name__
        channel.send(
            _failure(0, ProtocolViolation(f"this worker speaks protocol {PROTOCOL}, not {got}"), None)
        )
        return 2
    if event_fd is None:
        channel.send(_failure(0, ProtocolViolation("the host gave this worker no event pipe"), None))
        return 2
    try:
        enforced, skipped = confine(setup.profile)
    except OSError as exc:  # a restriction that cannot be applied: refuse to run rather than run without it
        channel.send(_failure(0, exc, None))
        return 3
    if setup.profile.only_import_path:  # what it booted from stays imported, and leaves the path
        sys.path[:] = [folder for folder in sys.path if folder not in sys.argv[4:]]
    sys.path += [folder for folder in setup.profile.import_path if folder not in sys.path]
    sys.meta_path.insert(0, _Packages(dict(setup.profile.packages)))
    if setup.profile.bytecode:  # the host's cache, read-only: modules imported from now on load from it
        sys.pycache_prefix = setup.profile.bytecode
    elif setup.profile.pycache:  # only modules imported from now on, restricted, read or write it
        sys.pycache_prefix = setup.profile.pycache
        sys.dont_write_bytecode = False
    codec.exchange = setup.profile.exchange
    codec.inline_limit = setup.inline_limit
    sys.stdout = sys.stderr  # fd 1 is the host's log pipe already; keep print() out of any buffering surprise
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    pid = int(os.readlink("/proc/self"))  # as the host sees it: in its own PID namespace it is 1
    channel.send(Hello(protocol=PROTOCOL, pid=pid, enforced=enforced, skipped=skipped))
    # events carry JSON-ready data only: no bulk values, so nothing of them lands in shared memory
    events = Channel(event_fd, event_fd)
    uncached = _Uncached() if setup.profile.bytecode else None
    return _Server(channel, codec, _Publisher(events), uncached).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
