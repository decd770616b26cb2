"""Running extension code in this process: in a thread of its own within a budget, and coroutines on
the extension's own event loop, so that one that blocks or hangs stalls nobody else."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from symphony_core._model._errors import BudgetExceeded, ExtensionFailed, SymphonyError

if TYPE_CHECKING:
    import asyncio

    from ._host import _Slot

T = TypeVar("T")
log = logging.getLogger("symphony.host")

LOOP_STOP_TIMEOUT = 5.0


class Executor:
    """Runs a host's extension code under what ``guarded`` gives for its extension; the loops it starts
    (and their threads) are kept in the extensions' slots."""

    def __init__(
        self, lock: threading.RLock, guarded: Callable[[_Slot], AbstractContextManager[object]]
    ) -> None:
        self._lock = lock  # the host's: a loop is made once per extension
        self._guarded = guarded
        # The extensions whose steps run in one thread (`one_thread`), with that thread while it is idle.
        self._kept: dict[_Slot, _Runner | None] = {}
        self._kept_lock = threading.Lock()

    @contextmanager
    def one_thread(self, slot: _Slot) -> Iterator[None]:
        """Run the extension's steps in the block (`within`) in one thread of its own, one after another.

        Starting a thread costs more than a trivial extension's import or activation. Each step still
        has its own budget, starts from an empty context and names the thread after itself; one that
        overruns keeps that thread, and the next step gets another."""
        with self._kept_lock:
            nested = slot in self._kept
            self._kept.setdefault(slot, None)
        if nested:  # the outer block keeps the thread
            yield
            return
        try:
            yield
        finally:
            with self._kept_lock:
                idle = self._kept.pop(slot)
            if idle is not None:
                idle.stop()

    def within(
        self,
        budget: float,
        step: str,
        slot: _Slot,
        work: Callable[[], T],
        *,
        before: Callable[[], object] | None = None,
    ) -> T:
        """Run extension code in its own thread, cut off (and reported) after ``budget`` seconds.

        ``before`` is host code run first in that thread and budget, outside what ``guarded`` gives: a
        kit imported there, before the first guard of the process is installed, does not pass each of its
        thousands of audited events through the guard's hook."""
        outcome: list[Any] = []
        finished = threading.Event()
        with self._kept_lock:
            idle = self._kept.get(slot)
            if idle is not None:
                self._kept[slot] = None  # taken: a step run meanwhile (another caller's) gets another
        thread = idle or _Runner()

        def runner() -> None:
            try:
                if before is not None:
                    before()
                with self._guarded(slot):
                    outcome.append((True, work()))
            except BaseException as exc:  # noqa: BLE001 - SystemExit from an extension must not end the host
                outcome.append((False, exc))
            finally:
                self._give_back(slot, thread)
                finished.set()

        thread.run(f"symphony-{step}-{slot.record.id}", runner)
        finished.wait(budget)
        if not outcome:
            raise BudgetExceeded(
                f"{step} did not finish within {budget:g} s; its thread is left behind",
                extension=slot.record.id,
                hint="fix the extension, raise the host's budget, or run it in the isolated tier",
            )
        ok, value = outcome[0]
        if ok:
            return value  # type: ignore[no-any-return]
        if isinstance(value, SymphonyError):
            raise value
        if isinstance(value, (SystemExit, KeyboardInterrupt)):  # no Ctrl-C: this thread is not the main one
            raise escaped(slot, step, value) from value
        raise ExtensionFailed(
            f"{step} raised {type(value).__name__}: {value}",
            extension=slot.record.id,
            hint=f"the fault is in the extension's own code: report it to the authors of "
            f"'{slot.record.distribution}', or stop loading it with `symphony disable {slot.key}`",
        ) from value

    def _give_back(self, slot: _Slot, thread: _Runner) -> None:
        """Keep a thread that finished a step for the extension's next one, while `one_thread` wants it."""
        with self._kept_lock:
            if slot in self._kept and self._kept[slot] is None:
                self._kept[slot] = thread
                return
        thread.stop()

    def wait(self, slot: _Slot, result: Awaitable[T] | T, budget: float | None) -> T:
        """Run a coroutine result on the extension's own event loop, awaiting at most ``budget`` seconds.

        Each extension gets its own loop (and thread), so one that blocks its loop stalls nobody else.
        """
        if not isinstance(result, Awaitable):
            return result
        future: Future[T] = self.submit(slot, result, budget)
        try:
            return future.result(None if budget is None else budget + 1.0)
        except TimeoutError as exc:
            if isinstance(exc, SymphonyError) or budget is None:  # the extension's own: DeadlineExceeded
                raise
            future.cancel()
            raise overran(slot, budget) from None

    def submit(self, slot: _Slot, result: Awaitable[T], budget: float | None) -> Future[T]:
        """Start a coroutine on the extension's own loop, under its identity, bounded by ``budget``."""

        import asyncio  # only hosts of async extensions pay for it

        async def contained() -> T:
            try:
                return await result
            except (SystemExit, KeyboardInterrupt) as exc:  # on its loop they would stop the loop itself
                raise escaped(slot, "a coroutine", exc) from exc

        async def bounded() -> T:
            with self._guarded(slot):
                return await asyncio.wait_for(contained(), budget) if budget else await contained()

        return asyncio.run_coroutine_threadsafe(bounded(), self._event_loop(slot))

    def _event_loop(self, slot: _Slot) -> asyncio.AbstractEventLoop:
        with self._lock:  # not slot.lock: activate holds that while its worker thread gets here
            if slot.loop is None:
                import asyncio

                loop = asyncio.new_event_loop()
                name = f"symphony-loop-{slot.key}"
                thread = threading.Thread(target=_run_loop, args=(loop, slot.key), name=name, daemon=True)
                thread.start()
                slot.loop, slot.loop_thread = loop, thread
            return slot.loop

    def stop_loop(self, slot: _Slot) -> None:
        """Stop the extension's loop, let its thread cancel what is left and close it, and wait for that.

        A front's ``deactivate`` started on the loop when its pool was quarantined finishes first (within
        ``LOOP_STOP_TIMEOUT``): stopped half-way, it would leave its threads running."""
        loop, thread = slot.loop, slot.loop_thread
        stopping, slot.stopping = slot.stopping, None
        slot.loop = slot.loop_thread = None
        if loop is None or thread is None:
            return
        if stopping is not None and thread is not threading.current_thread():
            with contextlib.suppress(Exception):
                stopping.result(LOOP_STOP_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        if thread is threading.current_thread():
            return  # the extension stops itself from its own loop: the thread finishes after this call
        thread.join(LOOP_STOP_TIMEOUT)
        if thread.is_alive():
            log.warning(
                "%s: its event loop did not stop within %g s (a call blocks it); the thread is left to "
                "finish on its own",
                slot.key,
                LOOP_STOP_TIMEOUT,
            )


class _Runner:
    """A daemon thread that runs what it is given one after another, until it is stopped.

    Each runs as in a thread of its own: from an empty context (as a new thread starts), with the
    thread named as given."""

    __slots__ = ("_jobs",)

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[str, Callable[[], object]] | None] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="symphony-runner", daemon=True).start()

    def run(self, name: str, job: Callable[[], object]) -> None:
        self._jobs.put((name, job))

    def stop(self) -> None:
        """End the thread once it has run what it was given."""
        self._jobs.put(None)

    def _serve(self) -> None:
        current = threading.current_thread()
        while (given := self._jobs.get()) is not None:
            current.name, job = given
            contextvars.Context().run(job)


def escaped(slot: _Slot, what: str, exc: BaseException) -> ExtensionFailed:
    """A ``SystemExit`` or ``KeyboardInterrupt`` that extension code raised, as its failure: it may
    not end the host."""
    return ExtensionFailed(
        f"{what} raised {exc!r}, which would have ended the host; the host goes on",
        extension=slot.key,
        hint=f"an extension reports a failure by raising an exception, never by exiting: report it to "
        f"the authors of '{slot.record.distribution}', or stop loading it with `symphony disable {slot.key}`",
    )


def overran(slot: _Slot, budget: float | None) -> BudgetExceeded:
    """The failure of a coroutine cut off after ``budget`` seconds."""
    return BudgetExceeded(
        f"did not finish within {budget:g} s and was cancelled",
        extension=slot.key,
        hint="fix the extension (an async method must not block its event loop) or raise the budget",
    )


def _run_loop(loop: asyncio.AbstractEventLoop, extension: str) -> None:
    """Run an extension's event loop until stopped, then cancel what it left running and close it."""
    import asyncio

    asyncio.set_event_loop(loop)
    try:
        while True:
            try:
                loop.run_forever()
                break
            except (SystemExit, KeyboardInterrupt) as exc:  # from a task the extension started on its own
                log.warning("%s: a task raised %r on its event loop, which goes on", extension, exc)
        leftover = asyncio.all_tasks(loop)
        for task in leftover:
            task.cancel()
        if leftover:
            # A task that swallows its cancellation must not keep the host from closing.
            _, stuck = loop.run_until_complete(asyncio.wait(leftover, timeout=LOOP_STOP_TIMEOUT))
            if stuck:
                log.warning("%s: %d task(s) ignored cancellation at stop", extension, len(stuck))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
