"""The executor that runs extension code in a host: what it starts on an extension's own loop finishes
before that loop is stopped."""

from __future__ import annotations

import asyncio
import threading
from contextlib import nullcontext

import msgspec

from symphony_core._catalog._records import Record
from symphony_core._model._lifecycle import State
from symphony_core._runtime._executor import Executor
from symphony_core._runtime._host import _Slot


def test_a_fronts_deactivate_started_on_its_loop_finishes_before_the_loop_stops() -> None:
    """As when a quarantine stops an isolated instrument's pipeline without waiting, and a rescan stops
    the extension's loop right after: stopped half-way, the pipeline's threads were left running."""
    run = Executor(threading.RLock(), lambda slot: nullcontext())
    record = Record(
        id="acme.front",
        kind="instrument",
        group="symphony.instruments",
        entry_point="acme:Front",
        distribution="acme",
        distribution_version="1.0.0",
        requires_python=None,
        manifest_file=None,
        manifest_data=msgspec.Raw(msgspec.msgpack.encode(None)),
    )
    slot = _Slot("acme.front", record, State.ACTIVE)
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
