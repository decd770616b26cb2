"""Running extension code in this process: in a thread of its own within a budget, and coroutines on
the extension's own event loop, so that one that blocks or hangs stalls nobody else."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from symphony_core._model._errors import BudgetExceeded, ExtensionFailed, SymphonyError

if TYPE_CHECKING:
    import asyncio

    from ._host import _Slot

T = TypeVar("T")
log = logging.getLogger("symphony.host")

LOOP_STOP_TIMEOUT = 5.0


class Executor:
    """Runs a host's extension code under what ``guarded`` gives for its extension; the threads and loops
    it starts are kept in the extensions' slots."""

    def __init__(
        self, lock: threading.RLock, guarded: Callable[[_Slot], AbstractContextManager[object]]
    ) -> None:
        self._lock = lock  # the host's: a loop is made once per extension
        self._guarded = guarded

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

        def runner() -> None:
            try:
                if before is not None:
                    before()
                with self._guarded(slot):
                    outcome.append((True, work()))
            except BaseException as exc:  # noqa: BLE001 - SystemExit from an extension must not end the host
                outcome.append((False, exc))

        thread = threading.Thread(target=runner, name=f"symphony-{step}-{slot.record.id}", daemon=True)
        thread.start()
        thread.join(budget)
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
