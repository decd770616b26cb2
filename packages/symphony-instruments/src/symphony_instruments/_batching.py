"""The batcher in front of every instrument: checked requests, micro-batches, deadlines, metrics.

How a request travels:

1. On the caller's event loop, ``submit`` checks the inputs (a bad request fails alone, before it is
   queued), refuses it at once when the queue is full or the work already queued cannot finish before
   its deadline (`Overloaded`), and appends it to a queue shared with the batcher's threads; a request
   of more items than a batch may hold is appended as parts that fill successive batches, and its
   outputs are joined again. Callers
   may be on any loops (a host's own, an extension's): each request is timed and answered on its
   caller's loop, so no request hops between loops.
2. A dedicated thread per batch the model may run at once (``in_flight`` in this process, one per
   worker of an isolated instrument) takes as many queued requests as fit in one batch the moment it is
   free: nothing waits on purpose (unless ``max_delay_ms`` says so while the model is idle), so batches
   grow by themselves while the model is busy. Requests whose caller went away are skipped; requests
   that cannot finish before their deadline are dropped with `DeadlineExceeded`. It joins their arrays,
   has the executor run the model on them (``predict`` in this process, where onnxruntime releases the
   GIL while it runs, or one call to a worker: see ``_executors``), splits the outputs and hands them
   back to the loop in one call per batch. An executor with a loop of its own (`OnLoop`: a
   `RemoteInstrument`'s HTTP client) is served the same way by coroutines on that loop instead of threads.
   An executor that can run a batch on any loop (`InWorkers`: an isolated instrument's workers, whose
   pipes a loop can watch) also has its threads; but a request that finds the batcher idle (nothing
   queued or running, every thread waiting) is run alone from its caller's loop, which sends it to a
   worker and reads the answer itself: a lone request then wakes no thread on its way. Only that
   request rides on its caller's loop, so no other caller depends on that loop running.
3. A single timer per loop answers every request whose deadline passes first with `DeadlineExceeded`,
   whatever the model is doing, so no caller waits past its deadline.

The loop's share of the work per request is the check, one ``deque.append`` and one ``set_result``; the
threads wake the loop once per batch, and the loop wakes a thread only when it was idle. All of this runs
in the host's process in both tiers: isolated, only the model's run is elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from queue import SimpleQueue
from typing import Any, NamedTuple

import numpy as np

from symphony_core import ExtensionFailed, register_result

from ._config import BatchingConfig, InstrumentConfig
from ._contributions import Array, Contributions, InputChecker
from ._errors import BatcherClosed, DeadlineExceeded, InvalidInput, Overloaded
from ._executors import Executor, OnLoop

LATENCY_WINDOW = 8192  # the percentiles cover the most recent completed requests
_ADMISSION_SLACK = 0.2  # admit only what should finish within 80 % of its time: answers take time too
_EWMA = 0.2  # weight of the newest batch in the estimate of a batch's run time
_monotonic = time.monotonic


class _Request:
    """One caller's request: its checked arrays, its future, when it must be answered, and its loop's side."""

    __slots__ = ("arrays", "bare", "deadline", "enqueued", "future", "items", "side")

    def __init__(
        self,
        arrays: dict[str, Array],
        items: int,
        bare: bool,
        future: asyncio.Future[dict[str, Array]],
        deadline: float,
        enqueued: float,
        side: _Side,
    ) -> None:
        self.arrays = arrays
        self.items = items
        self.bare = bare
        self.future = future
        self.deadline = deadline
        self.enqueued = enqueued
        self.side = side

    def __lt__(self, other: _Request) -> bool:  # heap ties on the deadline: any order will do
        return id(self) < id(other)


_Answer = tuple[_Request, dict[str, Array]]
_Refusal = tuple[_Request, BaseException]


class _Ran(NamedTuple):
    """A batch that ran whole, with its outputs not yet split into each request's answer."""

    batch: Sequence[_Request]
    outputs: Mapping[str, Array]
    items: int


class _Side:
    """What one event loop holds of a batcher: its requests' deadlines and timer, its counts, its latencies.

    Written on that loop only. A side whose loop closed is folded into the batcher's retired side, so its
    counts stay in the metrics.
    """

    __slots__ = (
        "counts",
        "deadlines",
        "enqueued",
        "enqueued_items",
        "in_order",
        "latencies",
        "loop",
        "sweep_at",
        "sweeper",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self.enqueued = 0
        self.enqueued_items = 0
        self.counts = dict.fromkeys(
            ("completed", "invalid", "overloaded", "deadline_exceeded", "cancelled"), 0
        )
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.deadlines: list[tuple[float, _Request]] = []
        self.in_order: deque[_Request] = deque()
        self.sweep_at = math.inf
        self.sweeper: asyncio.TimerHandle | None = None

    def retire(self, into: _Side) -> None:
        """Add this side's counts and latencies to ``into``: its loop has closed."""
        into.enqueued += self.enqueued
        into.enqueued_items += self.enqueued_items
        for key, count in self.counts.items():
            into.counts[key] += count
        into.latencies.extend(self.latencies)


@register_result
@dataclass(frozen=True)
class Metrics:
    """A snapshot of one instrument's batcher: load, outcomes, batch sizes and latency.

    Counts start at activation (warm-up excluded). ``dropped`` adds up the requests answered with an
    error because of load or their caller: overloaded, past their deadline, or cancelled. It is a
    ``Metrics`` in both tiers: registered to cross from an isolated worker as itself.
    """

    queue_depth: int
    """Requests waiting for the model now."""
    running: int
    """Batches the model is running now."""
    submitted: int
    """Requests accepted into the queue; each is answered exactly once."""
    completed: int
    failed: int
    """Requests whose batch the model failed on (after each was retried alone)."""
    invalid: int
    """Requests refused for their inputs (`InvalidInput`), never queued."""
    overloaded: int
    """Requests refused at once (`Overloaded`): queue full or no chance to meet their deadline."""
    deadline_exceeded: int
    """Requests dropped or cut off at their deadline (`DeadlineExceeded`)."""
    cancelled: int
    """Requests whose caller went away before they ran; skipped, never run."""
    batches: int
    batch_sizes: dict[int, int] = field(default_factory=dict)
    """Items per batch: how many batches of each size ran."""
    latency_ms: dict[str, float] = field(default_factory=dict)
    """``p50``, ``p95``, ``p99`` and ``max`` from submit to result, over recent completed requests."""

    @property
    def dropped(self) -> int:
        """Requests answered with an error because of load or their caller, not because of the model."""
        return self.overloaded + self.deadline_exceeded + self.cancelled

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as JSON-ready data."""
        data = asdict(self)
        data["dropped"] = self.dropped
        data["batch_sizes"] = {str(size): count for size, count in sorted(self.batch_sizes.items())}
        return data


class Batcher:
    """Batches the requests of one instrument onto its model, which ``executor`` runs from the batcher's
    own threads."""

    def __init__(
        self,
        executor: Executor,
        checker: InputChecker,
        settings: BatchingConfig,
        *,
        name: str,
        extension: str | None = None,
        batch_limit: int | None = None,
    ) -> None:
        self._executor = executor
        self._checker = checker
        self._extension = extension
        self._name = name
        self.max_batch_size = min(settings.max_batch_size, batch_limit or settings.max_batch_size)
        self._max_queue = settings.max_queue
        self._max_delay = settings.max_delay_ms / 1000
        self._timeout = None if settings.timeout_ms is None else settings.timeout_ms / 1000
        self._threads = executor.slots
        self._workers: list[threading.Thread] = []
        # An executor with a loop of its own runs its batches as coroutines there: the batcher serves it
        # from that loop (``slots`` coroutines), with no thread of its own and no hop per batch.
        self._on_loop = executor.loop if isinstance(executor, OnLoop) else None
        # An executor on no loop of its own runs a request that finds the batcher idle on its caller's
        # loop (`_run_alone`); the rest goes to the threads as usual.
        self._alone = isinstance(executor, OnLoop) and executor.loop is None
        self._alone_tasks: set[asyncio.Task[None]] = set()
        self._borrowed = 0  # under _wake: a lone request running from its loop holds one thread's slot
        self._context = contextvars.copy_context()
        self._runners: list[concurrent.futures.Future[None]] = []
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tasks: list[asyncio.Task[None]] = []  # the runners' tasks, on the executor's loop
        self._closed = False
        self._open = False  # started and not closed
        # Shared with the executor: deque appends and pops are atomic; each counter has one writer.
        self._queue: deque[_Request] = deque()
        self._wake = threading.Condition(threading.Lock())
        self._take_lock = threading.Lock()
        self._idle = 0
        self._stopping = False
        # Seconds one batch took, by size class (1, 2, 3-4, 5-8, ...); 0 while unseen. Batching makes an
        # item much cheaper in a full batch than alone, so time per item would misjudge a long queue.
        self._batch_seconds = [0.0] * (self.max_batch_size.bit_length() + 1)
        self._running: dict[int, list[_Request]] = {}
        # (side, callback, answers), or (None, callback, a batch's outputs) to split first
        self._courier_queue: SimpleQueue[tuple[_Side | None, Callable[[_Side, Any], None], Any] | None] = (
            SimpleQueue()
        )
        # One side per caller's loop, each written on its loop only (see _Side); the tuple is what threads
        # iterate, replaced whole when a loop comes or goes.
        self._sides: dict[asyncio.AbstractEventLoop, _Side] = {}
        self._side_list: tuple[_Side, ...] = ()
        self._sides_lock = threading.Lock()
        self._retired = _Side(None)
        # Written on the executor only (under _take_lock).
        self._dequeued = 0
        self._dequeued_items = 0
        self._running_items = 0
        self._worker_counts = {"failed": 0, "cancelled": 0, "batches": 0}
        self._batch_sizes: dict[int, int] = {}

    # Lifecycle

    async def start(self) -> None:
        """Start the batcher's threads; it then takes requests from callers on any event loop."""
        if self._open or self._closed:
            return
        if self._on_loop is not None:
            # Each runs in this context, as the threads do: an extension's identity (the guard) goes with it.
            self._runners = [
                asyncio.run_coroutine_threadsafe(self._serve_on_loop(), self._on_loop)
                for _ in range(self._threads)
            ]
            self._open = True
            return
        self._context = contextvars.copy_context()
        for number in range(self._threads):
            # The executor runs in the caller's context: an extension's identity (the guard) goes with it.
            context = contextvars.copy_context()
            worker = threading.Thread(
                target=context.run,
                args=(self._serve,),
                name=f"symphony-instrument-{self._name}-{number}",
                daemon=True,
            )
            self._workers.append(worker)
            worker.start()
        self._open = True
        self._courier = threading.Thread(
            target=self._carry, name=f"symphony-instrument-{self._name}-courier", daemon=True
        )
        self._courier.start()

    async def close(self, drain: float = 10.0) -> None:
        """Refuse new requests, let queued ones finish for up to ``drain`` seconds, then stop.

        Requests still waiting after that get `BatcherClosed`; every request is answered.
        """
        if self._closed:
            return
        self._closed = True
        self._open = False
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        deadline = time.monotonic() + drain
        if self._on_loop is not None:
            with contextlib.suppress(RuntimeError):  # the executor's loop has stopped: nothing runs there
                self._on_loop.call_soon_threadsafe(self._wake_all)
            runners = [asyncio.wrap_future(runner) for runner in self._runners]
            if runners:
                _, running = await asyncio.wait(runners, timeout=max(0.0, deadline - time.monotonic()))
                if running:  # still in a batch: cancelled, and its requests answered below
                    with contextlib.suppress(RuntimeError):
                        cancel = asyncio.run_coroutine_threadsafe(self._cancel_on_loop(), self._on_loop)
                        await asyncio.wait([asyncio.wrap_future(cancel)], timeout=1.0)
        else:
            for worker in self._workers:
                await asyncio.to_thread(worker.join, max(0.0, deadline - time.monotonic()))
            self._courier_queue.put(None)
            await asyncio.to_thread(self._courier.join, max(0.0, deadline - time.monotonic()))
        await asyncio.sleep(0)  # run the deliveries posted before the threads stopped
        closed = BatcherClosed(
            "the instrument stopped before this request was answered", extension=self._extension
        )
        leftovers = list(self._queue)
        self._queue.clear()
        for batch in list(self._running.values()):
            leftovers += batch
        here = asyncio.get_running_loop()
        for side in self._side_list:
            mine = [request for request in leftovers if request.side is side]
            loop = side.loop
            assert loop is not None
            if loop is here:
                self._shut(side, mine, closed)
            else:  # after whatever was posted to that loop before: it is answered first
                with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits there
                    loop.call_soon_threadsafe(self._shut, side, mine, closed)

    def _shut(self, side: _Side, leftovers: list[_Request], closed: BatcherClosed) -> None:
        for request in leftovers:
            if not request.future.done():
                request.future.set_exception(closed)
        if side.sweeper is not None:
            side.sweeper.cancel()
        side.deadlines.clear()
        side.in_order.clear()

    # Requests

    async def submit(self, inputs: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Array]:
        """Run one request (one or more items) through the model and return its named outputs.

        ``timeout`` (seconds) overrides the configured deadline. Raises `InvalidInput` before queueing
        a bad request, `Overloaded` when it is refused at once, `DeadlineExceeded` when its deadline
        passes, `BatcherClosed` after `close`.
        """
        # The common case runs here inline: this is most of the loop's share of the work per request.
        if not self._open:
            raise BatcherClosed(
                "the instrument has stopped" if self._closed else "the batcher was not started",
                extension=self._extension,
            )
        loop = asyncio.get_running_loop()
        side = self._sides.get(loop) or self._side_for(loop)
        try:
            arrays, items, bare = self._checker.check(inputs)
        except InvalidInput:
            side.counts["invalid"] += 1
            raise
        now = _monotonic()
        limit = self._timeout if timeout is None else timeout
        deadline = now + limit if limit is not None else math.inf
        self._admit(side, items, now, deadline)
        if items > self.max_batch_size:
            return await self._split(loop, side, arrays, items, now, deadline, watched=limit is not None)
        future: asyncio.Future[dict[str, Array]] = loop.create_future()
        request = _Request(arrays, items, bare, future, deadline, now, side)
        if limit is not None:
            if timeout is None:  # the configured deadline: requests arrive in deadline order
                side.in_order.append(request)
                if deadline < side.sweep_at:
                    self._schedule_sweep(side, deadline)
            else:
                self._watch(side, request)
        side.enqueued += 1
        side.enqueued_items += items
        if self._alone and not self._queue and not self._running_items and self._borrow():
            self._run_alone(loop, request)
            return await future
        self._queue.append(request)
        if self._idle:
            self._kick(1)
        return await future

    def _borrow(self) -> bool:
        """Take a thread's slot for a lone request, when every thread waits and no other lone request
        runs; the threads then run one batch fewer at a time until it is given back."""
        with self._wake:
            if self._borrowed or self._idle < self._threads or self._stopping:
                return False
            self._borrowed = 1
            return True

    def _give_back(self) -> None:
        with self._wake:
            self._borrowed = 0
            if self._queue:  # requests queued meanwhile: a thread takes them now (else none is woken)
                self._wake.notify_all()

    def _run_alone(self, loop: asyncio.AbstractEventLoop, request: _Request) -> None:
        """Run a request that found the batcher idle as a batch of its own, from its caller's loop."""
        with self._take_lock:
            self._dequeued += 1
            self._dequeued_items += request.items
            self._count_batch(request.items)
        # A copy: the loops of two threads may start one at the same moment, and a context is entered by
        # one thread at a time.
        try:
            task = self._context.copy().run(loop.create_task, self._serve_alone(request))
        except BaseException:
            self._give_back()
            raise
        self._alone_tasks.add(task)
        task.add_done_callback(self._alone_tasks.discard)

    async def _serve_alone(self, request: _Request) -> None:
        task = asyncio.current_task()
        key, batch = id(task), [request]
        self._running[key] = batch
        try:
            results, failures = await self._execute_on_loop(batch)
        except asyncio.CancelledError:  # its caller's loop is stopping: its caller is gone with it
            if self._running.pop(key, None) is not None:
                with self._take_lock:
                    self._running_items -= request.items
            raise
        finally:
            self._give_back()
        self._finished(key, batch, results, failures)

    def _enqueue(self, side: _Side, requests: list[_Request]) -> None:
        self._queue.extend(requests)
        side.enqueued += len(requests)
        side.enqueued_items += sum(request.items for request in requests)
        if self._idle:
            self._kick(len(requests))

    def _kick(self, count: int) -> None:
        """Wake up to ``count`` idle servers: requests were queued."""
        if self._on_loop is None:
            with self._wake:
                self._wake.notify(count)
            return
        with contextlib.suppress(RuntimeError):  # the executor's loop has stopped: close() answers them
            for _ in range(count):
                self._on_loop.call_soon_threadsafe(self._wake_one)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._waiters:
            self._wake_one()

    async def _split(
        self,
        loop: asyncio.AbstractEventLoop,
        side: _Side,
        arrays: dict[str, Array],
        items: int,
        now: float,
        deadline: float,
        *,
        watched: bool,
    ) -> dict[str, Array]:
        """A request larger than a batch: queued as parts of ``max_batch_size`` items (one after the other,
        so they fill successive batches, on several workers at once when there are), its outputs joined
        in order. It succeeds or fails whole: the first part to fail fails it, and the parts not yet run
        are dropped. Each part counts as a request in the metrics."""
        size = self.max_batch_size
        parts = [
            _Request(
                {name: array[start : start + size] for name, array in arrays.items()},
                min(size, items - start),
                False,
                loop.create_future(),
                deadline,
                now,
                side,
            )
            for start in range(0, items, size)
        ]
        for part in parts:
            if watched:
                self._watch(side, part)
        self._enqueue(side, parts)
        try:
            outputs = await asyncio.gather(*(part.future for part in parts))
        except BaseException:
            for part in parts:  # skipped by the batcher's threads, answered by nobody
                part.future.cancel()
            raise
        return {name: np.concatenate([output[name] for output in outputs]) for name in outputs[0]}

    def _side_for(self, loop: asyncio.AbstractEventLoop) -> _Side:
        """The side of a loop that calls for the first time; the sides of loops that closed are retired."""
        with self._sides_lock:
            side = self._sides.get(loop)
            if side is None:
                for known, old in list(self._sides.items()):
                    if known.is_closed():
                        old.retire(self._retired)
                        del self._sides[known]
                side = self._sides[loop] = _Side(loop)
                self._side_list = tuple(self._sides.values())
            return side

    def _totals(self) -> tuple[int, int]:
        """Requests and items queued since the start, from every loop."""
        sides = self._side_list
        if len(sides) == 1 and not self._retired.enqueued:
            only = sides[0]
            return only.enqueued, only.enqueued_items
        every = (self._retired, *sides)
        return sum(side.enqueued for side in every), sum(side.enqueued_items for side in every)

    def _admit(self, side: _Side, items: int, now: float, deadline: float) -> None:
        enqueued, enqueued_items = self._totals()
        waiting = enqueued - self._dequeued
        if waiting >= self._max_queue:
            side.counts["overloaded"] += 1
            raise Overloaded(
                f"refused: {waiting} requests are already waiting (batching.max_queue = {self._max_queue})",
                extension=self._extension,
                hint="retry later with backoff, send fewer requests at once, or raise batching.max_queue",
                queue_depth=waiting,
                max_queue=self._max_queue,
                retry_after=self._estimate(enqueued_items - self._dequeued_items + self._running_items),
            )
        if deadline != math.inf:
            ahead = enqueued_items - self._dequeued_items + self._running_items + items
            ready = now + self._estimate(ahead)
            if ready > deadline - _ADMISSION_SLACK * (deadline - now):
                side.counts["overloaded"] += 1
                raise Overloaded(
                    f"refused: the work queued ahead of it takes about {(ready - now) * 1000:.1f} ms, "
                    f"past its deadline in {(deadline - now) * 1000:.1f} ms",
                    extension=self._extension,
                    hint="retry later with backoff, or give the request a longer deadline",
                    queue_depth=waiting,
                    max_queue=self._max_queue,
                    retry_after=ready - now,
                )

    def _estimate(self, items: int) -> float:
        """Seconds the model needs for ``items`` items run in full batches; unseen sizes count as 0."""
        full, rest = divmod(items, self.max_batch_size)
        seconds = full * self._batch_seconds[(self.max_batch_size - 1).bit_length()]
        return seconds + (self._batch_seconds[(rest - 1).bit_length()] if rest else 0.0)

    # Deadlines: one timer per loop, set for the earliest deadline still pending there. Requests with
    # the configured timeout arrive in deadline order and wait in a plain deque; others go to a heap.

    def _watch(self, side: _Side, request: _Request) -> None:
        """Watch the deadline of a request that may come out of deadline order (its caller gave one)."""
        heapq.heappush(side.deadlines, (request.deadline, request))
        if len(side.deadlines) > 1024 and len(side.deadlines) > 4 * (side.enqueued - self._dequeued + 256):
            # answered requests linger in the heap until their deadline; drop them now and then
            side.deadlines = [entry for entry in side.deadlines if not entry[1].future.done()]
            heapq.heapify(side.deadlines)
        if request.deadline < side.sweep_at:
            self._schedule_sweep(side, request.deadline)

    def _schedule_sweep(self, side: _Side, when: float) -> None:
        loop = side.loop
        assert loop is not None
        if side.sweeper is not None:
            side.sweeper.cancel()
        side.sweep_at = when
        # loop.time() is time.monotonic() in asyncio's loops; the offset keeps it right if not
        side.sweeper = loop.call_at(when - time.monotonic() + loop.time(), self._sweep, side)

    def _sweep(self, side: _Side) -> None:
        side.sweeper = None
        side.sweep_at = math.inf
        now = time.monotonic()
        heap = side.deadlines
        while heap and (heap[0][0] <= now or heap[0][1].future.done()):
            deadline, request = heapq.heappop(heap)
            if not request.future.done():
                self._expire(request, f"its deadline passed {(now - deadline) * 1000:.1f} ms ago")
        ordered = side.in_order
        while ordered and (ordered[0].deadline <= now or ordered[0].future.done()):
            request = ordered.popleft()
            if not request.future.done():
                self._expire(request, f"its deadline passed {(now - request.deadline) * 1000:.1f} ms ago")
        earliest = min(heap[0][0] if heap else math.inf, ordered[0].deadline if ordered else math.inf)
        if earliest != math.inf:
            self._schedule_sweep(side, earliest)

    def _expire(self, request: _Request, why: str) -> None:
        request.side.counts["deadline_exceeded"] += 1
        waited = time.monotonic() - request.enqueued
        request.future.set_exception(
            DeadlineExceeded(
                f"no result after {waited * 1000:.1f} ms: {why}",
                extension=self._extension,
                hint="give the request a longer deadline, or send fewer requests at once",
                deadline=request.deadline - request.enqueued,
                waited=waited,
            )
        )

    # Results, on each request's own loop

    def _deliver(self, side: _Side, done: list[tuple[_Request, dict[str, Array]]]) -> None:
        now = _monotonic()
        completed = 0
        record = side.latencies.append
        for request, outputs in done:
            future = request.future
            if future.done():  # cut off at its deadline, or its caller went away, while it ran
                if future.cancelled():
                    side.counts["cancelled"] += 1
                continue
            if now > request.deadline:  # the timer has not fired yet: a late answer is still no answer
                self._expire(request, f"the result came {(now - request.deadline) * 1000:.1f} ms too late")
                continue
            future.set_result(outputs)
            completed += 1
            record(now - request.enqueued)
        side.counts["completed"] += completed
        ordered = side.in_order
        while ordered and ordered[0].future.done():  # answered: their deadline needs no watching
            ordered.popleft()

    def _reject(self, side: _Side, failed: list[tuple[_Request, BaseException]]) -> None:
        for request, error in failed:
            if request.future.done():
                if request.future.cancelled():
                    side.counts["cancelled"] += 1
                continue
            if isinstance(error, DeadlineExceeded):
                side.counts["deadline_exceeded"] += 1
            elif isinstance(error, Overloaded):
                side.counts["overloaded"] += 1
            elif isinstance(error, InvalidInput):
                side.counts["invalid"] += 1
            request.future.set_exception(error)

    # The executor

    def _serve(self) -> None:
        """A batcher thread: take a batch the moment the model is free, run it, hand results back."""
        ident = threading.get_ident()
        while True:
            batch, dropped = self._next_batch()
            if dropped:
                self._post(self._reject, dropped)
            if batch is None:
                return
            if not batch:
                continue
            self._running[ident] = batch
            results, failures = self._execute(batch)
            self._finished(ident, batch, results, failures)

    async def _serve_on_loop(self) -> None:
        """A batcher coroutine on the executor's own loop: `_serve`, awaiting instead of blocking."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.append(task)
        key = id(task)
        while True:
            batch, dropped = await self._next_batch_on_loop()
            if dropped:
                self._post(self._reject, dropped)
            if batch is None:
                return
            if not batch:
                continue
            self._running[key] = batch
            results, failures = await self._execute_on_loop(batch)
            self._finished(key, batch, results, failures)

    def _finished(
        self, key: int, batch: list[_Request], results: list[_Answer] | _Ran, failures: list[_Refusal]
    ) -> None:
        """A batch has run: count it out and hand its answers to their callers' loops."""
        self._running.pop(key, None)
        items = results.items if isinstance(results, _Ran) else sum(request.items for request in batch)
        with self._take_lock:
            self._running_items -= items
        if results:
            self._post(self._deliver, results)
        if failures:
            self._post(self._reject, failures)

    async def _cancel_on_loop(self) -> None:
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _idle_on_loop(self, timeout: float | None = None) -> None:
        """Wait on the executor's loop until a request is queued (or ``timeout`` passes)."""
        assert self._on_loop is not None
        waiter = self._on_loop.create_future()
        self._waiters.append(waiter)
        self._idle += 1
        try:
            if not self._queue and not self._stopping:  # queued before it counted as idle: no kick came
                await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._idle -= 1
            waiter.cancel()

    async def _next_batch_on_loop(self) -> tuple[list[_Request] | None, list[tuple[_Request, BaseException]]]:
        queue = self._queue
        while not queue:
            if self._stopping:
                return None, []
            await self._idle_on_loop()
        batch: list[_Request] = []
        dropped: list[tuple[_Request, BaseException]] = []
        items = self._take(batch, dropped, 0)
        if self._max_delay and items and items < self.max_batch_size and not self._running_items:
            fill_until = time.monotonic() + self._max_delay
            while items < self.max_batch_size and (left := fill_until - time.monotonic()) > 0:
                if not queue:
                    await self._idle_on_loop(left)
                items = self._take(batch, dropped, items)
        with self._take_lock:
            self._count_batch(items)
        return batch, dropped

    def _post(
        self, callback: Callable[[_Side, Any], None], answers: list[tuple[_Request, Any]] | _Ran
    ) -> None:
        """Hand answers to their callers' loops, one call per loop: directly when idle, through the
        courier while more work waits.

        Waking a loop writes to its self-pipe, which releases the GIL; the woken loop then answers a
        whole batch of callers, which can take a millisecond or two. Between two runs the batcher's
        thread needs the GIL to form the next batch, so under load it leaves the wake-up to the courier
        thread, which can only take the GIL once the thread has released it by entering the next run.
        The courier also splits a batch's outputs into each request's answer: the model does not wait
        for that.
        """
        if self._queue and not self._stopping and self._on_loop is None:
            if isinstance(answers, _Ran):
                self._courier_queue.put((None, callback, answers))
                return
            for side, part in _by_side(answers):
                self._courier_queue.put((side, callback, part))
            return
        if isinstance(answers, _Ran):
            answers = _slices(answers.batch, answers.outputs)
        for side, part in _by_side(answers):
            self._wake_loop(side, callback, part)

    def _wake_loop(self, side: _Side, callback: Callable[[_Side, Any], None], part: Any) -> None:
        assert side.loop is not None
        if side.loop is _running_loop():  # a lone request run from its own loop: answered right here
            callback(side, part)
            return
        # RuntimeError: the loop closed while a batch ran, so nobody waits there
        with contextlib.suppress(RuntimeError):
            side.loop.call_soon_threadsafe(callback, side, part)

    def _carry(self) -> None:
        """The courier thread: wake the loops with what the batcher's threads handed over."""
        while True:
            item = self._courier_queue.get()
            if item is None:
                return
            side, callback, part = item
            if side is None:  # a batch's outputs
                for side, answers in _by_side(_slices(part.batch, part.outputs)):
                    self._wake_loop(side, callback, answers)
            else:
                self._wake_loop(side, callback, part)

    def _next_batch(self) -> tuple[list[_Request] | None, list[tuple[_Request, BaseException]]]:
        """Wait for work; return the next batch (None to stop) and the requests dropped while forming it."""
        queue = self._queue
        if not queue or self._borrowed:
            with self._wake:
                self._idle += 1
                # a lone request run from its loop holds one thread's slot: one thread fewer takes work
                while (not queue or self._borrowed >= self._idle) and not self._stopping:
                    self._wake.wait()
                self._idle -= 1
            if not queue:
                return None, []
        batch: list[_Request] = []
        dropped: list[tuple[_Request, BaseException]] = []
        with self._take_lock:
            items = self._take(batch, dropped, 0)
            if self._max_delay and items and items < self.max_batch_size and not self._running_items:
                # an idle model may wait a little for a fuller batch, when the config asks for it
                fill_until = time.monotonic() + self._max_delay
                while items < self.max_batch_size and (left := fill_until - time.monotonic()) > 0:
                    if not queue:
                        with self._wake:
                            self._idle += 1
                            if not queue and not self._stopping:
                                self._wake.wait(left)
                            self._idle -= 1
                    items = self._take(batch, dropped, items)
            self._count_batch(items)
        return batch, dropped

    def _count_batch(self, items: int) -> None:
        """Count a batch that starts (under ``_take_lock``)."""
        self._running_items += items
        if items:
            self._batch_sizes[items] = self._batch_sizes.get(items, 0) + 1
            self._worker_counts["batches"] += 1

    def _take(self, batch: list[_Request], dropped: list[tuple[_Request, BaseException]], items: int) -> int:
        """Move queued requests into ``batch`` while they fit; return the batch's items."""
        queue = self._queue
        limit = self.max_batch_size
        now = time.monotonic()
        ahead = self._estimate(self._running_items) if self._threads > 1 else 0.0
        estimates = self._batch_seconds
        taken = taken_items = 0
        while queue:
            request = queue.popleft()
            size = request.items
            if items + size > limit:
                queue.appendleft(request)
                break
            taken += 1
            taken_items += size
            future = request.future
            if future.done():
                if future.cancelled():
                    self._worker_counts["cancelled"] += 1
                continue  # its caller went away, or its deadline passed while it waited
            final = min(limit, items + size + len(queue))  # the batch grows while requests wait
            needs = ahead + estimates[(final - 1).bit_length()]
            if request.deadline < now + needs:
                left = (request.deadline - now) * 1000
                dropped.append(
                    (
                        request,
                        DeadlineExceeded(
                            f"dropped before running: the model needs about "
                            f"{needs * 1000:.1f} ms and its deadline is in "
                            f"{left:.1f} ms",
                            extension=self._extension,
                            hint="the instrument is overloaded: send fewer requests at once, or give "
                            "them longer deadlines",
                            deadline=request.deadline - request.enqueued,
                            waited=now - request.enqueued,
                        ),
                    )
                )
                continue
            batch.append(request)
            items += size
        self._dequeued += taken
        self._dequeued_items += taken_items
        return items

    def _execute(self, batch: Sequence[_Request]) -> tuple[list[_Answer] | _Ran, list[_Refusal]]:
        """Run one batch; if it fails, run each of its requests alone so only the culprit fails."""
        started = time.perf_counter()
        try:
            inputs, items = _joined(batch)  # requests whose dynamic axes differ do not join: each runs alone
            outputs = self._checked(self._executor.run(inputs), items)
        except Exception as exc:  # noqa: BLE001 - whatever the model raises goes to its callers
            refused = self._refused(batch, exc)
            if refused is not None:
                return [], refused
            results: list[_Answer] = []
            failures: list[_Refusal] = []
            for request in batch:
                single, failed = self._execute([request])
                results += _slices(single.batch, single.outputs) if isinstance(single, _Ran) else single
                failures += failed
            return results, failures
        self._learn(items, time.perf_counter() - started)
        return _Ran(batch, outputs, items), []

    async def _execute_on_loop(self, batch: Sequence[_Request]) -> tuple[list[_Answer], list[_Refusal]]:
        """`_execute`, awaiting the executor's coroutine on its loop."""
        started = time.perf_counter()
        try:
            inputs, items = _joined(batch)  # requests whose dynamic axes differ do not join: each runs alone
            assert isinstance(self._executor, OnLoop)
            outputs = self._checked(await self._executor.run_on_loop(inputs), items)
        except Exception as exc:  # noqa: BLE001 - whatever the model raises goes to its callers
            refused = self._refused(batch, exc)
            if refused is not None:
                return [], refused
            results: list[_Answer] = []
            failures: list[_Refusal] = []
            for request in batch:
                single, failed = await self._execute_on_loop([request])
                results += single
                failures += failed
            return results, failures
        self._learn(items, time.perf_counter() - started)
        return _slices(batch, outputs), []

    def _refused(self, batch: Sequence[_Request], exc: Exception) -> list[_Refusal] | None:
        """What the requests of a batch that failed with ``exc`` get, or None to run each alone."""
        if not self._executor.splits(exc):  # nothing ran it (an isolated worker is gone): all get why
            with self._take_lock:
                self._worker_counts["failed"] += len(batch)
            return [(request, exc) for request in batch]
        if len(batch) == 1:
            with self._take_lock:
                self._worker_counts["failed"] += 1
            return [(batch[0], self._failure(exc))]
        return None

    def _learn(self, items: int, took: float) -> None:
        """A batch of ``items`` took ``took`` seconds: the estimates follow."""
        size_class = (items - 1).bit_length()
        before = self._batch_seconds[size_class]
        self._batch_seconds[size_class] = took if not before else _EWMA * took + (1 - _EWMA) * before

    def _run_checked(self, inputs: dict[str, Array], items: int) -> Mapping[str, Array]:
        return self._checked(self._executor.run(inputs), items)

    @staticmethod
    def _checked(outputs: Mapping[str, Array], items: int) -> Mapping[str, Array]:
        for name, array in outputs.items():
            if np.ndim(array) == 0 or len(array) != items:
                raise ValueError(
                    f"output '{name}' has shape {np.shape(array)}, but the batch holds {items} items: "
                    "every output needs the batch axis first"
                )
        return outputs

    def _failure(self, exc: Exception) -> Exception:
        if isinstance(exc, InvalidInput):  # the model (or a remote one) refused this request's inputs
            return exc
        error = ExtensionFailed(
            f"the model failed on this request: {type(exc).__name__}: {exc}",
            extension=self._extension,
            hint="the inputs passed the declared checks, so the model itself refused them; "
            "report it to the instrument's authors",
        )
        error.__cause__ = exc
        return error

    # Warm-up and metrics

    async def warm_up(self, batch: dict[str, Array], count: int) -> None:
        """Run ``batch`` through the model ``count`` times on the executor thread, outside the metrics."""
        items = len(next(iter(batch.values())))

        def work() -> None:
            for _ in range(count):
                self._run_checked(batch, items)

        if count:
            await asyncio.to_thread(work)  # in this context, so under the extension's identity too

    def metrics(self) -> Metrics:
        """A snapshot of the batcher's counters, batch sizes and latency percentiles."""
        worker = dict(self._worker_counts)
        sizes = dict(self._batch_sizes)
        dequeued = self._dequeued
        sides = (self._retired, *self._side_list)
        loop = {key: sum(side.counts[key] for side in sides) for key in self._retired.counts}
        enqueued = sum(side.enqueued for side in sides)
        latency: dict[str, float] = {}
        recent = [value for side in sides for value in list(side.latencies)]  # list(): one step
        if recent:
            values = np.asarray(recent) * 1000
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            latency = {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max())}
        return Metrics(
            queue_depth=max(0, enqueued - dequeued),
            running=len(self._running),
            submitted=enqueued,
            completed=loop["completed"],
            failed=worker["failed"],
            invalid=loop["invalid"],
            overloaded=loop["overloaded"],
            deadline_exceeded=loop["deadline_exceeded"],
            cancelled=worker["cancelled"] + loop["cancelled"],
            batches=worker["batches"],
            batch_sizes=sizes,
            latency_ms=latency,
        )


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _joined(batch: Sequence[_Request]) -> tuple[dict[str, Array], int]:
    """The inputs of a batch's requests joined along the batch axis, and its items."""
    if len(batch) == 1:
        return batch[0].arrays, batch[0].items
    first = batch[0].arrays
    joined = {name: np.concatenate([request.arrays[name] for request in batch]) for name in first}
    return joined, sum(request.items for request in batch)


def _slices(batch: Sequence[_Request], outputs: Mapping[str, Array]) -> list[_Answer]:
    """Each request's part of a batch's outputs: a row for a bare request, a slice for the others."""
    if len(outputs) == 1:
        ((name, array),) = outputs.items()
        if len(array) == len(batch):  # one item each (the usual case): rows in one step, no indexing
            return [
                (request, {name: row if request.bare else array[n : n + 1]})
                for n, (request, row) in enumerate(zip(batch, array, strict=True))
            ]
    done = []
    start = 0
    for request in batch:
        stop = start + request.items
        if request.bare:
            done.append((request, {name: array[start] for name, array in outputs.items()}))
        else:
            done.append((request, {name: array[start:stop] for name, array in outputs.items()}))
        start = stop
    return done


def _by_side(answers: list[tuple[_Request, Any]]) -> list[tuple[_Side, list[tuple[_Request, Any]]]]:
    """``answers`` grouped by their requests' loops (nearly always one)."""
    first = answers[0][0].side
    if all(request.side is first for request, _ in answers):
        return [(first, answers)]
    groups: dict[_Side, list[tuple[_Request, Any]]] = {}
    for answer in answers:
        groups.setdefault(answer[0].side, []).append(answer)
    return list(groups.items())


async def start_batcher(
    executor: Executor, contributions: Contributions, config: InstrumentConfig, *, extension: str
) -> Batcher:
    """Start the batcher of an instrument with the declared ``contributions`` and ``config``, on the
    running loop: the same in both tiers, only ``executor`` differs."""
    inputs = contributions.inputs
    batcher = Batcher(
        executor,
        InputChecker(inputs, reject_nan=config.reject_nan, extension=extension),
        config.batching,
        name=extension,
        extension=extension,
        batch_limit=1 if any(spec.shape[0] == 1 for spec in inputs) else None,
    )
    await batcher.start()
    return batcher
