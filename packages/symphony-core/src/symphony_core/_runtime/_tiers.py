"""Where an extension's code runs: in this process (`InProcess`) or in kernel-restricted workers (`Workers`).

A `Host` picks one tier per extension when it loads it (``_Slot.tier``) and leaves to it what differs
between the two: loading, config, activation, the context extension code runs under, and async calls.
"""

from __future__ import annotations

import functools
import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Literal

from symphony_core._model._errors import ConfigError, ExtensionFailed, SymphonyError
from symphony_core._model._extension import NONBLOCKING, Context, Extension
from symphony_core._model._lifecycle import State

from ._executor import overran

if TYPE_CHECKING:
    from symphony_core._model._hooks import PermissionEvent
    from symphony_core._security._guard import Policy
    from symphony_core._security._sandbox._pool import Pool, PoolEvent
    from symphony_core._security._sandbox._profile import WorkerSpec
    from symphony_core._store._config import Config, Resolved

    from ._host import Host, _Slot

log = logging.getLogger("symphony.host")

DEFAULT_ISOLATED_CALL_BUDGET = 60.0


class Tier(ABC):
    """What a host does differently for the extensions of one tier; the state stays in their slots."""

    name: Literal["isolated", "guard", "none"]
    """As `ExtensionInfo.tier` shows it."""

    def __init__(self, host: Host) -> None:
        self.host = host

    @abstractmethod
    def load(self, slot: _Slot) -> None:
        """Make ready what activation needs; a failure fails the extension and is raised."""

    @abstractmethod
    def configure(self, slot: _Slot) -> Any:
        """The config its `Context` carries (None when it is resolved elsewhere)."""

    @abstractmethod
    def resolve_config(self, slot: _Slot, overrides: Mapping[str, Any]) -> Resolved[Any] | None:
        """The config from its layers, with ``overrides`` as the host overrides."""

    @abstractmethod
    def config_schema(self, slot: _Slot) -> dict[str, Any] | None:
        """The JSON Schema of its config."""

    @abstractmethod
    def activate(self, slot: _Slot, context: Context) -> None:
        """Create what answers for it (``slot.instance``); a failure fails the extension and is raised."""

    @abstractmethod
    def guarded(self, slot: _Slot) -> AbstractContextManager[object]:
        """What extension code run in this process for it runs under."""

    @abstractmethod
    async def acall(
        self,
        slot: _Slot,
        extension: str,
        method: str,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """`Host.acall` once the method is found."""


async def _within(slot: _Slot, awaitable: Awaitable[Any], budget: float | None) -> Any:
    """Await ``awaitable`` on this loop, cut off after the host's call ``budget`` (seconds)."""
    import asyncio

    if budget is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, budget)
    except TimeoutError as exc:
        if isinstance(exc, SymphonyError):  # its own: DeadlineExceeded
            raise
        raise overran(slot, budget) from None


class InProcess(Tier):
    """This process: under the in-process guard (``"guard"``, which is not a sandbox) or unguarded
    (``"none"``, for code as trusted as the host's own)."""

    def __init__(self, host: Host, name: Literal["guard", "none"]) -> None:
        super().__init__(host)
        self.name = name

    def load(self, slot: _Slot) -> None:
        host = self.host
        if slot.record.environment is not None:
            refused = _needs_isolation(slot, self.name)
            host._fail(slot, "load", refused)
            raise refused

        try:
            target = host._run.within(
                host.import_budget,
                "import",
                slot,
                lambda: _import_target(slot),
                before=lambda: _import_kit(slot),
            )
        except SymphonyError as exc:
            host._fail(slot, "import", exc)
            raise
        slot.target = target

    def configure(self, slot: _Slot) -> Any:
        resolved = self.host._resolve_config(slot)
        return None if resolved is None else resolved.config

    def resolve_config(self, slot: _Slot, overrides: Mapping[str, Any]) -> Resolved[Any] | None:
        from symphony_core._store._config import load_config

        model = self._config_model(slot)
        return (
            None if model is None else load_config(model, slot.key, home=self.host.home, overrides=overrides)
        )

    def config_schema(self, slot: _Slot) -> dict[str, Any] | None:
        from symphony_core._store._config import config_schema

        model = self._config_model(slot)
        return None if model is None else config_schema(model)

    def activate(self, slot: _Slot, context: Context) -> None:
        host = self.host
        target = slot.target
        assert target is not None

        def run() -> Extension:
            instance = target()
            host._run.wait(slot, instance.activate(context), host.activate_budget)
            return instance

        try:
            slot.instance = host._run.within(host.activate_budget, "activate", slot, run)
        except SymphonyError as exc:
            host._fail(slot, "activate", exc)
            raise

    def guarded(self, slot: _Slot) -> AbstractContextManager[object]:
        if self.name == "none":
            return nullcontext()
        return _guard(self.host, slot)

    async def acall(
        self,
        slot: _Slot,
        extension: str,
        method: str,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        from asyncio import wrap_future

        host = self.host
        budget = host.call_budget
        with host._calling(slot, method):
            with host._guarded(slot):
                result = function(*args, **kwargs)
            if not isinstance(result, Awaitable):
                return result
            if getattr(getattr(function, "__func__", function), NONBLOCKING, False):
                # marked as never blocking (`nonblocking`): awaited here, with no hop to its loop and back
                return await _within(slot, result, budget)
            future = host._run.submit(slot, result, budget)
            try:
                return await wrap_future(future)
            except TimeoutError as exc:
                if isinstance(exc, SymphonyError) or budget is None:  # its own: DeadlineExceeded
                    raise
                raise overran(slot, budget) from None

    def _config_model(self, slot: _Slot) -> type[Config] | None:
        reference = _config_reference(slot)
        if reference is None:
            return None
        from symphony_core._store._config import Config

        # Importing it runs its package's __init__ too: extension code, so as the extension, in budget.
        host = self.host
        model = host._run.within(
            host.import_budget, "importing its config model", slot, lambda: _resolve(reference, slot.key)
        )
        if not (isinstance(model, type) and issubclass(model, Config)):
            raise ConfigError(
                f"the manifest's config '{reference}' is not a Config class",
                extension=slot.key,
                hint=f"derive it from the Config class that the {slot.record.kind} package exports",
            )
        return model


class Workers(Tier):
    """Kernel-restricted worker pools: none of the extension's own code is imported in this process.
    What answers for it here is its kit's front (kit code) or a `RemoteExtension`; its config model is
    imported only in a worker."""

    name: Literal["isolated"] = "isolated"

    def load(self, slot: _Slot) -> None:
        """Nothing: its workers import it when it is activated, never this process."""

    def prepare(self, kinds: Iterable[str]) -> bool:
        """Pay now what the first isolated start in this process would (`Host.prepare`): the tier's own
        modules, the kernel's probe, the workers' boot bytecode, and the fronts of ``kinds``' kits.
        Whether this machine runs workers."""
        from symphony_core._security import _grants  # noqa: F401 - what each start reads its limits with
        from symphony_core._security._sandbox import _fronts, _pool, _process, _remote  # noqa: F401
        from symphony_core._store import _config  # noqa: F401 - what each start checks variables with

        if not _process.prepare(self.host.home):
            return False
        for kind in sorted(set(kinds)):
            try:
                _fronts.front_for(kind)
            except Exception as exc:  # noqa: BLE001 - a broken kit fails the start that needs it, not this
                log.info("the front of kind %s could not be imported ahead: %s", kind, exc)
        return True

    def configure(self, slot: _Slot) -> Any:
        # its workers resolve the config, so its model is never imported here
        self.host._check_config_variables(slot)  # before a worker could see them
        return None

    def resolve_config(self, slot: _Slot, overrides: Mapping[str, Any]) -> Resolved[Any] | None:
        from symphony_core._store._config import Resolved, Source

        reference = _config_reference(slot)
        if reference is None:
            return None
        answer = self._ask_worker(slot, reference, overrides=dict(overrides))
        sources = {key: Source(layer, where) for key, (layer, where) in answer["sources"].items()}
        return Resolved(answer["config"], sources)

    def config_schema(self, slot: _Slot) -> dict[str, Any] | None:
        reference = _config_reference(slot)
        return None if reference is None else self._ask_worker(slot, reference, schema=True)

    def activate(self, slot: _Slot, context: Context) -> None:
        """Start the extension's worker pool (its workers restrict themselves, import and activate it), then
        what answers for it here: its kit's front, or a `RemoteExtension`."""
        from symphony_core._security._sandbox._pool import Pool

        host = self.host
        pool = Pool(
            self._spec(slot),
            call_timeout=self._budget(),
            start_timeout=host.import_budget + host.activate_budget,
            on_event=lambda event: self._pool_event(slot, pool, event),
            on_publish=functools.partial(host._publish, slot.key),
        )
        try:
            pool.start()
        except SymphonyError as exc:
            host._fail(slot, "activate", exc)
            raise
        slot.pool = pool
        try:
            slot.instance = self._front(slot, pool, context)
        except Exception as exc:
            slot.pool = None
            try:
                pool.close()
            except SymphonyError as closing:
                log.info("%s", closing)
            if isinstance(exc, SymphonyError):
                host._fail(slot, "activate", exc)
                raise
            from symphony_core._model._kinds import KINDS

            failure = ExtensionFailed(
                f"its kit's front in the host failed: {type(exc).__name__}: {exc}",
                extension=slot.key,
                hint=f"reinstall {KINDS[slot.record.kind].package}; if it persists, report it to its authors",
            )
            host._fail(slot, "activate", failure)
            raise failure from exc

    def guarded(self, slot: _Slot) -> AbstractContextManager[object]:
        if slot.pool is not None:  # the kernel restricts its workers; here only kit code runs for it
            return nullcontext()
        # Its pool was quarantined: its front still stops under the guard of the extension's grant.
        return _guard(self.host, slot)

    async def acall(
        self,
        slot: _Slot,
        extension: str,
        method: str,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        import asyncio

        host = self.host
        if not inspect.iscoroutinefunction(function):  # run in a worker: awaited in a thread
            return await asyncio.to_thread(host.call, extension, method, *args, **kwargs)
        # Answered here by its kit's front (an instrument's pipeline), on the caller's own loop: kit
        # code that never blocks needs no loop of its own, and no hop to one (see _sandbox._fronts).
        return await _within(slot, function(*args, **kwargs), host.call_budget)

    def _budget(self) -> float:
        budget = self.host.call_budget
        return budget if budget is not None else DEFAULT_ISOLATED_CALL_BUDGET

    def _front(self, slot: _Slot, pool: Pool, context: Context) -> Extension:
        """The isolated extension's stand-in here: its kit's front, activated on the extension's own loop
        in this process (kit code, never the extension's: see ``_sandbox._fronts``), or a `RemoteExtension`."""
        from symphony_core._security._sandbox._fronts import Workers as FrontWorkers
        from symphony_core._security._sandbox._fronts import front_for
        from symphony_core._security._sandbox._remote import RemoteExtension

        front = front_for(slot.record.kind)
        if front is None:
            return RemoteExtension(pool, context)
        instance = front(FrontWorkers(pool), context)
        self.host._run.wait(slot, instance.activate(context), self.host.activate_budget)
        return instance

    def _ask_worker(self, slot: _Slot, reference: str, **query: Any) -> Any:
        """Ask a restricted worker about the extension's config model: one of its running pool's, else a
        fresh one that never runs the extension."""
        from symphony_core._security._sandbox._process import WorkerProcess

        budget = self._budget()
        pool = slot.pool
        if pool is not None:
            with pool.worker(budget) as running:
                return running.config(reference, timeout=budget, **query)
        worker = WorkerProcess.start(self._spec(slot), timeout=self.host.import_budget, load=False)
        try:
            return worker.config(reference, timeout=budget, **query)
        finally:
            worker.stop()

    def _spec(self, slot: _Slot) -> WorkerSpec:
        from symphony_core._security._grants import read_policy
        from symphony_core._security._sandbox._profile import WorkerSpec

        host = self.host
        record = slot.record
        return WorkerSpec(
            extension=record.id,
            entry_point=record.entry_point,
            home=host.home,
            version=record.distribution_version,
            permissions=host._granted(slot),
            manifest=record.manifest or {},
            path=tuple(host.path or ()),
            environment=record.environment,
            config_overrides=host.state.config_overrides(slot.key),
            limits=read_policy(host.policy_file).limits.for_workers(),
        )

    def _pool_event(self, slot: _Slot, pool: Pool, event: PoolEvent) -> None:
        """Audit worker failures; a quarantined pool fails its extension, with the reason, and is stopped."""
        host = self.host
        host._write_audit([(f"worker_{event.action}", slot.key, "supervisor", {"reason": event.reason})])
        if event.action == "quarantined" and slot.pool is pool and slot.state is State.ACTIVE:
            slot.pool = None
            reason = event.reason or "its workers kept failing"
            # Remembered in the state file: every host sharing it, and `symphony list`, see the quarantine.
            host.state.quarantine(slot.key, slot.record.distribution_version, reason, actor="supervisor")
            front = slot.instance
            host._fail(slot, "quarantine", SymphonyError(f"quarantined: {reason}", hint=lift_hint(slot.key)))
            pool.close()
            stopping = None if front is None else front.deactivate()
            if isinstance(stopping, Awaitable):  # a kit's front stops its own part here too (a pipeline)
                # not awaited: this thread may be one of the front's; its loop waits for it before stopping
                slot.stopping = host._run.submit(slot, stopping, None)


def _guard(host: Host, slot: _Slot) -> AbstractContextManager[object]:
    """The in-process guard (which is not a sandbox) acting as the extension, with its current grant."""
    from symphony_core._security._guard import acting_as

    if slot.guard is None:
        slot.guard = _policy(host, slot)
    return acting_as(slot.guard)


def _policy(host: Host, slot: _Slot) -> Policy:
    from symphony_core._security._guard import Policy

    permissions = host._granted(slot)

    def on_event(event: PermissionEvent) -> None:
        detail = {"permission": event.permission, "resource": event.resource}
        host.state.record("permission_denied", ext_id=slot.key, actor="guard", detail=detail)
        host._notify("symphony_permission_event", event)

    return Policy.for_extension(slot.key, permissions, host.home, on_event=on_event)


def _needs_isolation(slot: _Slot, tier: str) -> SymphonyError:
    """Why an extension of a managed environment cannot run in the host's process."""
    from symphony_core._model._errors import CompatibilityError

    return CompatibilityError(
        f"it is installed in an environment of its own ({slot.record.environment}), so it runs only in "
        f"isolated workers, never in the host's process (this host runs extensions there: isolation='{tier}')",
        extension=slot.key,
        hint="run it from a host made with isolation='auto' or 'isolated'; to run it in the host's "
        "process, install it into the host's own environment instead",
    )


def _config_reference(slot: _Slot) -> str | None:
    manifest = slot.record.manifest
    reference = None if manifest is None else manifest.get("config")
    return reference if isinstance(reference, str) else None


def _import_kit(slot: _Slot) -> None:
    """Import the kit the extension is built on as the host, not as the extension: what the kit and its
    own dependencies touch when they are first imported (onnxruntime reads /etc/os-release) is not the
    extension's doing, so the guard neither denies nor records it. A kit that fails to import is left to
    the extension's own import to report."""
    from symphony_core._model._kinds import KINDS
    from symphony_core._security._guard import acting_as

    kind = KINDS.get(slot.record.kind)
    if kind is None:
        return
    import importlib

    with acting_as(None):
        try:
            importlib.import_module(kind.module)
        except Exception:
            log.debug("%s: its kit %s did not import", slot.key, kind.module, exc_info=True)


def _import_target(slot: _Slot) -> type[Extension]:
    record = slot.record
    target = _resolve(record.entry_point, record.id)
    if not (isinstance(target, type) and issubclass(target, Extension)):
        raise ExtensionFailed(
            f"entry point '{record.entry_point}' names {target!r}, which is not an extension class",
            extension=record.id,
            hint=f"point the entry point at a subclass of the {record.kind} base class",
        )
    return target


def _resolve(reference: str, extension: str) -> Any:
    import pkgutil

    module_name, _, attribute = reference.partition(":")
    module_name, attribute = module_name.strip(), attribute.strip()
    try:
        return pkgutil.resolve_name(f"{module_name}:{attribute}")
    except ImportError as exc:
        raise ExtensionFailed(
            f"importing '{module_name}' failed: {exc}",
            extension=extension,
            hint="check that the distribution and its dependencies are installed",
        ) from exc
    except AttributeError as exc:
        if exc.name not in attribute.split("."):
            raise  # raised by the module's own code while it was imported
        raise ExtensionFailed(
            f"'{reference}' names '{exc.name}', which module '{module_name}' does not define",
            extension=extension,
            hint="fix the entry point or the manifest reference",
        ) from None


def lift_hint(extension: str) -> str:
    """What to tell the person about a quarantined extension."""
    return f"fix or update the extension, then lift the quarantine with `symphony enable {extension}`"
