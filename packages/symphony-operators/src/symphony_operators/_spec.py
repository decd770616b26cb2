"""Pipeline specs: a pipeline written as TOML, naming installed operators by id, loaded through a host.

::

    [pipeline]
    name = "route-delays"
    engine = "streaming"              # "auto" (default), "in-memory" or "streaming"
    on_bad_rows = "quarantine"        # "fail" (default) or "quarantine"
    quarantine = "out/rejected.csv"   # where rows set aside go (needed with "quarantine")

    [sources.flights]
    path = "data/flights-*.csv"       # a file, folder or glob; relative to this file
    format = "csv"                    # optional: the suffix says
    options = { separator = "," }     # optional: polars scan options

    [[steps]]
    operator = "examples.route-delays"  # an installed operator's id
    name = "routes"                   # optional: the operator's id
    input = "flights"                 # optional: the step before, or the first source
    config = { min_flights = 10 }     # optional: over the operator's own config, for this step only

    [[sinks]]
    path = "out/routes.parquet"
    input = "routes"                  # optional: the last step
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from symphony_core import ErrorDetail

from ._conform import BadRows
from ._errors import SpecError
from ._files import Engine, Format, Target
from ._operator import Operator
from ._pipeline import Pipeline

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    from symphony_core import Host


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PipelineSection(_Model):
    """The ``[pipeline]`` table: how the whole pipeline runs."""

    name: str = Field(default="pipeline", min_length=1, description="Named in errors and logs.")
    engine: Engine = Field(default="auto", description="polars engine: `auto`, `in-memory` or `streaming`.")
    on_bad_rows: BadRows = Field(
        default="fail",
        description="A value that does not parse as its declared dtype stops the run (`fail`) or sets its row "
        "aside in the quarantine file (`quarantine`).",
    )
    quarantine: str | None = Field(
        default=None, description="The quarantine file (CSV, Parquet, NDJSON, IPC)."
    )


class SourceSpec(_Model):
    """A ``[sources.<name>]`` table: files to read."""

    path: str = Field(min_length=1, description="A file, folder or glob, relative to the spec file.")
    format: Format | None = Field(
        default=None, description="`csv`, `parquet`, `ndjson` or `ipc`; else the suffix."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Options for polars' `scan_<format>`.")


class StepSpec(_Model):
    """A ``[[steps]]`` entry: an installed operator applied to a source or an earlier step."""

    operator: str = Field(min_length=1, description="The id of an installed operator.")
    name: str | None = Field(default=None, description="The step's name (default: the operator's id).")
    input: str | None = Field(default=None, description="A source or earlier step (default: the one before).")
    config: dict[str, Any] = Field(default_factory=dict, description="Config values for this step only.")


class SinkSpec(_Model):
    """A ``[[sinks]]`` entry: a file written from a source or step."""

    path: str = Field(min_length=1, description="The output file, relative to the spec file.")
    input: str | None = Field(default=None, description="A source or step (default: the last step).")
    format: Format | None = Field(
        default=None, description="`csv`, `parquet`, `ndjson` or `ipc`; else the suffix."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Options for polars' `sink_<format>`.")


class PipelineSpec(_Model):
    """A whole pipeline spec file."""

    pipeline: PipelineSection = Field(default_factory=PipelineSection)
    sources: dict[str, SourceSpec] = Field(min_length=1, description="Named sources.")
    steps: list[StepSpec] = Field(default_factory=list, description="Steps, in order.")
    sinks: list[SinkSpec] = Field(min_length=1, description="Output files.")


def read_spec(path: str | os.PathLike[str]) -> PipelineSpec:
    """Read and validate a pipeline spec; `SpecError` names the file and each bad key."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"pipeline spec {file} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"cannot read pipeline spec {file}: {exc}", hint="fix the TOML syntax") from None
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            f"invalid pipeline spec {file}:",
            hint="see the pipeline spec format in the symphony-operators docs",
            problems=[
                ErrorDetail(f"{file}: {_location(error['loc'])}", error["msg"], error["type"])
                for error in exc.errors()
            ],
        ) from None


def load_pipeline(path: str | os.PathLike[str], host: Host) -> Pipeline:
    """The pipeline a spec file describes, its operators started through ``host``.

    Each operator runs as the host runs it: configured from its own layers, under the permissions the
    user granted, its ``apply`` called through ``host.call``. Relative paths are relative to the spec
    file. Call `Pipeline.build` (or `run`) on the result to check and run it.
    """
    file = Path(path).resolve()
    spec = read_spec(file)
    base = file.parent
    section = spec.pipeline
    quarantine = None if section.quarantine is None else Target.of(base / section.quarantine)
    pipeline = Pipeline(
        name=section.name, engine=section.engine, on_bad_rows=section.on_bad_rows, quarantine=quarantine
    )
    for name, source in spec.sources.items():
        pipeline = pipeline.source(name, base / source.path, format=source.format, **source.options)
    first_source = next(iter(spec.sources))
    for n, step in enumerate(spec.steps):
        operator = host.start(step.operator)
        if not isinstance(operator, Operator):
            raise SpecError(
                f"{file}: steps[{n}]: '{step.operator}' is a {getattr(operator, 'kind', '?')}, not an operator",
                hint="name an installed operator; `symphony list` shows each extension's kind",
            )
        pipeline = pipeline.step(
            operator,
            name=step.name,
            input=step.input or (first_source if n == 0 else None),
            config=step.config,
            host=host,
        )
    for sink in spec.sinks:
        pipeline = pipeline.sink(base / sink.path, input=sink.input, format=sink.format, **sink.options)
    return pipeline


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"
