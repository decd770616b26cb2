"""Where a batcher's batches run: on the instrument's own ``predict`` in this process, or in its workers.

The batcher (``_batching``) is the same in both tiers: it checks, queues, batches, times out and counts
in the host's process. Only the step that runs one joined batch differs, and it is all here:

- `InProcess` calls the instrument's ``predict`` on the batcher's thread (``in_flight`` of them);
- `OnLoop` awaits an instrument's coroutine on the instrument's own event loop (a `RemoteInstrument`'s
  HTTP client lives there): the batcher then serves it from that loop, ``in_flight`` batches at once, with
  no thread of its own, so a batch takes no hop between threads on its way to the endpoint and back;
- `InWorkers` sends the batch to a worker of an isolated instrument as one call of its ``predict``. The
  stacked arrays cross into the worker (through shared memory, or inline in the message when they are
  small: the core's bulk codec decides) and its outputs cross back. Each of the batcher's threads takes a
  worker of its own, so a pool of several workers runs as many batches at once. It is also an `OnLoop`
  with no loop of its own: a request that finds the batcher idle is sent as a batch of one from its
  caller's loop, which watches the worker's pipes for the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from symphony_core import SandboxError

from ._contributions import Array
from ._errors import DeadlineExceeded, EndpointError, Overloaded

if (
    TYPE_CHECKING
):  # only the host's front makes an InWorkers: importing the sandbox here would slow every import
    from symphony_core import Workers

WHOLE_BATCH = (Overloaded, DeadlineExceeded, EndpointError)
"""Errors a ``predict`` raises about the whole batch (a remote model refused or timed out): every request of
the batch gets the error as it is, and none is run again alone."""

RunBatch = Callable[[dict[str, Array]], Mapping[str, Array]]
"""Runs the model on one batch: named inputs in, named outputs out, batch axis first in both."""
AwaitBatch = Callable[[dict[str, Array]], Awaitable[Mapping[str, Array]]]
"""`RunBatch` as a coroutine function."""


class Executor(Protocol):
    """Runs the joined batches of one batcher; the batcher calls it from ``slots`` threads at once."""

    @property
    def slots(self) -> int:
        """How many batches it runs at the same time: the batcher keeps a thread for each."""

    def run(self, batch: dict[str, Array]) -> Mapping[str, Array]:
        """The model's outputs for one joined batch (named arrays, batch axis first)."""

    def splits(self, error: Exception) -> bool:
        """Whether a batch that failed with ``error`` is run again request by request, so that only the
        request the model refuses fails; if not, every request of the batch gets ``error``."""


class InProcess:
    """Runs each batch on the instrument's ``predict`` in this process, ``in_flight`` batches at once."""

    def __init__(self, predict: RunBatch, in_flight: int) -> None:
        self._predict = predict
        self._slots = in_flight

    @property
    def slots(self) -> int:
        return self._slots

    def run(self, batch: dict[str, Array]) -> Mapping[str, Array]:
        return self._predict(batch)

    def splits(self, error: Exception) -> bool:
        return not isinstance(error, WHOLE_BATCH)


class OnLoop:
    """Runs each batch as a coroutine (``predict``) on ``loop``, a running loop of the instrument's own,
    ``in_flight`` batches at once; the batcher forms the batches on that loop too. With no ``loop``, the
    coroutine runs on whichever loop starts the batch (the callers')."""

    loop: asyncio.AbstractEventLoop | None

    def __init__(self, predict: AwaitBatch, loop: asyncio.AbstractEventLoop | None, in_flight: int) -> None:
        self._predict = predict
        self.loop = loop
        self._slots = in_flight

    @property
    def slots(self) -> int:
        return self._slots

    def run(self, batch: dict[str, Array]) -> Mapping[str, Array]:
        """One batch from a thread other than the loop's (the warm-up), waiting for its answer."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(self.run_on_loop(batch), self.loop).result()

    async def run_on_loop(self, batch: dict[str, Array]) -> Mapping[str, Array]:
        return await self._predict(batch)

    def splits(self, error: Exception) -> bool:
        return not isinstance(error, WHOLE_BATCH)


class InWorkers(OnLoop):
    """Runs each batch as one call of ``predict`` in a worker of an isolated instrument, one batch per
    worker at a time: from a batcher's thread (`run`), or from a caller's loop (`run_on_loop`)."""

    def __init__(self, workers: Workers) -> None:
        super().__init__(self._run_in_worker, None, workers.size)
        self._workers = workers

    @property
    def slots(self) -> int:
        return self._workers.size

    def run(self, batch: dict[str, Array]) -> Mapping[str, Array]:
        """One batch from a thread, waiting for its answer."""
        return _named_arrays(self._workers.call("predict", batch))

    async def _run_in_worker(self, batch: dict[str, Array]) -> Mapping[str, Array]:
        return _named_arrays(await self._workers.acall("predict", batch))

    def splits(self, error: Exception) -> bool:
        # No worker ran the batch to its end (it crashed, overran its time-out, or the pool is quarantined
        # or closed): running its requests one by one would only lose more workers.
        return not isinstance(error, (SandboxError, *WHOLE_BATCH))


def _named_arrays(outputs: Any) -> dict[str, Array]:
    """What a worker's ``predict`` returned, checked before the batcher slices it: named arrays only."""
    if not (
        isinstance(outputs, dict)
        and all(isinstance(name, str) and isinstance(array, np.ndarray) for name, array in outputs.items())
    ):
        raise TypeError(f"predict returned {_describe(outputs)}, not named arrays")
    return outputs


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        kinds = sorted({type(item).__name__ for item in value.values()})
        return f"a dict of {', '.join(kinds) or 'nothing'}"
    return f"a {type(value).__name__}"
