"""Warm workers per extension: started ahead of need, restarted after a crash, quarantined when they keep
crashing.

A ``Pool`` keeps ``size`` workers of one extension ready (restricted, extension imported and activated). A
call takes an idle worker, so a ready worker costs nothing to get. A worker that dies or overruns its
time-out is replaced in the background, after a back-off that doubles with each failure in a row. When
``crash_limit`` failures happen within ``crash_window`` seconds the pool is quarantined: its workers are
stopped, nothing is restarted, and every call raises ``Quarantined`` with the reason, until ``reset()``.
A ``Supervisor`` holds the pools of many extensions; it knows nothing of the ``Host``.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from symphony_core._model._errors import (
    ExtensionNotFound,
    Quarantined,
    SandboxError,
    SymphonyError,
    WorkerTimeout,
)

from ._process import WorkerProcess
from ._profile import WorkerSpec

log = logging.getLogger("symphony.pool")
_SAID = {
    "crashed": "a worker failed",
    "restarted": "a worker was started again",
    "quarantined": "quarantined",
    "released": "quarantine lifted",
}


class PoolState(str, enum.Enum):
    """Where a pool is: starting its first workers, ready, restarting after a failure, quarantined, closed."""

    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    QUARANTINED = "quarantined"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class PoolStatus:
    """A snapshot of one extension's pool, safe to show."""

    extension: str
    state: PoolState
    ready: int
    busy: int
    size: int
    failures: int
    """Failures (crashes, time-outs, failed starts) within the crash window."""
    reason: str | None
    """Why the pool is quarantined, or the last failure."""
    enforced: dict[str, str] = field(default_factory=dict)
    pids: tuple[int, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "extension": self.extension,
            "state": self.state.value,
            "ready": self.ready,
            "busy": self.busy,
            "size": self.size,
            "failures": self.failures,
            "reason": self.reason,
            "enforced": self.enforced,
            "pids": list(self.pids),
        }


@dataclass(frozen=True)
class PoolEvent:
    """What a pool tells its observer: a worker ``crashed``, ``restarted``, the pool was ``quarantined``
    or ``released`` from quarantine."""

    extension: str
    action: str
    reason: str | None = None


class Pool:
    """Ready workers of one extension, supervised."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        size: int = 1,
        call_timeout: float | None = 30.0,
        start_timeout: float = 60.0,
        crash_limit: int = 3,
        crash_window: float = 60.0,
        backoff: float = 0.1,
        max_backoff: float = 10.0,
        on_event: Callable[[PoolEvent], object] | None = None,
        on_publish: Callable[[str, Any], object] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.spec = spec
        self.size = size
        self.call_timeout = call_timeout
        self.start_timeout = start_timeout
        self.crash_limit = crash_limit
        self.crash_window = crash_window
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.on_event = on_event
        self.on_publish = on_publish
        """Called with each event (name, data) any of the pool's workers publishes."""
        self.state = PoolState.STARTING
        self.reason: str | None = None
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._starting = 0
        self._failures: collections.deque[float] = collections.deque()
        self._in_a_row = 0
        self._next_start = 0.0
        self._condition = threading.Condition()
        self._keeper: threading.Thread | None = None
        self._enforced: dict[str, str] = {}
        self.methods: tuple[str, ...] = ()
        """The extension's public methods, as its first worker found them."""

    # Life

    def start(self) -> Pool:
        """Start the first worker and wait for it (its failure is raised); the others start in the background."""
        with self._condition:
            if self.state is not PoolState.STARTING or self._keeper is not None:
                return self
            self._starting += 1
        try:
            worker = WorkerProcess.start(self.spec, timeout=self.start_timeout, on_publish=self.on_publish)
        except BaseException:
            with self._condition:
                self._starting -= 1
                self.state = PoolState.CLOSED
            raise
        with self._condition:
            self._starting -= 1
            self._enforced = dict(worker.enforced)
            self.methods = worker.methods
            self._idle.append(worker)
            self.state = PoolState.READY
            self._keeper = threading.Thread(
                target=self._keep, name=f"symphony-pool-{self.spec.extension}", daemon=True
            )
            self._keeper.start()
            self._condition.notify_all()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker and the pool's keeper thread.

        Idle workers run the extension's ``deactivate`` (within ``timeout``); a worker still serving a call
        is killed, and that call raises ``WorkerCrashed``. When a ``deactivate`` raised, its error is raised
        once every worker is stopped.
        """
        with self._condition:
            self.state = PoolState.CLOSED
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
            self._condition.notify_all()
        for worker in busy:  # a call is running in it: waiting could take as long as that call
            worker.kill()
        failed: SymphonyError | None = None
        for worker in idle:
            try:
                worker.stop(timeout)
            except SandboxError as exc:  # it is being stopped anyway: say why it could not stop cleanly
                log.info("%s", exc)
            except SymphonyError as exc:  # the extension's own deactivate raised: report it once all stopped
                failed = failed or exc
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(timeout)
        if failed is not None:
            raise failed

    def reset(self) -> None:
        """Lift a quarantine: forget past failures and start workers again."""
        with self._condition:
            if self.state is not PoolState.QUARANTINED:
                return
            self._failures.clear()
            self._in_a_row = 0
            self._next_start = 0.0
            self.state = PoolState.RESTARTING
            self.reason = None
            self._condition.notify_all()
        self._emit("released")

    def grow(self, size: int) -> None:
        """Keep at least ``size`` workers from now on; the keeper starts the missing ones in the background."""
        with self._condition:
            if size > self.size:
                self.size = size
                self._condition.notify_all()

    # Use

    def call(self, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` of the extension in a ready worker; ``timeout`` defaults to the pool's."""
        limit = self.call_timeout if timeout is None else timeout
        with self.worker(limit) as worker:
            return worker.call(method, args, kwargs, timeout=limit)

    async def acall(self, method: str, /, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """`call` on the running event loop, which writes the request and reads the answer itself
        (`WorkerProcess.acall`). An idle worker is taken at once; when none is, a thread waits for one."""
        import asyncio

        limit = self.call_timeout if timeout is None else timeout
        worker = self._take_idle() or await self._wait_for_worker(limit)
        try:
            result = await worker.acall(method, args, kwargs, timeout=limit)
        except asyncio.CancelledError:  # the worker was killed if it was still running the call
            self._release(worker, counted=False)
            raise
        except BaseException as exc:
            await self._give_back(worker, exc)
            raise
        await self._give_back(worker)
        return result

    @contextlib.contextmanager
    def worker(self, timeout: float | None = None) -> Iterator[WorkerProcess]:
        """Hold a ready worker for the body; a failure inside that killed it counts against the pool."""
        worker = self._acquire(timeout)
        try:
            yield worker
        except BaseException as exc:
            self._release(worker, exc)
            raise
        self._release(worker)

    def status(self) -> PoolStatus:
        with self._condition:
            return PoolStatus(
                extension=self.spec.extension,
                state=self.state,
                ready=len(self._idle),
                busy=len(self._busy),
                size=self.size,
                failures=len(self._recent()),
                reason=self.reason,
                enforced=dict(self._enforced),
                pids=tuple(w.pid for w in [*self._idle, *self._busy] if w.pid is not None),
            )

    # Internals

    def _acquire(self, timeout: float | None) -> WorkerProcess:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found, dead = None, []
            with self._condition:
                self._refuse_if_unusable()
                while self._idle and found is None:
                    worker = self._idle.pop()
                    if worker.alive:
                        found = worker
                        self._busy.add(found)
                    else:
                        dead.append(worker)
                if found is None and not dead:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise WorkerTimeout(
                            f"no worker became ready within {timeout:g} s",
                            extension=self.spec.extension,
                            hint="the pool is restarting its workers; its status says why",
                        )
                    self._condition.wait(left)
            for worker in dead:
                self._failure(_died_idle(worker), worker)
            if found is not None:
                return found

    def _take_idle(self) -> WorkerProcess | None:
        """A ready worker, without waiting: None when none is idle (or the next one died: `_acquire`,
        which may wait, counts that)."""
        with self._condition:
            self._refuse_if_unusable()
            if not self._idle or not self._idle[-1].alive:
                return None
            worker = self._idle.pop()
            self._busy.add(worker)
            return worker

    async def _wait_for_worker(self, timeout: float | None) -> WorkerProcess:
        """`_acquire` on a thread; a worker it finds after its caller was cancelled goes back to the pool."""
        import asyncio

        waiting = asyncio.get_running_loop().run_in_executor(None, self._acquire, timeout)
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:

            def give_back(done: asyncio.Future[WorkerProcess]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self._release(done.result())

            waiting.add_done_callback(give_back)
            raise

    async def _give_back(self, worker: WorkerProcess, error: BaseException | None = None) -> None:
        """`_release` from a loop: on it when the worker is kept, on a thread when it must be stopped."""
        import asyncio

        if worker.alive and self.state is not PoolState.CLOSED:
            self._release(worker, error)
        else:
            await asyncio.to_thread(self._release, worker, error)

    def _refuse_if_unusable(self) -> None:
        if self.state is PoolState.QUARANTINED:
            raise Quarantined(
                f"is quarantined: {self.reason}",
                extension=self.spec.extension,
                hint="fix or update the extension, then lift the quarantine (Pool.reset)",
            )
        if self.state is PoolState.CLOSED:
            raise SandboxError(
                "its worker pool is closed",
                extension=self.spec.extension,
                hint="the host stopped the extension or was closed: start it again before calling it",
            )

    def _release(
        self, worker: WorkerProcess, error: BaseException | None = None, *, counted: bool = True
    ) -> None:
        """Put a worker back after use, or count its death against the pool (unless not ``counted``: the
        caller gave up on it and stops it; the keeper only replaces it)."""
        with self._condition:
            self._busy.discard(worker)
            keep = worker.alive and self.state is not PoolState.CLOSED
            if keep:
                self._idle.append(worker)
            self._condition.notify_all()  # a worker to take, or one for the keeper to replace
        if keep or not counted:  # not counted: whoever gave up on it stops it
            return
        if self.state is PoolState.CLOSED:
            worker.kill()
            return
        reason = error.message if isinstance(error, SandboxError) else _died_idle(worker)
        self._failure(reason.partition("\n")[0], worker)

    def _failure(self, reason: str, worker: WorkerProcess | None = None) -> None:
        """Count a failure, drop the worker, and quarantine the pool when failures come too often."""
        doomed: list[WorkerProcess] = [] if worker is None else [worker]
        with self._condition:
            if worker is not None:
                self._busy.discard(worker)
            now = time.monotonic()
            self._failures.append(now)
            self._in_a_row += 1
            self._next_start = now + min(self.max_backoff, self.backoff * 2 ** (self._in_a_row - 1))
            self.reason = reason
            quarantine = len(self._recent()) >= self.crash_limit and self.state is not PoolState.CLOSED
            if quarantine:
                self.state = PoolState.QUARANTINED
                self.reason = (
                    f"{len(self._failures)} failures within {self.crash_window:g} s; the last: {reason}"
                )
                doomed += self._idle
                self._idle.clear()
            elif self.state is PoolState.READY:
                self.state = PoolState.RESTARTING
            self._condition.notify_all()
        for each in doomed:
            each.kill()
        self._emit("quarantined" if quarantine else "crashed", self.reason)

    def _recent(self) -> list[float]:
        horizon = time.monotonic() - self.crash_window
        while self._failures and self._failures[0] < horizon:
            self._failures.popleft()
        return list(self._failures)

    def _keep(self) -> None:
        """The keeper: start replacements after the back-off, notice idle workers that died."""
        while True:
            with self._condition:
                if self.state is PoolState.CLOSED:
                    return
                dead = [worker for worker in self._idle if not worker.alive]
                for worker in dead:
                    self._idle.remove(worker)
                missing = self.size - len(self._idle) - len(self._busy) - self._starting
                wait = self._next_start - time.monotonic()
                starting = not dead and self.state is not PoolState.QUARANTINED and missing > 0 and wait <= 0
                if starting:
                    self._starting += 1
                elif not dead:
                    self._condition.wait(min(max(wait, 0.0), 0.5) or 0.5)
            for worker in dead:
                self._failure(_died_idle(worker), worker)
            if starting:
                self._replace()

    def _replace(self) -> None:
        try:
            worker = WorkerProcess.start(self.spec, timeout=self.start_timeout, on_publish=self.on_publish)
        except Exception as exc:  # noqa: BLE001 - any failure to start counts against the pool
            with self._condition:
                self._starting -= 1
            detail = exc.message if isinstance(exc, SandboxError) else f"{type(exc).__name__}: {exc}"
            self._failure(f"a new worker failed to start: {detail}")
            return
        with self._condition:
            self._starting -= 1
            closing = self.state in (PoolState.CLOSED, PoolState.QUARANTINED)
            if not closing:
                self._idle.append(worker)
                self._in_a_row = 0
                self.state = PoolState.READY
                self._condition.notify_all()
        if closing:
            worker.kill()
        else:
            self._emit("restarted")

    def _emit(self, action: str, reason: str | None = None) -> None:
        level = logging.INFO if action in ("restarted", "released") else logging.WARNING
        log.log(
            level, "extension %s: %s%s", self.spec.extension, _SAID[action], f": {reason}" if reason else ""
        )
        if self.on_event is not None:
            try:
                self.on_event(PoolEvent(self.spec.extension, action, reason))
            except Exception:
                log.exception("the observer of pool events raised")


def _died_idle(worker: WorkerProcess) -> str:
    if worker.died is not None:  # killed by the host, which said why (its disk quota)
        return worker.died.message
    process = worker.process
    code = None if process is None else process.poll()
    return f"its worker died (exit status {code})"


class Supervisor:
    """The pools of many extensions, by extension id."""

    def __init__(self, **pool_options: Any) -> None:
        self.pool_options = pool_options
        """Defaults for every pool (``size``, ``call_timeout``, ``crash_limit``...)."""
        self._pools: dict[str, Pool] = {}
        self._lock = threading.Lock()

    def add(self, spec: WorkerSpec, **options: Any) -> Pool:
        """Start a pool for ``spec``'s extension (replacing one it had) and wait for its first worker."""
        pool = Pool(spec, **{**self.pool_options, **options})
        with self._lock:
            old = self._pools.pop(spec.extension, None)
        if old is not None:
            old.close()
        pool.start()
        with self._lock:
            self._pools[spec.extension] = pool
        return pool

    def pool(self, extension: str) -> Pool:
        with self._lock:
            pool = self._pools.get(extension)
        if pool is None:
            raise ExtensionNotFound(
                "has no worker pool", extension=extension, hint="add it to the supervisor first"
            )
        return pool

    def call(self, extension: str, method: str, /, *args: Any, **kwargs: Any) -> Any:
        return self.pool(extension).call(method, *args, **kwargs)

    def status(self, extension: str) -> PoolStatus:
        return self.pool(extension).status()

    def statuses(self) -> list[PoolStatus]:
        with self._lock:
            pools = list(self._pools.values())
        return [pool.status() for pool in pools]

    def reset(self, extension: str) -> None:
        self.pool(extension).reset()

    def remove(self, extension: str, timeout: float = 10.0) -> None:
        with self._lock:
            pool = self._pools.pop(extension, None)
        if pool is not None:
            pool.close(timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close(timeout)
