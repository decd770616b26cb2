"""Declared schemas: the columns an operator needs and makes, as written in its manifest's ``[contributes]``.

The manifest is the one source of truth (a host reads it without importing the operator)::

    [[contributes.input]]
    name = "dep_delay"
    dtype = "Float64"
    required = true

    [[contributes.output]]
    name = "mean_dep_delay"
    dtype = "Float64"

These models validate it (`read_contributions`); `check` compares a query plan's schema with it, without
running the query.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from ._errors import ContractError, Mismatch

_SIMPLE_NAMES = {"Utf8": "String", "Str": "String"}


def parse_dtype(text: str) -> pl.DataType:
    """The polars dtype that ``text`` names: ``Float64``, ``String``, ``Datetime(time_unit='us')``, ``List(Int64)``...

    A parametric type written without parameters (``Datetime``, ``List``) matches any of its kind.
    Raises ``ValueError`` for anything else; the text is parsed, never evaluated.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"'{text}' is not a polars dtype, e.g. 'Float64', 'String', 'List(Int64)'") from None
    dtype: pl.DataType = _build(tree, text)
    return dtype


def _build(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Name):
        return _dtype_class(node.id, text)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        cls = _dtype_class(node.func.id, text)
        args = [_argument(arg, text) for arg in node.args]
        kwargs = {kw.arg: _argument(kw.value, text) for kw in node.keywords if kw.arg is not None}
        try:
            return cls(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"'{text}' is not a valid polars dtype: {exc}") from None
    raise ValueError(f"'{text}' is not a polars dtype, e.g. 'Float64', 'String', 'List(Int64)'")


def _argument(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int))):
        return node.value
    return _build(node, text)


def _dtype_class(name: str, text: str) -> Any:
    value = getattr(pl, _SIMPLE_NAMES.get(name, name), None)
    if not (isinstance(value, type) and issubclass(value, pl.DataType)) or name == "DataType":
        raise ValueError(f"'{text}': '{name}' is not a polars dtype (see polars.datatypes)")
    return value


def dtype_text(dtype: pl.DataType | type[pl.DataType]) -> str:
    """How a dtype is written in a manifest (``Float64``, ``Datetime(time_unit='us', time_zone=None)``)."""
    return str(dtype)


class Column(BaseModel):
    """One column an operator reads (``input``) or writes (``output``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="The column's name, as polars spells it.")
    dtype: str = Field(
        description=(
            "The polars dtype, e.g. `Float64`, `Int64`, `String`, `Date`, `Datetime(time_unit='us')`, "
            "`List(Int64)`. A parametric type without parameters (`Datetime`) accepts any of its kind."
        )
    )
    required: bool = Field(
        default=True,
        description=(
            "Input: the operator cannot run without this column. Output: the operator always makes it. "
            "An optional column may be absent, but when present it must have this dtype."
        ),
    )
    description: str = Field(default="", description="What the column holds, for people.")

    _polars: Any = PrivateAttr(default=None)

    @field_validator("dtype")
    @classmethod
    def _dtype_is_polars(cls, value: str) -> str:
        return dtype_text(parse_dtype(value))

    def model_post_init(self, context: Any, /) -> None:
        self._polars = parse_dtype(self.dtype)

    @property
    def polars_dtype(self) -> pl.DataType:
        """The dtype as a polars object."""
        dtype: pl.DataType = self._polars
        return dtype


class Contributions(BaseModel):
    """What an operator declares in its manifest's ``[contributes]``: its input and output columns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: tuple[Column, ...] = Field(
        default=(),
        description="Columns the operator reads (`[[contributes.input]]`); others pass as they are.",
    )
    output: tuple[Column, ...] = Field(
        default=(), description="Columns the operator's result has (`[[contributes.output]]`)."
    )

    @model_validator(mode="after")
    def _names_are_unique(self) -> Contributions:
        for side in ("input", "output"):
            names = [column.name for column in getattr(self, side)]
            twice = sorted({name for name in names if names.count(name) > 1})
            if twice:
                raise ValueError(f"{side}: column(s) {', '.join(twice)} declared more than once")
        return self

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], *, extension: str | None = None) -> Contributions:
        """Deprecated: use `read_contributions`."""
        warnings.warn(
            "Contributions.from_manifest is deprecated: use symphony_operators.read_contributions",
            DeprecationWarning,
            stacklevel=2,
        )
        return read_contributions(manifest, extension=extension)


def read_contributions(manifest: Mapping[str, Any], *, extension: str | None = None) -> Contributions:
    """Validate the manifest's ``[contributes]`` table; `ContractError` names each bad field."""
    contributes = manifest.get("contributes") or {}
    try:
        return Contributions.model_validate(contributes)
    except ValidationError as exc:
        problems = "".join(
            f"\n  - contributes.{_location(error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ContractError(
            f"invalid input/output schema in the manifest:{problems}",
            extension=extension or _text(manifest.get("id")),
            hint="declare columns as [[contributes.input]] / [[contributes.output]] with name, dtype, required",
        ) from None


def check(
    schema: Mapping[str, pl.DataType],
    columns: Iterable[Column],
    *,
    operator: str,
    side: str,
    where: str = "",
) -> list[Mismatch]:
    """The columns of ``schema`` (a plan's ``collect_schema()``) that do not match ``columns``."""
    problems = []
    for column in columns:
        found = schema.get(column.name)
        if found is None:
            if column.required:
                problems.append(Mismatch(operator, side, column.name, column.dtype, None, where))
        elif not matches(found, column.polars_dtype):
            problems.append(Mismatch(operator, side, column.name, column.dtype, dtype_text(found), where))
    return problems


def matches(found: pl.DataType, declared: pl.DataType) -> bool:
    """Whether a column of dtype ``found`` is what ``declared`` asks for."""
    return bool(found == declared)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
