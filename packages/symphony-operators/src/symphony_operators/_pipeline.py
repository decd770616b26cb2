"""Pipelines: operators composed into one lazy query per output, checked before anything runs.

A pipeline is a small graph: named sources (files or frames), named steps (an operator applied to a
source or to an earlier step) and sinks (files written from a source or a step). `Pipeline.build`
composes every operator's query and checks each frame against the schemas the operators declare,
using only query plans (``collect_schema``): a missing column or a wrong dtype is reported with its
operator and column before any data is read. `Plan.run` then runs every sink in one ``pl.collect_all``,
so work shared by several sinks runs once, and writes each output atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from symphony_core import GuardDenied

from ._conform import (
    FILE_COLUMN,
    QUARANTINE_SCHEMA,
    BadRows,
    Conformed,
    conform,
    first_bad_row,
    parsable,
    text_columns,
)
from ._errors import BadData, Mismatch, PipelineError, SchemaMismatch
from ._files import (
    IF_EXISTS,
    TEXT_FORMATS,
    Engine,
    Format,
    IfExists,
    Target,
    expand,
    format_of,
    scan_files,
    sink_all,
    stream,
)
from ._operator import Operator
from ._schema import Column, check, dtype_text

if TYPE_CHECKING:
    from symphony_core import Host

ENGINES: tuple[Engine, ...] = ("auto", "in-memory", "streaming")
POLICIES: tuple[BadRows, ...] = ("fail", "quarantine")


@dataclass(frozen=True)
class Source:
    """Where a pipeline's data comes from: files (a path, folder or glob) or a frame made in code."""

    name: str
    path: str | None = None
    frame: pl.LazyFrame | None = None
    format: Format | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return f"source '{self.name}'" + (f" ({self.path})" if self.path else "")


@dataclass(frozen=True)
class Step:
    """One operator applied to the output of a source or an earlier step, with config values for this use.

    With ``host``, the operator's code runs through that host (``host.call``), under the permissions the
    user granted it; the operator must be running there.
    """

    name: str
    operator: Operator[Any]
    input: str
    config: Mapping[str, Any] = field(default_factory=dict)
    host: Host | None = None

    def query(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        """This step's lazy query on ``frame`` (the operator's code runs; nothing is collected)."""
        config = dict(self.config) or None
        if self.host is not None:
            result: pl.LazyFrame = self.host.call(self.operator.id, "query", frame, config)
            return result
        return self.operator.query(frame, config)


@dataclass(frozen=True)
class Sink:
    """A file written from the output of a source or step."""

    input: str
    target: Target


@dataclass(frozen=True)
class Pipeline:
    """Operators composed into lazy queries, from sources to sinks; build it to check it, run it to write.

    A pipeline is immutable: `source`, `step` and `sink` return a new one. A step's ``input`` and a
    sink's ``input`` default to the node added last, so a linear chain needs no names::

        routes = (
            Pipeline(engine="streaming")
            .source("flights", "data/flights-*.parquet")
            .step(CleanFlights.create())
            .step(RouteDelays.create())
            .sink("out/routes.parquet")
        )
        routes.run()
    """

    name: str = "pipeline"
    engine: Engine = "auto"
    on_bad_rows: BadRows = "fail"
    quarantine: Target | str | os.PathLike[str] | None = None
    sources: tuple[Source, ...] = ()
    steps: tuple[Step, ...] = ()
    sinks: tuple[Sink, ...] = ()

    def __post_init__(self) -> None:
        if self.quarantine is not None and not isinstance(self.quarantine, Target):
            object.__setattr__(self, "quarantine", Target.of(self.quarantine))
        if self.engine not in ENGINES:
            raise PipelineError(f"unknown engine '{self.engine}': use one of {', '.join(ENGINES)}")
        if self.on_bad_rows not in POLICIES:
            raise PipelineError(f"unknown on_bad_rows '{self.on_bad_rows}': use one of {', '.join(POLICIES)}")
        if self.on_bad_rows == "quarantine" and self.quarantine is None:
            raise PipelineError(
                f"pipeline '{self.name}' sets rows aside (on_bad_rows = 'quarantine') but has nowhere to put them",
                hint="give a quarantine file, e.g. quarantine = 'out/rejected.csv'",
            )

    @classmethod
    def chain(
        cls,
        data: str | os.PathLike[str] | pl.LazyFrame | pl.DataFrame,
        *operators: Operator[Any],
        **options: Any,
    ) -> Pipeline:
        """A linear pipeline: one source (named ``input``) through ``operators`` in order."""
        pipeline = cls(**options).source("input", data)
        for operator in operators:
            pipeline = pipeline.step(operator)
        return pipeline

    def source(
        self,
        name: str,
        data: str | os.PathLike[str] | pl.LazyFrame | pl.DataFrame,
        *,
        format: str | None = None,
        **options: Any,
    ) -> Pipeline:
        """Add a source: files (a path, folder or glob; ``options`` go to polars' scan) or a frame."""
        self._new_name(name)
        if isinstance(data, (pl.LazyFrame, pl.DataFrame)):
            source = Source(name, frame=data.lazy())
        else:
            path = os.fspath(data)
            fmt = None if os.path.isdir(path) and format is None else format_of(path, format)
            source = Source(name, path=path, format=fmt, options=options)
        return replace(self, sources=(*self.sources, source))

    def step(
        self,
        operator: Operator[Any],
        *,
        name: str | None = None,
        input: str | None = None,
        config: Mapping[str, Any] | None = None,
        host: Host | None = None,
    ) -> Pipeline:
        """Add a step: ``operator`` applied to ``input`` (default: the node added last).

        ``name`` defaults to the operator's id; ``config`` values go over the operator's own config for
        this step only; ``host`` runs the operator's code through that host, under its grants.
        """
        chosen = name or self._free_name(operator.id)
        self._new_name(chosen)
        source = input or self._last()
        return replace(self, steps=(*self.steps, Step(chosen, operator, source, dict(config or {}), host)))

    def sink(
        self,
        path: str | os.PathLike[str],
        *,
        input: str | None = None,
        format: str | None = None,
        **options: Any,
    ) -> Pipeline:
        """Add an output file written from ``input`` (default: the node added last); ``options`` go to polars."""
        try:
            target = Target.of(path, format, **options)
        except ValueError as exc:
            raise PipelineError(f"pipeline '{self.name}': cannot write {os.fspath(path)}: {exc}") from None
        return replace(self, sinks=(*self.sinks, Sink(input or self._last(), target)))

    def build(self) -> Plan:
        """Compose every step's query and check the whole graph against the declared schemas.

        Runs the operators' ``apply`` (which only builds queries) and reads file metadata (headers,
        Parquet footers); reads no data. Raises `SchemaMismatch` listing every column at fault, `BadData`
        for missing or empty inputs and files whose columns drift apart, `PipelineError` for a graph
        that does not hold together.
        """
        return _Builder(self).build()

    def run(self, *, engine: Engine | None = None) -> Run:
        """`build`, then `Plan.run`: every sink written in one go."""
        return self.build().run(engine=engine)

    def collect(self, node: str | None = None, *, engine: Engine | None = None) -> pl.DataFrame:
        """`build`, then `Plan.collect`: one node's result in memory."""
        return self.build().collect(node, engine=engine)

    def sink_parquet(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """`build`, then `Plan.sink_parquet` (``node``, ``if_exists`` and polars' options as there): one
        node streamed to a Parquet file, never whole in memory."""
        return self.build().sink_parquet(path, **options)

    def sink_ipc(self, path: str | os.PathLike[str], **options: Any) -> Path:
        """`build`, then `Plan.sink_ipc`: one node streamed to an Arrow IPC file, never whole in memory."""
        return self.build().sink_ipc(path, **options)

    def _names(self) -> list[str]:
        return [source.name for source in self.sources] + [step.name for step in self.steps]

    def _new_name(self, name: str) -> None:
        if not name:
            raise PipelineError("a source or step needs a name")
        if name in self._names():
            raise PipelineError(f"pipeline '{self.name}' already has a source or step named '{name}'")

    def _free_name(self, wanted: str) -> str:
        names, n, name = set(self._names()), 1, wanted
        while name in names:
            n += 1
            name = f"{wanted}#{n}"
        return name

    def _last(self) -> str:
        names = self._names()
        if not names:
            raise PipelineError(f"pipeline '{self.name}' has no source yet: add one with .source(name, data)")
        return names[-1]


@dataclass(frozen=True)
class Run:
    """What a run wrote: each sink's file (in the order the sinks were added) and the quarantine file."""

    outputs: tuple[Path, ...]
    quarantine: Path | None


@dataclass(frozen=True)
class _Input:
    """A source made ready: its frame after conforming, and how to read it again to find a bad row."""

    source: Source
    files: tuple[Path, ...]
    conformed: Conformed
    overrides: Mapping[str, Any]


@dataclass(frozen=True)
class Plan:
    """A built pipeline: every node's checked lazy query, ready to run. Building it read no data."""

    pipeline: Pipeline
    frames: Mapping[str, pl.LazyFrame]
    inputs: tuple[_Input, ...]

    def frame(self, node: str | None = None) -> pl.LazyFrame:
        """The lazy query of a source or step (default: the last step), to inspect or to run yourself."""
        name = node or self.pipeline._last()
        if name not in self.frames:
            raise PipelineError(f"pipeline '{self.pipeline.name}' has no source or step named '{name}'")
        return self.frames[name]

    def schema(self, node: str | None = None) -> pl.Schema:
        """The schema a node's result will have, from its plan."""
        return self.frame(node).collect_schema()

    def explain(self, node: str | None = None) -> str:
        """polars' optimized plan of a node's query."""
        return self.frame(node).explain()

    @property
    def quarantine(self) -> pl.LazyFrame | None:
        """The rows set aside (``on_bad_rows = "quarantine"``): source, file, reason, record as JSON."""
        if self.pipeline.on_bad_rows != "quarantine":
            return None
        rejected = [i.conformed.rejected for i in self.inputs if i.conformed.rejected is not None]
        return pl.concat(rejected) if rejected else pl.LazyFrame(schema=QUARANTINE_SCHEMA)

    def collect(self, node: str | None = None, *, engine: Engine | None = None) -> pl.DataFrame:
        """Run one node's query once (a single ``collect``) and return its result.

        With ``on_bad_rows = "quarantine"`` the rows set aside are left out and not written anywhere:
        `run` writes them, or collect `quarantine` yourself.
        """
        frame = self.frame(node)
        with self._reporting():
            result: pl.DataFrame = frame.collect(engine=engine or self.pipeline.engine)
        return result

    def run(self, *, engine: Engine | None = None) -> Run:
        """Write every sink (and the quarantine file) in one ``pl.collect_all``, atomically.

        Each file appears (replacing an older one) only if the whole run succeeded; a failed run leaves
        every output as it was and no temporary file behind.
        """
        pipeline = self.pipeline
        if not pipeline.sinks:
            raise PipelineError(f"pipeline '{pipeline.name}' has no sink", hint="add one with .sink(path)")
        outputs = [(self.frames[sink.input], sink.target) for sink in pipeline.sinks]
        quarantine = self.quarantine
        if quarantine is not None and isinstance(pipeline.quarantine, Target):
            outputs.append((quarantine, pipeline.quarantine))
        with self._reporting():
            written = sink_all(outputs, engine=engine or pipeline.engine)
        return Run(tuple(written[: len(pipeline.sinks)]), written[-1] if quarantine is not None else None)

    def sink_parquet(
        self,
        path: str | os.PathLike[str],
        *,
        node: str | None = None,
        if_exists: IfExists = "replace",
        **options: Any,
    ) -> Path:
        """Run one node (default: the last step) on polars' streaming engine and write its rows to a
        Parquet file as they are made, so a result larger than memory never is in memory whole.

        The file appears (over an older one with ``if_exists="replace"``; ``"fail"`` refuses to) only when
        the whole run succeeded. Isolated steps fused together run in a runner that streams their rows here
        batch by batch; a step that cannot stream (one that runs step by step) raises `PipelineError` naming it
        and why, before anything runs. ``options`` go to polars' ``sink_parquet``.
        """
        return self._stream(node, path, "parquet", if_exists, options)

    def sink_ipc(
        self,
        path: str | os.PathLike[str],
        *,
        node: str | None = None,
        if_exists: IfExists = "replace",
        **options: Any,
    ) -> Path:
        """`sink_parquet`, writing an Arrow IPC (Feather v2) file; ``options`` go to polars' ``sink_ipc``."""
        return self._stream(node, path, "ipc", if_exists, options)

    def _stream(
        self,
        node: str | None,
        path: str | os.PathLike[str],
        format: Format,
        if_exists: IfExists,
        options: Mapping[str, Any],
    ) -> Path:
        from ._isolated import fused_of

        pipeline = self.pipeline
        name = node or pipeline._last()
        frame = self.frame(name)
        target = Target(Path(os.path.abspath(path)), format, dict(options))
        where = f"pipeline '{pipeline.name}': cannot stream '{name}' to {target.path}"
        if if_exists not in IF_EXISTS:
            raise PipelineError(
                f"{where}: unknown if_exists '{if_exists}'", hint=f"use one of {', '.join(IF_EXISTS)}"
            )
        if if_exists == "fail" and os.path.lexists(target.path):
            raise PipelineError(
                f"{where}: the file exists",
                hint="remove it, choose another path, or pass if_exists='replace' to replace it",
            )
        found = fused_of(frame)
        if found is None:
            self._streams(name, where)
        try:
            with self._reporting():
                if found is not None:  # its rows stream from the runner of its fused steps
                    fused, step = found
                    frame = step.fused_stream(fused, self.schema(name))
                return stream(frame, target, if_exists=if_exists)
        except GuardDenied:
            raise
        except OSError as exc:
            if if_exists == "fail" and isinstance(exc, FileExistsError) and os.path.lexists(target.path):
                raise PipelineError(
                    f"{where}: a file appeared there while it ran; the result was not written",
                    hint="remove it, choose another path, or pass if_exists='replace' to replace it",
                ) from None
            raise PipelineError(
                f"{where}: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
                hint="choose a path in a folder this process can create and write",
            ) from None

    def _streams(self, name: str, where: str) -> None:
        """Raise `PipelineError` naming the first step before ``name`` whose rows would be held in memory
        whole: an isolated step run step by step, or a fused one whose rows come back for a step here."""
        from ._isolated import apart, fused_of

        steps = {step.name: step for step in self.pipeline.steps}
        lineage: list[Step] = []
        wanted = [name]
        while wanted:
            step = steps.get(wanted.pop())
            if step is not None:
                lineage.append(step)
                wanted.append(step.input)
        lineage.reverse()
        hint = "use run() or collect(), which hold results in memory, or make the step fusable: polars' "
        hint += "native expressions only (no Python function, no file of its own)"
        for step in lineage:
            found = apart(self.frames[step.name])
            if found is not None:
                raise PipelineError(
                    f"{where}: step '{step.name}' ({step.operator.id}) runs step by step in its operator's "
                    f"workers ({found[0]}), which takes its input and its result whole",
                    extension=step.operator.id,
                    hint=hint,
                )
        for step in lineage:
            after = next((s for s in lineage if s.input == step.name), None)
            if after is None or fused_of(self.frames[step.name]) is None or fused_of(self.frames[after.name]):
                continue
            raise PipelineError(
                f"{where}: step '{after.name}' ({after.operator.id}) runs in this process on the rows of "
                f"isolated step '{step.name}' ({step.operator.id}), which come back whole",
                extension=after.operator.id,
                hint="run the steps in this process before the isolated ones, or isolate them too",
            )

    def _reporting(self) -> _Reporting:
        return _Reporting(self)


class _Reporting:
    """Turns polars' failure in a run into `BadData` naming file, row, column and operator, when it can."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None or not isinstance(error, pl.exceptions.PolarsError):
            return
        for found in self._bad_rows():
            raise found from error
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PipelineError(
            f"pipeline '{self.plan.pipeline.name}' failed while running: {first}",
            hint="the query failed inside polars; the message above is polars' own",
        ) from error

    def _bad_rows(self) -> list[BadData]:
        found = []
        for ready in self.plan.inputs:
            parses = ready.conformed.parses
            if not parses:
                continue
            source = ready.source
            if source.frame is not None:
                places: list[tuple[str, pl.LazyFrame]] = [(source.describe(), source.frame)]
            else:
                assert source.format is not None
                places = [
                    (str(file), scan_files([file], source.format, {**source.options, **ready.overrides}))
                    for file in ready.files
                ]
            for where, frame in places:
                bad = first_bad_row(frame, parses)
                if bad is not None:
                    row, parse, value = bad
                    found.append(
                        BadData(
                            f"{where}: row {row}, column '{parse.column}' holds {value!r}, which is not "
                            f"{parse.dtype_text} as operator {parse.operator} declares it",
                            file=where,
                            column=parse.column,
                            operator=parse.operator,
                            hint="fix the value, or set on_bad_rows = 'quarantine' to set such rows aside",
                        )
                    )
                    return found
        return found


class _Builder:
    """Builds a `Plan`: sources made ready, steps composed in order, every frame checked."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.frames: dict[str, pl.LazyFrame] = {}
        self.schemas: dict[str, pl.Schema] = {}  # a step's output schema is the next step's input schema
        self.mismatches: list[Mismatch] = []
        self.broken: set[str] = set()

    def build(self) -> Plan:
        pipeline = self.pipeline
        if not pipeline.sources:
            raise PipelineError(
                f"pipeline '{pipeline.name}' has no source", hint="add one with .source(name, data)"
            )
        self._check_graph()
        inputs = tuple(self._ready(source) for source in pipeline.sources)
        for step in pipeline.steps:
            self._compose(step)
        if self.mismatches:
            raise SchemaMismatch(self.mismatches, pipeline=pipeline.name)
        self._prepare()
        return Plan(pipeline, dict(self.frames), inputs)

    def _prepare(self) -> None:
        """Start what runs the fused isolated steps of each output (a runner), as workers start with
        their operator: the first run does not wait for it."""
        from ._isolated import prepare

        read = {step.input for step in self.pipeline.steps}
        outputs = {sink.input for sink in self.pipeline.sinks} | {
            step.name for step in self.pipeline.steps if step.name not in read
        }
        for name in outputs:
            frame = self.frames.get(name)
            if frame is not None:
                prepare(frame)

    def _check_graph(self) -> None:
        known: set[str] = {source.name for source in self.pipeline.sources}
        for step in self.pipeline.steps:
            if step.input not in known:
                raise PipelineError(
                    f"pipeline '{self.pipeline.name}': step '{step.name}' reads '{step.input}', "
                    "which is no source nor earlier step",
                    hint="name a source or a step listed before it",
                )
            known.add(step.name)
        for sink in self.pipeline.sinks:
            if sink.input not in known:
                raise PipelineError(
                    f"pipeline '{self.pipeline.name}': the sink {sink.target.path} reads '{sink.input}', "
                    "which is no source nor step"
                )

    def _wanted(self, source: Source) -> dict[str, tuple[Column, str]]:
        """The columns the steps reading ``source`` declare, with the first operator declaring each."""
        wanted: dict[str, tuple[Column, str]] = {}
        for step in self.pipeline.steps:
            if step.input == source.name:
                for column in step.operator.contributions.input:
                    wanted.setdefault(column.name, (column, step.operator.id))
        return wanted

    def _ready(self, source: Source) -> _Input:
        wanted = self._wanted(source)
        policy = self.pipeline.on_bad_rows
        if source.frame is not None:
            frame = source.frame
            conformed = conform(frame, frame.collect_schema(), wanted, source=source.name, policy=policy)
            self.frames[source.name] = conformed.frame
            return _Input(source, (), conformed, {})
        assert source.path is not None
        files = tuple(expand(source.path))
        fmt = source.format or format_of(files[0])
        source = replace(source, format=fmt)
        overrides = _text_overrides(fmt, wanted, source.options)
        schema = self._file_schemas(source, files, fmt, overrides, wanted)
        options: dict[str, Any] = {**source.options, **overrides}
        needs_files = policy == "quarantine" and any(
            schema.get(name) == pl.String and parsable(column.polars_dtype)
            for name, (column, _) in wanted.items()
        )
        if needs_files:
            options["include_file_paths"] = FILE_COLUMN
        frame = scan_files(files, fmt, options)
        if needs_files:
            schema = {**schema, FILE_COLUMN: pl.String}
        conformed = conform(frame, schema, wanted, source=source.name, policy=policy)
        self.frames[source.name] = conformed.frame
        return _Input(source, files, conformed, overrides)

    def _file_schemas(
        self,
        source: Source,
        files: Sequence[Path],
        fmt: Format,
        overrides: Mapping[str, Any],
        wanted: Mapping[str, tuple[Column, str]],
    ) -> dict[str, Any]:
        """Each file's schema (headers and footers only): files must agree with the first one."""
        first: dict[str, Any] | None = None
        for file in files:
            try:
                schema = dict(scan_files([file], fmt, {**source.options, **overrides}).collect_schema())
            except pl.exceptions.PolarsError as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BadData(
                    f"{source.describe()}: cannot read {file}: {message}",
                    file=str(file),
                    hint="an empty or truncated file cannot be used: remove it or write it again",
                ) from None
            if first is None:
                first = schema
                continue
            _drift(source, files[0], first, file, schema, wanted)
        assert first is not None
        return first

    def _compose(self, step: Step) -> None:
        if step.input in self.broken:
            self.broken.add(step.name)  # nothing more can be said about what follows a broken step
            return
        frame = self.frames[step.input]
        operator = step.operator
        where = next(
            (s.describe() for s in self.pipeline.sources if s.name == step.input), f"step '{step.input}'"
        )
        schema = self.schemas.get(step.input)
        if schema is None:
            schema = self.schemas[step.input] = frame.collect_schema()
        found = check(schema, operator.contributions.input, operator=operator.id, side="input", where=where)
        if found:
            self.mismatches += found
            self.broken.add(step.name)
            return
        result = step.query(frame)
        try:
            produced = result.collect_schema()
        except pl.exceptions.PolarsError as exc:
            raise PipelineError(
                f"pipeline '{self.pipeline.name}': step '{step.name}' ({operator.id}) builds a query polars "
                f"rejects: {str(exc).strip().splitlines()[0]}",
                extension=operator.id,
                hint="the operator's query refers to a column or type its input does not have",
            ) from None
        found = check(produced, operator.contributions.output, operator=operator.id, side="output")
        if found:
            self.mismatches += found
            self.broken.add(step.name)
            return
        self.frames[step.name] = result
        self.schemas[step.name] = produced


def _text_overrides(
    fmt: Format, wanted: Mapping[str, tuple[Column, str]], options: Mapping[str, Any]
) -> dict[str, Any]:
    """Scan options that read declared columns of a text file as text, for Symphony to parse."""
    if fmt not in TEXT_FORMATS:
        return {}
    columns = text_columns(wanted)
    if not columns:
        return {}
    given = dict(options.get("schema_overrides") or {})
    return {"schema_overrides": {**columns, **given}}


def _drift(
    source: Source,
    first_file: Path,
    first: Mapping[str, Any],
    file: Path,
    schema: Mapping[str, Any],
    wanted: Mapping[str, tuple[Column, str]],
) -> None:
    for name, dtype in first.items():
        found = schema.get(name)
        if found is not None and (source.format in TEXT_FORMATS or found == dtype):
            continue
        user = wanted.get(name)
        operator = user[1] if user else None
        needed = f"; operator {operator} reads it" if operator else ""
        if found is None:
            message = f"{source.describe()}: {file} has no column '{name}', which {first_file} has{needed}"
        else:
            message = (
                f"{source.describe()}: column '{name}' is {dtype_text(found)} in {file} but "
                f"{dtype_text(dtype)} in {first_file}{needed}"
            )
        raise BadData(
            f"schema drift in {message}",
            file=str(file),
            column=name,
            operator=operator,
            hint="every file of a source must have the same columns and dtypes: fix or move the odd file",
        )
    extra = [name for name in schema if name not in first]
    if extra:
        raise BadData(
            f"schema drift in {source.describe()}: {file} has column(s) {', '.join(extra)} that {first_file} lacks",
            file=str(file),
            column=extra[0],
            hint="every file of a source must have the same columns and dtypes: fix or move the odd file",
        )
