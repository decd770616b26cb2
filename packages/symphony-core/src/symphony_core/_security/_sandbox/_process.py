"""One isolated worker process, seen from the host: start it, call it, stop it, say why it died."""

from __future__ import annotations

import atexit
import builtins
import collections
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from symphony_core._model._crossing import error_class
from symphony_core._model._errors import (
    ErrorDetail,
    ProtocolError,
    RemoteError,
    SandboxUnavailable,
    SymphonyError,
    WorkerCrashed,
    WorkerTimeout,
)
from symphony_core._model._kinds import KINDS
from symphony_core._store._home import Home

from . import _bytecode, _protocol, _quota
from ._bulk import Codec
from ._cgroups import Cgroups, alive
from ._observe import only_child, verify_claims
from ._probe import probe
from ._profile import WorkerSpec, config_environ, environment_for, interpreter_folders, profile_for
from ._protocol import (
    EVENT_FRAME,
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
    reply_limit,
)
from ._worker import command as worker_command

log = logging.getLogger("symphony.worker")
logging.getLogger("symphony").addHandler(
    logging.NullHandler()
)  # the embedding application decides what shows
EVENTS_WAIT = 1.0
"""Longest a call waits, after its answer, for the events the worker published before answering."""
POLL_LIMIT = 0.002
"""Longest a loop looks for a worker's answer on each of its turns before sleeping until the pipe wakes
it (seconds): a call that usually takes longer is slept through from the start."""
_STDERR_KEPT = 64
_STDERR_LINE = 8 << 10
"""Bytes of one line of a worker's standard error that the host keeps; the rest of the line is cut."""
_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}
_SHM = "/dev/shm"
_WORKER = "symphony_core._security._sandbox._worker"


class WorkerProcess:
    """A running worker: restricted, with the extension imported and activated once ``start`` returns.

    One request at a time (calls from several threads take turns). Every wait has a time-out; a worker that
    overruns one is killed, since it cannot be trusted to stop on its own.
    """

    def __init__(self, spec: WorkerSpec, on_publish: Callable[[str, Any], object] | None = None) -> None:
        self.spec = spec
        self.on_publish = on_publish
        """Called with each event the extension publishes (name, data), on the worker's event thread."""
        self.enforced: dict[str, str] = {}
        """Mechanism: what this worker enforces, as it reported after restricting itself (plus the host's
        cgroups)."""
        self.skipped: list[str] = []
        self.notes: list[str] = []
        self.methods: tuple[str, ...] = ()
        """The extension's public methods, as its worker found them once it was activated."""
        self.started = time.monotonic()
        self.process: subprocess.Popen[bytes] | None = None
        self._channel: Channel | None = None
        self._cgroups: Cgroups | None = None
        self._exchange: str | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_KEPT)
        self._drain: threading.Thread | None = None
        self._events: threading.Thread | None = None
        self._delivered = 0
        """Events of the worker handed to ``on_publish`` (or refused by it) so far."""
        self._delivery = threading.Condition()
        self._lock = threading.RLock()  # held for each request; kill() from that thread may take it again
        self._typical = 0.0
        """How long a loop's calls of this worker took lately (seconds, smoothed); 0 while untimed."""
        self._on_loop = False
        """An event loop's request (`acall`) holds ``_lock`` on the loop's thread: that thread may not
        take it again, nor close the pipes under the request."""
        self._next = 0
        self._dead: WorkerCrashed | None = None
        self._pidfd: int | None = None
        self._extension_pid: int | None = None
        self._bytecode_roots: tuple[str, ...] = ()
        """Where the sources lie whose bytecode this worker's answers may ask the host to compile."""
        self._judged = 0
        """Module files this worker named so far (at most ``_bytecode.MAX_JUDGED`` are looked at)."""

    @property
    def pid(self) -> int | None:
        """The process that runs the extension, as the host sees it."""
        if self._extension_pid is not None:
            return self._extension_pid
        return None if self.process is None else self.process.pid

    @property
    def alive(self) -> bool:
        return self._dead is None and self.process is not None and self.process.poll() is None

    @property
    def died(self) -> WorkerCrashed | None:
        """Why the worker is dead, once the host knows (a crash, a time-out, its disk quota)."""
        return self._dead

    @classmethod
    def start(
        cls,
        spec: WorkerSpec,
        *,
        timeout: float = 60.0,
        on_publish: Callable[[str, Any], object] | None = None,
        load: bool = True,
    ) -> WorkerProcess:
        """Start a worker for ``spec`` and wait until it is ready (restricted, extension activated).

        ``on_publish`` receives what the extension publishes, from its activation on. Without ``load`` the
        worker is only restricted: the extension is neither imported nor activated (see `config`).
        """
        worker = cls(spec, on_publish)
        try:
            worker._spawn(timeout)
            _quota.watch(worker)
            if not load:
                return worker
            methods = worker._request(
                Load(
                    id=worker._id(),
                    extension=spec.extension,
                    version=spec.version,
                    entry_point=spec.entry_point,
                    manifest=dict(spec.manifest),
                    data_dir=str(spec.data_dir),
                    cache_dir=str(spec.cache_dir),
                    path=list(spec.path),
                    config_overrides=dict(spec.config_overrides),
                    config_environ=config_environ(spec),
                    home=str(spec.home.root),
                ),
                timeout,
                "load",
            )
        except BaseException:
            worker.kill()
            raise
        worker.methods = tuple(methods or ())
        return worker

    def call(
        self,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = 30.0,
    ) -> Any:
        """Call ``method`` of the extension in the worker and return its result."""
        return self._request(
            Call(id=self._id(), method=method, args=list(args), kwargs=kwargs or {}), timeout, method
        )

    async def acall(
        self,
        method: str,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        timeout: float | None = 30.0,
    ) -> Any:
        """`call` on the running event loop: the request is written and its answer read by the loop
        itself, with no thread woken on the way. What goes wrong (a crash, a time-out, a broken answer) is
        handled on a thread, since it may wait for the worker's end; the loop never waits for the worker.

        Cancelled while the worker runs the call, the worker is killed: its answer would be out of turn.
        """
        import asyncio

        if self._on_loop or not self._lock.acquire(blocking=False):  # in use: wait for its turn on a thread
            return await asyncio.to_thread(self.call, method, args, kwargs, timeout=timeout)
        message = Call(id=self._id(), method=method, args=list(args), kwargs=kwargs or {})
        channel = self._channel
        self._on_loop = True
        failed: BaseException | None = None
        try:
            if self._dead is not None or channel is None or self.process is None:
                failed = ProtocolViolation("")
            else:
                started = time.monotonic()
                answer = await channel.exchange(message, timeout, poll=self._poll_window())
                self._took(time.monotonic() - started)
        except (TimeoutError, ProtocolViolation) as exc:
            failed = exc
        except BaseException:  # cancelled, or an interrupt: the worker still runs the call, so it ends
            self._dead = self._dead or WorkerCrashed(
                f"was stopped: its caller gave up on {method} before the answer",
                extension=self.spec.extension,
                hint="a new worker takes the next call",
            )
            self._release_loop()
            threading.Thread(target=self.kill, name="symphony-worker-kill", daemon=True).start()
            raise
        self._release_loop()
        if failed is not None:
            raise await asyncio.to_thread(self._failed, failed, timeout, method)
        if _quota.due(self):
            await asyncio.to_thread(_quota.check, self)
        if isinstance(answer, (Reply, Failure)) and answer.events > self._delivered:
            await asyncio.to_thread(self._await_events, answer.events)
        if (isinstance(answer, Reply) and answer.id == message.id and not answer.uncached) or isinstance(
            answer, Failure
        ):
            return self._answered(message, answer)  # the worker's result, or its error rebuilt: no waiting
        return await asyncio.to_thread(self._answered, message, answer)

    def _poll_window(self) -> float:
        """How long a loop looks for this worker's answer before sleeping (0: not at all).

        Looking saves the answer a wake-up when a core is to spare, and would take the worker's core
        when none is: so only while fewer threads are runnable than this process has cores. A loop
        looks for half again as long as its calls of this worker took lately, and only for calls that
        took under ``POLL_LIMIT`` / 1.5 (a longer call is slept through)."""
        expected = self._typical
        if expected > POLL_LIMIT / 1.5 or not _core_to_spare():
            return 0.0
        return 1.5 * expected if expected else POLL_LIMIT  # never timed: look, and learn how long it takes

    def _took(self, seconds: float) -> None:
        self._typical = seconds if not self._typical else 0.8 * self._typical + 0.2 * seconds

    def _release_loop(self) -> None:
        self._on_loop = False
        self._lock.release()

    def config(
        self,
        reference: str,
        *,
        schema: bool = False,
        overrides: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """The extension's config model ``reference`` as resolved in the worker: its JSON Schema (``schema``),
        or ``{"config": ..., "sources": {key: [layer, where]}}`` with secrets masked."""
        spec = self.spec
        query = ConfigQuery(
            id=self._id(),
            extension=spec.extension,
            reference=reference,
            schema=schema,
            path=list(spec.path),
            home=str(spec.home.root),
            overrides=dict(spec.config_overrides if overrides is None else overrides),
            environ=config_environ(spec),
        )
        return self._request(query, timeout, "config")

    def ping(self, timeout: float = 5.0) -> None:
        """A round trip that runs no extension code."""
        self._request(Ping(id=self._id()), timeout, "ping")

    def stop(self, timeout: float = 10.0) -> None:
        """Run the extension's ``deactivate``, let the worker exit, and clean up; kill it if it lingers."""
        try:
            if self.alive:
                self._request(Stop(id=self._id()), timeout, "deactivate")
                assert self.process is not None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill the worker and whatever it started, and remove its cgroups and exchange folder."""
        _LIVE.discard(self)
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)  # its group: what it started, without cgroups too
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        if self._cgroups is not None:
            self._cgroups.close()
        # A thread waiting for this worker's answer is using the pipes: it sees them end (the worker is dead)
        # and closes them itself; closing them under it could hand their numbers to another file.
        if not self._on_loop and self._lock.acquire(blocking=False):
            try:
                if self._channel is not None:
                    self._channel.close()
                    self._channel = None
                if self._pidfd is not None:  # like the pipes: its number, reused, could name another process
                    os.close(self._pidfd)
                    self._pidfd = None
            finally:
                self._lock.release()
        for reader in (self._drain, self._events):
            if reader is not None and reader is not threading.current_thread():
                reader.join(5.0)
        if self._exchange is not None:
            shutil.rmtree(self._exchange, ignore_errors=True)
            self._exchange = None

    def abort(self, reason: WorkerCrashed) -> None:
        """Kill the worker for a reason the host found outside it (its disk quota): a request waiting on
        it, and every later one, raises ``reason``."""
        if self._dead is None:
            self._dead = reason
        self.kill()

    def stderr(self) -> str:
        """The last lines the worker wrote to its standard error (extension logs, tracebacks)."""
        return "".join(self._stderr)

    # Internals

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _spawn(self, timeout: float) -> None:
        capabilities = probe()
        spec = self.spec
        if not capabilities.supported:
            raise SandboxUnavailable(
                f"isolated workers need Linux; this is {capabilities.platform}",
                extension=spec.extension,
                hint="run the extension under the in-process guard, and only if you trust it",
            )
        for folder in (spec.data_dir, spec.cache_dir, spec.tmp_dir, spec.cache_dir / "polars-spill"):
            folder.mkdir(parents=True, exist_ok=True)
        _quota.refuse_if_over(spec)
        shm = _SHM if os.path.isdir(_SHM) else tempfile.gettempdir()
        _sweep_exchanges(shm)
        self._exchange = tempfile.mkdtemp(prefix=f"symphony-{os.getpid()}-", dir=shm)
        profile = profile_for(spec, self._exchange)
        self.notes = list(profile.notes)
        limits = spec.limits
        self._cgroups = Cgroups.create(spec.extension, memory=limits.memory, tasks=limits.tasks)
        from_host, to_worker = os.pipe()
        from_worker, to_host = os.pipe()
        log_read, log_write = os.pipe()
        events_read, events_write = os.pipe()
        bytecode = _bytecode.boot(
            _bytecode.folder(spec.home), sys.executable, tuple(_boot_folders()), _WORKER
        )
        if profile.bytecode:
            _bytecode.forget_own(spec.cache_dir)
            roots = [*interpreter_folders(), *profile.import_path, *profile.packages.values()]
            self._bytecode_roots = tuple(dict.fromkeys([*roots, *map(os.path.realpath, roots)]))
        command = worker_command(
            sys.executable, bytecode, (from_host, to_host, events_write), _boot_folders()
        )
        try:
            self.process = (
                _spawner()
                .submit(
                    subprocess.Popen,
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log_write,
                    stderr=log_write,
                    pass_fds=(from_host, to_host, events_write),
                    env=environment_for(spec),
                    cwd=spec.tmp_dir,
                    start_new_session=True,  # no terminal: Ctrl-C reaches the host, which stops workers itself
                )
                .result()
            )
            _LIVE.add(self)
            # the one process whose memfds the host takes and whose restrictions it checks
            self._pidfd = os.pidfd_open(self.process.pid)
        finally:
            for fd in (from_host, to_host, log_write, events_write):
                os.close(fd)
        self._drain = threading.Thread(
            target=self._read_stderr,
            args=(log_read,),
            name=f"symphony-worker-log-{spec.extension}",
            daemon=True,
        )
        self._drain.start()
        self._events = threading.Thread(
            target=self._read_events,
            args=(events_read,),
            name=f"symphony-worker-events-{spec.extension}",
            daemon=True,
        )
        self._events.start()
        codec = Codec(
            side="host",
            exchange=self._exchange,
            inline_limit=spec.inline_limit,
            peer_pidfd=self._pidfd,
            kit=_kit(spec),
        )
        self._channel = Channel(
            from_worker,
            to_worker,
            enc_hook=codec.encode,
            ext_hook=codec.decode,
            max_frame=reply_limit(spec.inline_limit),
            nonblocking=True,
        )
        try:
            self._cgroups.add(self.process.pid)  # before the worker runs anything but the interpreter's start
        except OSError as exc:
            self._cgroups.problems["join"] = f"the worker could not join its cgroups: {exc.strerror}"
            self._cgroups.close()
            self._cgroups.enforced.clear()
        setup = Setup(
            protocol=PROTOCOL, host_pid=os.getpid(), profile=profile, inline_limit=spec.inline_limit
        )
        hello = self._exchange_message(setup, timeout, "start")
        if isinstance(hello, Failure):
            raise WorkerCrashed(
                f"the worker could not restrict itself: {hello.message}",
                extension=spec.extension,
                hint="`symphony doctor` shows what this machine can enforce",
            )
        if not isinstance(hello, Hello) or hello.protocol != PROTOCOL:
            raise ProtocolError(
                f"the worker answered {type(hello).__name__} with protocol "
                f"{getattr(hello, 'protocol', '?')}, expected Hello with protocol {PROTOCOL}",
                extension=spec.extension,
                hint="the worker runs the same interpreter as the host: reinstall symphony-sdk-core",
            )
        self._follow_into_namespace(codec)
        self.enforced = dict(hello.enforced)
        self.enforced["verified"] = verify_claims(self._pidfd, hello.enforced, spec.extension)
        for controller, text in self._cgroups.enforced.items():
            self.enforced[f"cgroup_{controller}"] = text
        for controller, text in self._cgroups.problems.items():
            self.enforced[f"cgroup_{controller}"] = f"NOT enforced: {text}"
        self.skipped = list(hello.skipped)

    def _follow_into_namespace(self, codec: Codec) -> None:
        """Point the pidfd at the process that runs the extension: process 2 of the worker's own PID
        namespace, under its process 1, under the process the host started (found by the host, never
        taken from what the worker says)."""
        assert self.process is not None
        process_one = only_child(self.process.pid)
        inner = None if process_one is None else only_child(process_one)
        if inner is None:
            return  # no PID namespace could be made: the process the host started runs the extension
        self._extension_pid = inner
        pidfd = os.pidfd_open(inner)
        if self._pidfd is not None:
            os.close(self._pidfd)
        self._pidfd = codec.peer_pidfd = pidfd

    def _request(self, message: Message, timeout: float | None, what: str) -> Any:
        with self._lock:
            if self._on_loop:
                raise RuntimeError(
                    "a blocking call of a worker from the thread of the loop that is calling it"
                )
            answer = self._exchange_message(message, timeout, what)
        _quota.check(self)  # a request that took it over its disk quota fails, and the worker dies
        if isinstance(answer, (Reply, Failure)):
            self._await_events(answer.events)
        return self._answered(message, answer)

    def _answered(self, message: Message, answer: Message) -> Any:
        """The result of a request from the worker's answer, or the error it stands for."""
        if isinstance(answer, Reply) and answer.id == getattr(message, "id", None):
            if answer.uncached and self._bytecode_roots and self._judged < _bytecode.MAX_JUDGED:
                self._judged += min(len(answer.uncached), _bytecode.MAX_REPORTED)
                found = _bytecode.shareable(answer.uncached, self._bytecode_roots)
                _bytecode.COMPILER.submit(sys.executable, _bytecode.folder(self.spec.home), found)
            return answer.value
        if isinstance(answer, Failure):
            raise _remote(answer, self.spec.extension, _kit(self.spec))
        self.kill()
        raise ProtocolError(
            f"the worker answered {type(answer).__name__} out of turn",
            extension=self.spec.extension,
            hint="the worker was stopped; it is restarted on the next call",
        )

    def _exchange_message(self, message: Message, timeout: float | None, what: str) -> Message:
        if self._dead is not None:
            raise self._dead
        if self._channel is None or self.process is None:
            raise self._crashed(what)
        started = time.monotonic()
        try:
            self._channel.send(message, timeout)
            return self._channel.receive(None if timeout is None else timeout - (time.monotonic() - started))
        except (TimeoutError, ProtocolViolation) as exc:
            raise self._failed(exc, timeout, what) from None

    def _failed(self, exc: BaseException, timeout: float | None, what: str) -> SymphonyError:
        """The error for an exchange that failed with ``exc``; a worker that overran ``timeout`` is killed."""
        if not isinstance(exc, TimeoutError):
            return self._crashed(what, str(exc))
        self.kill()
        self._dead = WorkerCrashed(
            f"was killed after its {what} overran {timeout:g} s",
            extension=self.spec.extension,
            hint="a new worker takes the next call; fix the extension, or give the call more time",
        )
        return WorkerTimeout(
            f"{what} did not finish within {timeout:g} s; its worker was killed",
            extension=self.spec.extension,
            hint="fix the extension, or give the call more time",
        )

    def _crashed(self, what: str, detail: str = "") -> WorkerCrashed:
        """Wait for the worker's end (briefly), describe it, and keep that as the reason it is dead."""
        if self._dead is not None:
            self.kill()  # killed from another thread (``abort``), which had to leave the pipes to this one
            return self._dead
        code = None
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.wait(2.0)
        oom = self._cgroups.oom_kills() if self._cgroups is not None else 0
        if self._drain is not None:
            self._drain.join(1.0)
        self.kill()
        how = _describe_exit(code)
        if oom:
            how += f", over its memory limit ({self.spec.limits.memory:,} bytes)"
        elif code == -signal.SIGXCPU:
            how += f", out of CPU time ({self.spec.limits.cpu_seconds} s)"
        if code is None and detail:
            how = detail
        tail = self.stderr().strip()
        self._dead = WorkerCrashed(
            f"its worker died during {what}: {how}" + (f"\n{_indent(tail)}" if tail else ""),
            extension=self.spec.extension,
            hint="the worker is restarted on the next call; an extension that keeps crashing is quarantined",
            exit_code=code,
            stderr=tail,
        )
        return self._dead

    def _await_events(self, sent: int) -> None:
        """Wait until the events the worker says it sent before answering were handed to the subscribers
        (at most ``EVENTS_WAIT`` seconds: the number is the worker's word), so that a call returns after
        what it published was delivered, as in one process."""
        events = self._events
        with self._delivery:
            self._delivery.wait_for(
                lambda: self._delivered >= sent or events is None or not events.is_alive(), EVENTS_WAIT
            )

    def _read_events(self, fd: int) -> None:
        """Hand each event the worker publishes to ``on_publish``, until the worker's end closes the pipe.

        Anything but a well-formed event ends the reading (the worker is not trusted to speak well); a
        failing subscriber is logged and the next event still delivered.
        """
        channel = Channel(fd, fd, max_frame=EVENT_FRAME)
        try:
            while True:
                try:
                    event = channel.receive()
                except ProtocolViolation as exc:
                    if "closed the pipe" not in str(exc):
                        log.warning("%s: its events are no longer read: %s", self.spec.extension, exc)
                    return
                if not isinstance(event, Event):
                    log.warning(
                        "%s: its events are no longer read: it sent %s on its event pipe",
                        self.spec.extension,
                        type(event).__name__,
                    )
                    return
                if self.on_publish is not None:
                    try:
                        self.on_publish(event.name, event.data)
                    except Exception:
                        log.exception("%s: a subscriber failed on event %r", self.spec.extension, event.name)
                with self._delivery:
                    self._delivered += 1
                    self._delivery.notify_all()
        finally:
            channel.close()
            with self._delivery:
                self._delivery.notify_all()  # no more events: nobody waits for them

    def _read_stderr(self, fd: int) -> None:
        """Log each line the worker writes to its standard error, and keep the last ``_STDERR_KEPT``.

        Read in chunks, never a line at a time: the worker decides how long its lines are, the host how much
        of one it holds (``_STDERR_LINE`` bytes, the rest cut and counted); control characters are removed.
        """

        def keep(raw: bytes, cut: int) -> None:
            line = _printable(raw.decode("utf-8", "replace"), _STDERR_LINE)
            line += f" [{cut:,} more bytes cut]" if cut else ""
            self._stderr.append(line + "\n")
            severity = _LEVELS.get(line.partition(" ")[0], logging.INFO)
            log.log(severity, "%s: %s", self.spec.extension, line.rstrip())

        held, cut = b"", 0
        try:
            while chunk := os.read(fd, 1 << 16):
                for n, piece in enumerate(chunk.split(b"\n")):
                    if n:  # a newline ended the line held so far
                        keep(held, cut)
                        held, cut = b"", 0
                    room = _STDERR_LINE - len(held)
                    held, cut = held + piece[:room], cut + max(0, len(piece) - room)
            if held or cut:
                keep(held, cut)
        finally:
            os.close(fd)


def prepare(home: Home) -> bool:
    """Do what the first worker a process starts would otherwise pay for: probe what the kernel can
    enforce, remove what dead hosts left in the exchange folder, write the bytecode of what a worker
    imports before it is restricted (a child process, once per home), read the protocol's messages into
    msgspec, and start the spawner thread.
    Whether this machine can run workers at all (False: nothing was done)."""
    if not probe().supported:
        return False
    _sweep_exchanges(_SHM if os.path.isdir(_SHM) else tempfile.gettempdir())
    _bytecode.boot(_bytecode.folder(home), sys.executable, tuple(_boot_folders()), _WORKER)
    _protocol.prepare()
    _spawner()
    return True


_LIVE: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()
_EXCHANGE = re.compile(r"symphony-(\d+)-")


@atexit.register
def _kill_all() -> None:
    """At exit, kill the workers still running, and remove their cgroups and exchange folders."""
    for worker in list(_LIVE):
        worker.kill()


@functools.cache
def _sweep_exchanges(folder: str) -> None:
    """Remove the exchange folders of hosts that died without removing them (once per process)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _EXCHANGE.match(entry.name)
            if match and entry.is_dir(follow_symlinks=False) and not alive(int(match.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)


_SPARE_CHECKED = 0.05
"""Seconds a reading of the machine's runnable threads stands for (`_core_to_spare`)."""
_spare_read_at, _spare = -1.0, False


def _core_to_spare() -> bool:
    """Whether fewer threads are runnable on the machine than this process may use cores (the kernel's
    count in ``/proc/loadavg``, read at most every ``_SPARE_CHECKED`` seconds): then a loop that looks
    for a worker's answer takes no core the worker needs."""
    global _spare_read_at, _spare
    now = time.monotonic()
    if now - _spare_read_at < _SPARE_CHECKED:
        return _spare
    try:
        with open("/proc/loadavg", "rb") as file:
            runnable = int(file.read().split()[3].partition(b"/")[0])
        spare = runnable < len(os.sched_getaffinity(0))
    except (OSError, ValueError, IndexError):
        spare = False
    _spare_read_at, _spare = now, spare
    return spare


@functools.cache
def _spawner() -> ThreadPoolExecutor:
    """The one thread that starts every worker.

    A worker asks the kernel to kill it when its parent goes (``PR_SET_PDEATHSIG``), and for the kernel
    the parent is the *thread* that started it. Starting workers from this thread, which lives as long as
    the host process, keeps a worker from dying with a short-lived caller thread, and still ends it with
    the host.
    """
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="symphony-spawner")


@functools.cache
def _boot_folders() -> list[str]:
    """The folders a worker imports the core and msgspec from before it is restricted (it has no ``site``)."""
    import msgspec

    from ._profile import CORE_FOLDER

    folders = (
        os.path.dirname(CORE_FOLDER),
        os.path.dirname(os.path.dirname(os.path.realpath(msgspec.__file__))),
    )
    return list(dict.fromkeys(folders))


_MESSAGE_KEPT, _TYPE_KEPT, _TRACEBACK_KEPT = 4 << 10, 256, 64 << 10
_PROBLEMS_KEPT, _DATA_KEPT = 100, 100
"""Problems of one error, and items of one of its data values (a list or dict), that the host keeps."""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters but newline and tab: what a terminal acts on (cursor moves, colours, titles)."""


def _remote(failure: Failure, extension: str, kit: str | None = None) -> SymphonyError:
    """The host-side error for a failure reported by the worker: always blamed on ``extension`` (the
    worker's own), its texts bounded and cleared of control characters, its hint marked as the
    extension's words. The class is the one registered under the name the worker sent
    (``_crossing.ERRORS_FROM_WORKERS``; ``kit``, the extension's kit, is imported to look the name up),
    rebuilt with its problems and declared data; any other failure is a ``RemoteError``."""
    message = _printable(failure.message, _MESSAGE_KEPT)
    hint = f"the extension says: {_printable(failure.hint, _MESSAGE_KEPT)}" if failure.hint else None
    problems = [
        ErrorDetail(
            _printable(str(location), _TYPE_KEPT),
            _printable(str(text), _MESSAGE_KEPT),
            _printable(str(code), _TYPE_KEPT),
        )
        for location, text, code in failure.problems[:_PROBLEMS_KEPT]
    ]
    name = _printable(failure.symphony or "", _TYPE_KEPT)
    cls = error_class(name, kit) if name else None
    kind = _printable(failure.type, _TYPE_KEPT)
    if cls is not None:
        data = {key: _bounded(value) for key, value in failure.data.items() if isinstance(key, str)}
        try:
            return cls.from_data(message, extension=extension, hint=hint, problems=problems, data=data)
        except Exception:  # noqa: BLE001 - data no such error holds: the worker's, never the host's fault
            kind = f"{kind} (as {name}, with data the host cannot rebuild it from)"
    builtin = getattr(builtins, failure.builtin or "", None)
    return RemoteError(
        f"raised {kind.removeprefix('builtins.')}: {message}",
        extension=extension,
        hint=hint,
        remote_type=kind,
        builtin=failure.builtin if isinstance(builtin, type) and issubclass(builtin, BaseException) else None,
        errno=failure.errno if failure.errno is not None and 0 <= failure.errno < 4096 else None,
        remote_traceback=_printable(failure.traceback, _TRACEBACK_KEPT, tail=True),
        problems=problems,
    )


def _bounded(value: Any, depth: int = 0) -> Any:
    """A value of an error's data from a worker, fit to keep: texts bounded and printable, lists (as
    tuples) and dicts of at most ``_DATA_KEPT`` items, nested at most three deep; None for anything else."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _printable(value, _MESSAGE_KEPT)
    if depth >= 3:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(_bounded(item, depth + 1) for item in value[:_DATA_KEPT])
    if isinstance(value, dict):
        items = list(value.items())[:_DATA_KEPT]
        return {_printable(str(key), _TYPE_KEPT): _bounded(item, depth + 1) for key, item in items}
    return None


def _kit(spec: WorkerSpec) -> str | None:
    """The import name of the kit the worker's extension is built on, from its manifest's ``kind``."""
    kind = KINDS.get(str(spec.manifest.get("kind", "")))
    return None if kind is None else kind.module


def _printable(text: str, limit: int, *, tail: bool = False) -> str:
    """Text from a worker, fit to show: at most ``limit`` characters (the start, or with ``tail`` the end,
    where a traceback names the error) and no control characters but newline and tab."""
    if len(text) > limit:
        cut = f"[{len(text) - limit:,} more characters cut]"
        text = f"{cut}\n{text[-limit:]}" if tail else f"{text[:limit]} {cut}"
    return _CONTROL.sub("", text)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "it stopped answering"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-20:])
