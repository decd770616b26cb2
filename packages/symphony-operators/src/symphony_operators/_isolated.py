"""`IsolatedOperator`: what stands in the host for an operator that runs in isolated workers.

The host never imports an isolated operator's code. The core makes this front for it (its kind's
``front``) with a `Workers` handle on its pool, and a pipeline composes it as any operator: its
``query`` returns a lazy frame, so the pipeline's plan stays one lazy query built and checked before any
data is read. What crosses the boundary is data only:

- when the pipeline is built, an empty frame with the step's input schema goes to a worker, which
  builds the operator's query on it and answers with an empty frame of the output schema
  (``Operator.query_schema``: from the plan, no data read);
- when the pipeline runs, polars asks this step for the columns the rest of the pipeline needs. A
  worker says which input columns the operator's query reads to make them (``Operator.query_reads``,
  asked once per set of columns), the host collects only those columns of the step's input and sends
  them through shared memory, and the worker runs the query and sends back the result
  (``Operator.query_run``), which is checked against the schema built before. Filters the host's plan
  pushes into this step run here, on that result.

No plan, expression or callable ever comes back from a worker; the host runs only its own queries and
the kit's checks. Each step runs in its own extension's workers, under that extension's grants.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
from polars.io.plugins import register_io_source

from symphony_core import Context, ExtensionFailed

from ._errors import PipelineError
from ._operator import Operator
from ._schema import dtype_text

if TYPE_CHECKING:
    from symphony_core import Workers

_WORKER_METHODS = ("query_schema", "query_reads", "query_run")


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
        """Stop the workers; each runs the operator's own ``deactivate`` first."""
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
        to find its schema; its rows are made in a worker each time the result is collected."""
        values = dict(config or {})
        given = frame.collect_schema()
        answer = self.workers.call("query_schema", pl.DataFrame(schema=given), values or None)
        empty = self._frame(answer, "query_schema")
        if empty.height:
            raise self._broken("query_schema", f"answered with {empty.height} rows instead of none")
        schema = empty.schema
        run = functools.partial(self._rows, frame, given, values, schema)
        return register_io_source(
            io_source=run, schema=schema, validate_schema=True, is_pure=True, explain_name=self.id
        )

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
        wanted = list(schema) if with_columns is None else [name for name in schema if name in with_columns]
        reads = self._reads_for(given, config, wanted)
        data = frame.select(reads).collect()
        shape = pl.DataFrame(schema=given) if len(reads) < len(given) else None
        answer = self.workers.call("query_run", data, config or None, wanted, shape)
        result = self._frame(answer, "query_run")
        expected = {name: schema[name] for name in wanted}
        if result.columns != wanted or any(result.schema[name] != dtype for name, dtype in expected.items()):
            raise self._broken(
                "query_run",
                f"made columns {_columns(result.schema)} where its query was built to make {_columns(expected)}",
            )
        if predicate is not None:
            result = result.filter(predicate)
        if n_rows is not None:
            result = result.head(n_rows)
        yield result

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

    def _frame(self, answer: Any, method: str) -> pl.DataFrame:
        if not isinstance(answer, pl.DataFrame):
            raise self._broken(method, f"answered a {type(answer).__name__}, not a frame")
        return answer

    def _broken(self, method: str, what: str) -> PipelineError:
        return PipelineError(
            f"its worker's {method} {what}",
            extension=self.id,
            hint="the operator overrides what the kit's Operator does there; report it to its authors",
        )

    def __repr__(self) -> str:
        return f"<IsolatedOperator {self.id}>"


def _columns(schema: Mapping[str, Any]) -> str:
    return "[" + ", ".join(f"{name}: {dtype_text(dtype)}" for name, dtype in schema.items()) + "]"
