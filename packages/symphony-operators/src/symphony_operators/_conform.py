"""Bringing a source's columns to the dtypes its operators declare, and the rows that will not come.

Text formats (CSV, NDJSON) carry no dtypes: a column an operator declares as ``Float64`` is read as text
and parsed here, so that a value like ``"n/a"`` is caught by Symphony, with its file, column and operator,
rather than deep inside polars. Lossless widenings (``Int32`` to ``Int64``, an integer to a float) are
applied too. Anything else that differs is a schema mismatch, reported when the pipeline is built.

What happens to a value that does not parse is the pipeline's ``on_bad_rows`` policy:

- ``fail``: the run stops; `first_bad_row` then finds the file, row, column and value to report.
- ``quarantine``: rows with such a value leave the main flow and go to the quarantine output, one row
  each with the source, the file, the reason and the original record as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from ._schema import Column, dtype_text, matches

BadRows = Literal["fail", "quarantine"]
"""What a pipeline does with a row whose value does not parse: stop (``fail``) or set it aside."""

FILE_COLUMN = "__symphony_file"
ROW_COLUMN = "__symphony_row"
QUARANTINE_SCHEMA = {"source": pl.String, "file": pl.String, "reason": pl.String, "record": pl.String}


@dataclass(frozen=True)
class Parse:
    """A text column parsed into the dtype an operator declares."""

    column: str
    dtype: Any  # a polars dtype, or a dtype class when the declaration has no parameters
    operator: str

    @property
    def dtype_text(self) -> str:
        return dtype_text(self.dtype)


@dataclass(frozen=True)
class Conformed:
    """A source brought to its operators' dtypes: the rows that go on, and those set aside (if any)."""

    frame: pl.LazyFrame
    rejected: pl.LazyFrame | None
    parses: tuple[Parse, ...]


def text_columns(wanted: Mapping[str, tuple[Column, str]]) -> dict[str, Any]:
    """The declared columns a text format must read as text: to parse them here, or to keep them text
    (a declared ``String`` column of codes like ``007`` must not be inferred as a number)."""
    return {
        name: pl.String
        for name, (column, _) in wanted.items()
        if parsable(column.polars_dtype) or column.polars_dtype == pl.String
    }


def conform(
    frame: pl.LazyFrame,
    schema: Mapping[str, Any],
    wanted: Mapping[str, tuple[Column, str]],
    *,
    source: str,
    policy: BadRows,
) -> Conformed:
    """Parse and widen ``frame``'s columns to the dtypes in ``wanted`` (column -> declaration, operator)."""
    parses: list[Parse] = []
    widen: dict[str, Any] = {}
    for name, (column, operator) in wanted.items():
        found, declared = schema.get(name), column.polars_dtype
        if found is None or matches(found, declared):
            continue
        if found == pl.String and parsable(declared):
            parses.append(Parse(name, declared, operator))
        elif widens(found, declared):
            widen[name] = declared
    good = frame.with_columns(pl.col(name).cast(dtype) for name, dtype in widen.items()) if widen else frame
    rejected = None
    if parses and policy == "fail":
        good = good.with_columns(parse(p.column, p.dtype, strict=True) for p in parses)
    elif parses:
        bad = pl.any_horizontal(unparsed(p) for p in parses)
        good = good.filter(~bad).with_columns(parse(p.column, p.dtype, strict=False) for p in parses)
        reasons = [
            pl.when(unparsed(p)).then(
                pl.format("{}: '{}' is not {}", pl.lit(p.column), pl.col(p.column), pl.lit(p.dtype_text))
            )
            for p in parses
        ]
        originals = [name for name in schema if name != FILE_COLUMN]
        rejected = frame.filter(bad).select(
            pl.lit(source, pl.String).alias("source"),
            (pl.col(FILE_COLUMN) if FILE_COLUMN in schema else pl.lit(None, pl.String)).alias("file"),
            pl.concat_str(reasons, separator="; ", ignore_nulls=True).alias("reason"),
            pl.struct(originals).struct.json_encode().alias("record"),
        )
    if FILE_COLUMN in schema:
        good = good.drop(FILE_COLUMN)
    return Conformed(good, rejected, tuple(parses))


def first_bad_row(frame: pl.LazyFrame, parses: Sequence[Parse]) -> tuple[int, Parse, str] | None:
    """The first row of ``frame`` (1-based), declaration and text of a value that does not parse.

    Used only after a run failed, to say where: it reads the source again.
    """
    found = (
        frame.with_row_index(ROW_COLUMN, offset=1)
        .filter(pl.any_horizontal(unparsed(p) for p in parses))
        .select(
            ROW_COLUMN,
            *(p.column for p in parses),
            *(unparsed(p).alias(f"bad:{i}") for i, p in enumerate(parses)),
        )
        .head(1)
        .collect(engine="in-memory")
    )
    if found.height == 0:
        return None
    row = found.row(0, named=True)
    for i, p in enumerate(parses):
        if row[f"bad:{i}"]:
            return int(row[ROW_COLUMN]), p, str(row[p.column])
    return None  # pragma: no cover - the filter guarantees one flag is set


def parsable(dtype: Any) -> bool:
    """Whether Symphony parses text into ``dtype`` (numbers, booleans, dates, datetimes, times)."""
    return bool(
        dtype != pl.String
        and (dtype.is_numeric() or dtype == pl.Boolean or dtype in (pl.Date, pl.Datetime, pl.Time))
    )


def widens(found: Any, declared: Any) -> bool:
    """Whether a ``found`` column becomes ``declared`` without losing anything that matters."""
    if not found.is_integer():
        return False
    if declared.is_float():
        return True
    if not declared.is_integer() or found.is_signed_integer() != declared.is_signed_integer():
        return False
    return bool(_bits(found) < _bits(declared))


def parse(column: str, dtype: Any, *, strict: bool) -> pl.Expr:
    """``column`` (text) parsed as ``dtype``; with ``strict`` a value that does not parse stops the run."""
    text = pl.col(column)
    if dtype == pl.Boolean:
        words = {"true": True, "false": False, "1": True, "0": False}
        lowered = text.str.strip_chars().str.to_lowercase()
        if strict:
            return lowered.replace_strict(words, return_dtype=pl.Boolean).alias(column)
        return lowered.replace_strict(words, default=None, return_dtype=pl.Boolean).alias(column)
    if dtype == pl.Date:
        return text.str.to_date(strict=strict).alias(column)
    if dtype == pl.Time:
        return text.str.to_time(strict=strict).alias(column)
    if dtype == pl.Datetime:
        unit = getattr(dtype, "time_unit", None) if isinstance(dtype, pl.DataType) else None
        zone = getattr(dtype, "time_zone", None) if isinstance(dtype, pl.DataType) else None
        return text.str.to_datetime(time_unit=unit, time_zone=zone, strict=strict).alias(column)
    return text.cast(dtype, strict=strict).alias(column)


def unparsed(p: Parse) -> pl.Expr:
    """True where the text column holds a value that does not parse as ``p.dtype``."""
    return pl.col(p.column).is_not_null() & parse(p.column, p.dtype, strict=False).is_null()


def _bits(dtype: Any) -> int:
    return int("".join(ch for ch in str(dtype) if ch.isdigit()) or 0)
