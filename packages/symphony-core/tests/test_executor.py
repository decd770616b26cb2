"""The executor that runs extension code in a host: the steps of one start share a thread, each as if in
a thread of its own; what it starts on an extension's own loop finishes before that loop is stopped."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from contextlib import nullcontext

import msgspec
import pytest

from symphony_core._catalog._records import Record
from symphony_core._model._errors import BudgetExceeded
from symphony_core._model._lifecycle import State
from symphony_core._runtime._executor import Executor
from symphony_core._runtime._host import _Slot

_LEFT: contextvars.ContextVar[str | None] = contextvars.ContextVar("left_by_a_step", default=None)


def make_slot(extension: str, kind: str = "instrument", state: State = State.ACTIVE) -> _Slot:
    record = Record(
        id=extension,
        kind=kind,
        group=f"symphony.{kind}s",
        entry_point="acme:Extension",
        distribution="acme",
        distribution_version="1.0.0",
        requires_python=None,
        manifest_file=None,
        manifest_data=msgspec.Raw(msgspec.msgpack.encode(None)),
    )
    return _Slot(extension, record, state)


def test_the_steps_of_one_start_share_a_thread_each_as_if_in_a_thread_of_its_own() -> None:
    run = Executor(threading.RLock(), lambda slot: nullcontext())
    slot = make_slot("acme.steps", "operator", State.VALIDATED)
    seen: list[tuple[threading.Thread, str, str | None]] = []

    def step() -> None:
        thread = threading.current_thread()
        seen.append((thread, thread.name, _LEFT.get()))
        _LEFT.set("by the step before")

    with run.one_thread(slot):
        run.within(5.0, "import", slot, step)
        run.within(5.0, "activate", slot, step)
    run.within(5.0, "deactivate", slot, step)  # outside the block: a thread of its own

    (first, imported, left), (second, activated, left_after), (third, deactivated, _) = seen
    assert second is first
    assert third is not first
    assert threading.current_thread() not in (first, third)
    assert (imported, activated, deactivated) == (
        "symphony-import-acme.steps",
        "symphony-activate-acme.steps",
        "symphony-deactivate-acme.steps",
    )
    assert left is None
    assert left_after is None  # each step starts from an empty context, as a new thread does
    for thread in (first, third):  # ended with the block, or with its step
        thread.join(5.0)
        assert not thread.is_alive()


def test_a_step_that_overruns_keeps_its_thread_and_the_next_step_gets_another() -> None:
    run = Executor(threading.RLock(), lambda slot: nullcontext())
    slot = make_slot("acme.stuck", "operator", State.VALIDATED)
    release = threading.Event()
    threads: list[threading.Thread] = []

    def hang() -> None:
        threads.append(threading.current_thread())
        release.wait(10.0)

    with run.one_thread(slot):
        with pytest.raises(BudgetExceeded, match="its thread is left behind"):
            run.within(0.2, "activate", slot, hang)
        run.within(5.0, "deactivate", slot, lambda: threads.append(threading.current_thread()))
        hung, other = threads
        assert other is not hung
        assert hung.is_alive()
    release.set()

    for thread in (hung, other):
        thread.join(5.0)
        assert not thread.is_alive()


def test_a_fronts_deactivate_started_on_its_loop_finishes_before_the_loop_stops() -> None:
    """As when a quarantine stops an isolated instrument's pipeline without waiting, and a rescan stops
    the extension's loop right after: stopped half-way, the pipeline's threads were left running."""
    run = Executor(threading.RLock(), lambda slot: nullcontext())
    slot = make_slot("acme.front")
    started, finished = threading.Event(), threading.Event()

    async def deactivate() -> None:  # a pipeline closing: answers what is pending, then stops its thread
        started.set()
        await asyncio.sleep(0.3)
        finished.set()

    slot.stopping = run.submit(slot, deactivate(), None)
    assert started.wait(5.0)
    thread = slot.loop_thread
    run.stop_loop(slot)

    assert finished.is_set()
    assert thread is not None
    assert not thread.is_alive()
    assert slot.loop is None
    assert slot.stopping is None
