"""`IsolatedOperator`: what stands in the host for an operator that runs in isolated workers.

The host never imports an isolated operator's code. The core makes this front for it (its kind's
``front``) with a `Workers` handle on its pool, and a pipeline composes it as any operator: its
``query`` returns a lazy frame, so the pipeline's plan stays one lazy query built and checked before any
data is read. What crosses the boundary is data only.

When the pipeline is built, an empty frame with the step's input schema goes to a worker, which builds
the operator's query on it and answers with an empty frame of the output schema and polars' plan of the
query as JSON (``Operator.query_plan``; nothing is read). Then the step runs in one of two ways:

- **fused** (``_fused``): the host checks the plan against its allow-list and stitches it onto what
  feeds the step, its own scan of files or the fused steps before it. When the result is collected, a
  runner (``Workers.helper``, holding no extension's code, reading only the scanned files) runs the
  whole query and sends back the columns polars asks for, checked against the schema built before;
- **step by step**, when the plan cannot be fused: polars asks this step for the columns the rest of the
  pipeline needs, a worker says which input columns the query reads to make them
  (``Operator.query_reads``, asked once per set of columns), the host collects only those columns of
  the step's input and sends them through shared memory, and the worker runs the query and sends back
  the result (``Operator.query_run``), checked the same way.

Filters the host's plan pushes into a step run here, on its result. No plan from a worker is ever
deserialized in the host, and no callable crosses; a step run step by step runs in its own extension's
workers, under that extension's grants.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import polars as pl
from polars.io.plugins import register_io_source

from symphony_core import Context, ExtensionFailed, SymphonyError

from ._errors import PipelineError
from ._fused import (
    MAX_SOURCE_BYTES,
    RUNNER,
    Fused,
    NotFusable,
    check_source,
    check_step,
    empty_frame,
    parse,
    runner_reads,
    serialize,
)
from ._operator import Operator
from ._schema import dtype_text

if TYPE_CHECKING:
    from symphony_core import Workers

log = logging.getLogger("symphony.operators")
RUNNERS = 2
"""Runners an isolated operator keeps for the fused pipelines it ends, one per set of source files."""
STREAM_BATCH_BYTES = 16 << 20
"""About how large a batch a runner streams to the host is: large enough to cross through shared memory
(smaller ones cross through the pipe, slower per byte), small enough that a few fit any worker's memory."""
_IN_MEMORY = re.compile(r"^\s*DF \[", re.MULTILINE)
"""How polars' ``explain`` shows a frame made in code (a ``DataFrameScan``)."""
_FUSED: dict[int, tuple[weakref.ref[pl.LazyFrame], Fused, IsolatedOperator]] = {}
"""The checked plan behind each lazy frame an isolated step returned, and that step's stand-in, while the
frame lives (by identity: lazy frames cannot be hashed)."""


_APART: dict[int, tuple[weakref.ref[pl.LazyFrame], str, IsolatedOperator]] = {}
"""Why each lazy frame an isolated step returned without fusing it runs step by step, while it lives."""


def _remember(frame: pl.LazyFrame, fused: Fused, step: IsolatedOperator) -> None:
    key = id(frame)
    _FUSED[key] = (weakref.ref(frame, lambda _, key=key: _FUSED.pop(key, None)), fused, step)  # type: ignore[misc]


def _recall(frame: pl.LazyFrame) -> tuple[Fused, IsolatedOperator] | None:
    entry = _FUSED.get(id(frame))
    return (entry[1], entry[2]) if entry is not None and entry[0]() is frame else None


def fused_of(frame: pl.LazyFrame) -> tuple[Fused, IsolatedOperator] | None:
    """The checked plan that makes ``frame`` and the stand-in of its last step, when isolated steps fused
    make it; None otherwise."""
    return _recall(frame)


def apart(frame: pl.LazyFrame) -> tuple[str, IsolatedOperator] | None:
    """Why ``frame``, an isolated step's result, runs step by step (and that step's stand-in); None when
    no isolated step made it so."""
    entry = _APART.get(id(frame))
    return (entry[1], entry[2]) if entry is not None and entry[0]() is frame else None


def prepare(frame: pl.LazyFrame) -> None:
    """Start the runner of the fused steps that make ``frame``, if they are fused (a pipeline's output)."""
    found = _recall(frame)
    if found is None:
        return
    fused, step = found
    try:
        step._runner(fused.reads)
    except SymphonyError as exc:  # the run starts it again, and says what stops it
        log.warning("the runner of the fused steps %s did not start: %s", ", ".join(fused.steps), exc)


_WORKER_METHODS = ("query_schema", "query_reads", "query_run")
FUSED = "fused"


class IsolatedOperator(Operator[Any]):
    """The host's stand-in for an isolated operator: its declarations here, its queries in its workers.

    It is an `Operator` as pipelines and ``load_pipeline`` see one: ``id``, ``contributions`` (read from the
    manifest, in the host) and ``query``, which returns a lazy frame whose rows its workers make. Every
    other method the operator defines is called in a worker.
    """

    def __init__(self, workers: Workers, context: Context) -> None:
        self.workers = workers
        self.context = context
        self._reads: dict[tuple[str, ...], list[str]] = {}
        self._runners: dict[frozenset[str], Any] = {}  # a `Workers.helper` each
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        workers: Workers | None = self.__dict__.get("workers")
        if workers is None or name not in workers.methods:  # only what the operator defines
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return functools.partial(workers.call, name)

    def activate(self, context: Context) -> None:
        """Read the declared schemas from the manifest, here; the workers have activated the operator."""
        super().activate(context)
        missing = [name for name in _WORKER_METHODS if name not in self.workers.methods]
        if missing:
            raise ExtensionFailed(
                f"its class has no {', '.join(missing)} for the host's pipelines to call",
                extension=context.id,
                hint="derive the entry point's class from symphony_operators.Operator",
            )

    def deactivate(self) -> None:
        """Stop the workers (each runs the operator's own ``deactivate`` first) and the runners."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.close()
        self.workers.close()

    @property
    def config(self) -> Any:
        """The operator's config as its workers resolved it: plain data, secrets masked (None without a
        config model). It comes from a worker: check it before relying on it."""
        return self.workers.config()

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """The operator's ``apply`` on ``frame``, lazily: `query` with no config of the step's own."""
        return self.query(frame)

    def query(self, frame: pl.LazyFrame, config: Mapping[str, Any] | None = None) -> pl.LazyFrame:
        """The operator's query on ``frame``, as a lazy frame: a worker builds it now on an empty frame
        of ``frame``'s schema, for its schema and its plan. When the plan passes the host's checks it runs
        fused with the plans before it (see ``_fused``); else its rows are made in a worker each time the
        result is collected."""
        values = dict(config or {})
        given = frame.collect_schema()
        shape = empty_frame(given)
        text: Any = None
        if "query_plan" in self.workers.methods:  # one call for both
            answer, text = self._planned(self.workers.call("query_plan", shape, values or None, True))
        else:  # a kit from before plans crossed
            answer = self.workers.call("query_schema", shape, values or None)
            text = NotFusable("its worker's kit builds no plans")
        empty = self._frame(answer, "query_schema")
        if empty.height:
            raise self._broken("query_schema", f"answered with {empty.height} rows instead of none")
        schema = empty.schema
        fused = text if isinstance(text, NotFusable) else self._fuse(frame, given, text)
        if isinstance(fused, NotFusable):
            run = functools.partial(self._rows, frame, given, values, schema)
        else:
            run = functools.partial(self._fused_rows, fused, schema)
        result = self._source(run, schema)
        key = id(result)
        if isinstance(fused, NotFusable):  # kept to say why its result cannot stream
            _APART[key] = (weakref.ref(result, lambda _, key=key: _APART.pop(key, None)), str(fused), self)  # type: ignore[misc]
        else:
            _remember(result, fused, self)  # the next isolated step reads this step's plan, not its rows
        return result

    def _planned(self, answer: Any) -> tuple[Any, Any]:
        """The schema and the plan a worker's ``query_plan`` answered; instead of the plan, why it is not
        fused when its polars is not the host's (a managed environment may have another: its plans
        would be read another way)."""
        if not (isinstance(answer, (list, tuple)) and len(answer) == 3):
            raise self._broken(
                "query_plan", f"answered a {type(answer).__name__}, not a schema, a plan and a polars version"
            )
        schema, text, version = answer
        if version != pl.__version__:
            why = f"its polars {str(version)[:40]!r} is not the host's {pl.__version__}"
            log.debug("%s runs step by step: %s", self.id, why)
            return schema, NotFusable(why)
        return schema, text

    def _fuse(self, frame: pl.LazyFrame, given: pl.Schema, text: Any) -> Fused | NotFusable:
        """This step's plan stitched onto what feeds it, checked (see ``_fused``), or why it cannot be."""
        known = _recall(frame)
        try:
            upstream = check_source(_source_plan(frame)) if known is None else known[0]
            fused = check_step(parse(text, "its plan"), given, upstream, self.id, size=len(text))
            runner_reads(fused.reads)
        except NotFusable as exc:
            log.debug("%s runs step by step: %s", self.id, exc)
            return exc
        return fused

    def _fused_rows(
        self,
        fused: Fused,
        schema: pl.Schema,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        """Make the rows of the fused steps through this one, in a runner (polars calls this)."""
        wanted = _wanted(schema, with_columns)
        runner = self._runner(fused.reads)
        answer = self._in_runner(
            runner, fused, "run", fused.text, wanted, n_rows if predicate is None else None
        )
        result = self._checked(answer, FUSED, wanted, schema)
        yield _narrowed(result, predicate, n_rows)

    def fused_stream(self, fused: Fused, schema: pl.Schema) -> pl.LazyFrame:
        """The rows of the fused steps through this one as a lazy frame whose rows a runner streams,
        batch by batch: a sink here writes each batch as it comes, so neither process holds them whole."""
        return self._source(functools.partial(self._fused_batches, fused, schema), schema)

    def _source(self, rows: Callable[..., Iterator[pl.DataFrame]], schema: pl.Schema) -> pl.LazyFrame:
        """A lazy frame of ``schema`` whose rows ``rows`` makes when polars runs a plan that reads it."""
        return register_io_source(
            io_source=rows, schema=schema, validate_schema=True, is_pure=True, explain_name=self.id
        )

    def _fused_batches(
        self,
        fused: Fused,
        schema: pl.Schema,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        """The rows of the fused steps, streamed from a runner one batch at a time (polars calls this).
        The next batch is asked for while polars writes this one, so the runner and this process work at
        once; two batches at most are here at a time, besides what polars' sink keeps of its row group."""
        wanted = _wanted(schema, with_columns)
        runner = self._runner(fused.reads)
        limit = n_rows if predicate is None else None
        rows = _batch_rows(schema, wanted)
        stream = self._in_runner(runner, fused, "batches", fused.text, wanted, limit, rows)
        left = n_rows
        ahead = ThreadPoolExecutor(1, thread_name_prefix=f"symphony-stream-{self.id}")
        try:
            pending = ahead.submit(self._in_runner, runner, fused, "batch", stream)
            while True:
                answer = pending.result()
                if answer is None:
                    stream = None  # read to its end: the runner closed it
                    return
                result = _narrowed(self._checked(answer, FUSED, wanted, schema), predicate, left)
                if left is not None:
                    left -= result.height
                if left is None or left > 0:
                    pending = ahead.submit(self._in_runner, runner, fused, "batch", stream)
                yield result
                if left is not None and left <= 0:
                    return
        finally:
            ahead.shutdown(wait=True)  # a batch still coming is waited for before the stream is dropped
            if stream is not None and runner.alive:
                with contextlib.suppress(SymphonyError):
                    runner.call("drop", stream)

    def _in_runner(self, runner: Any, fused: Fused, method: str, *args: Any) -> Any:
        """``method`` of a runner of ``fused``: polars' own error for a fault of the data (as in one
        process), `PipelineError` naming the steps for any other."""
        try:
            return runner.call(method, *args)
        except SymphonyError as exc:
            if not runner.alive:
                self._drop_runner(fused.reads, runner)
            data = _polars_error(exc)
            if data is not None:
                raise data from None
            steps = ", ".join(fused.steps)
            raise PipelineError(
                f"the fused steps {steps} failed where they run together: {exc}",
                extension=self.id,
                hint="check each step's query on its own (`Pipeline.collect` of each step), or give its "
                "operators more memory or time in the host policy's [limits]",
            ) from None

    def _runner(self, reads: frozenset[str]) -> Any:
        """The runner that may read ``reads``: kept while in use, the least recently used one stopped
        past `RUNNERS` (pipelines over other files each day do not pile up processes)."""
        stale = []
        with self._lock:
            runner = self._runners.pop(reads, None)
            if runner is None or not runner.alive:
                if runner is not None:
                    stale.append(runner)
                runner = self.workers.helper(
                    RUNNER,
                    name="runner",
                    read=runner_reads(reads),
                    reason="read the files of the pipeline's sources, for the steps fused after them",
                )
            self._runners[reads] = runner  # the most recently used goes last
            while len(self._runners) > RUNNERS:
                stale.append(self._runners.pop(next(iter(self._runners))))
        for old in stale:
            old.close()
        return runner

    def _drop_runner(self, reads: frozenset[str], runner: Any) -> None:
        with self._lock:
            if self._runners.get(reads) is runner:
                del self._runners[reads]
        runner.close()

    def _rows(
        self,
        frame: pl.LazyFrame,
        given: pl.Schema,
        config: dict[str, Any],
        schema: pl.Schema,
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        batch_size: int | None,
    ) -> Iterator[pl.DataFrame]:
        """Make the rows of this step (polars calls this when a plan that reads it runs)."""
        wanted = _wanted(schema, with_columns)
        reads = self._reads_for(given, config, wanted)
        data = frame.select(reads).collect()
        shape = pl.DataFrame(schema=given) if len(reads) < len(given) else None
        answer = self.workers.call("query_run", data, config or None, wanted, shape)
        result = self._checked(answer, "query_run", wanted, schema)
        yield _narrowed(result, predicate, n_rows)

    def _reads_for(self, given: pl.Schema, config: dict[str, Any], wanted: Sequence[str]) -> list[str]:
        """The input columns the query reads to make ``wanted``, as a worker found them (asked once)."""
        key = (json.dumps([list(given.items()), config, wanted], default=str, sort_keys=True),)
        known = self._reads.get(key)
        if known is not None:
            return known
        answer = self.workers.call("query_reads", pl.DataFrame(schema=given), config or None, list(wanted))
        if not isinstance(answer, list) or not all(
            isinstance(name, str) and name in given for name in answer
        ):
            raise self._broken("query_reads", f"answered {str(answer)[:200]!r}, not a list of input columns")
        reads = [name for name in given if name in set(answer)]
        self._reads[key] = reads
        return reads

    def _checked(self, answer: Any, method: str, wanted: list[str], schema: pl.Schema) -> pl.DataFrame:
        """``answer`` as the frame of ``wanted`` columns the step was built to make, or `PipelineError`."""
        result = self._frame(answer, method)
        expected = {name: schema[name] for name in wanted}
        if result.columns != wanted or any(result.schema[name] != dtype for name, dtype in expected.items()):
            raise self._broken(
                method,
                f"made columns {_columns(result.schema)} where its query was built to make {_columns(expected)}",
            )
        return result

    def _frame(self, answer: Any, method: str) -> pl.DataFrame:
        if not isinstance(answer, pl.DataFrame):
            raise self._broken(method, f"answered a {type(answer).__name__}, not a frame")
        return answer

    def _broken(self, method: str, what: str) -> PipelineError:
        if method == FUSED:
            subject = f"the plan its worker's query_plan built, run with the steps before it ({method}),"
        else:
            subject = f"its worker's {method}"
        return PipelineError(
            f"{subject} {what}",
            extension=self.id,
            hint="the operator overrides what the kit's Operator does there; report it to its authors",
        )

    def __repr__(self) -> str:
        return f"<IsolatedOperator {self.id}>"


def _wanted(schema: pl.Schema, with_columns: list[str] | None) -> list[str]:
    """The columns polars asks a step for (all when None), in the step's own order."""
    return list(schema) if with_columns is None else [name for name in schema if name in with_columns]


def _batch_rows(schema: pl.Schema, columns: Sequence[str]) -> int:
    """Rows of a streamed batch of ``columns``: about `STREAM_BATCH_BYTES`, from each column's width (its
    own for numbers, dates and booleans, a guess for text and nested values)."""
    width = 0
    for name in columns:
        dtype = schema[name]
        if dtype.is_numeric() or dtype.is_temporal() or dtype == pl.Boolean:
            width += 8
        elif dtype.is_nested():
            width += 64
        else:
            width += 24
    return max(4096, min(1_000_000, STREAM_BATCH_BYTES // max(width, 1)))


def _narrowed(result: pl.DataFrame, predicate: pl.Expr | None, n_rows: int | None) -> pl.DataFrame:
    """A step's rows with what polars pushed into it applied: its filter, then its row limit."""
    if predicate is not None:
        result = result.filter(predicate)
    return result if n_rows is None else result.head(n_rows)


def _polars_error(error: SymphonyError) -> pl.exceptions.PolarsError | None:
    """polars' own error that a runner raised (its class found among polars' exceptions, never imported
    by a name it sent), for the pipeline to report as it reports the same error in one process."""
    remote = getattr(error, "remote_type", "")
    prefix = "polars.exceptions."
    if not (isinstance(remote, str) and remote.startswith(prefix)):
        return None
    found = getattr(pl.exceptions, remote[len(prefix) :], None)
    if not (isinstance(found, type) and issubclass(found, pl.exceptions.PolarsError)):
        return None
    message = str(error).partition("\n  hint:")[0]
    return found(message.partition(f"{remote}: ")[2] or message)


def _source_plan(frame: pl.LazyFrame) -> Any:
    """The plan of what feeds the first fused step, as JSON data: the host's own query of its sources."""
    try:
        # A frame made in code would be written into the plan, byte by byte (seconds for a large one):
        # its rows cross by shared memory instead, step by step. Scans of files are what fuse.
        if _IN_MEMORY.search(frame.explain(optimized=False)):
            raise NotFusable("its input holds a frame made in code: its rows cross, not a plan")
        text = serialize(frame)
    except NotFusable:
        raise
    except Exception as exc:  # noqa: BLE001 - polars cannot write it without pickling Python: not fusable
        raise NotFusable(f"its input's plan cannot be written as data ({type(exc).__name__})") from None
    if len(text) > MAX_SOURCE_BYTES:
        raise NotFusable(
            f"its input's plan is {len(text)} bytes long (a frame made in code, written into it)"
        )
    return json.loads(text)


def _columns(schema: Mapping[str, Any]) -> str:
    return "[" + ", ".join(f"{name}: {dtype_text(dtype)}" for name, dtype in schema.items()) + "]"
