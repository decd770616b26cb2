"""The errors operators and pipelines raise on purpose, on top of the core's family (``symphony_operators``
re-exports both).

Each one names what a person needs to find the fault: the operator (extension id), the column, the file,
and ends with what to do next. Each is registered to cross from an isolated worker as itself
(``register_error``), with its problems and the attributes it lists in ``data_fields``.

    SymphonyError           (symphony_core)
    └── OperatorError       also: an operator not active asked for its config or contributions
        ├── ContractError   an operator's declarations, or what its apply() returns
        └── PipelineError   the data graph: building or running a pipeline
            ├── SpecError
            ├── SchemaMismatch
            └── BadData
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from symphony_core import ErrorDetail, SymphonyError, register_error


@register_error
class OperatorError(SymphonyError):
    """Base class of the errors this package raises; raised itself when an operator that is not active
    is asked for its ``config`` or ``contributions``."""


@register_error
class ContractError(OperatorError):
    """Raised when an operator's declared input or output columns (its ``[contributes]``) are invalid, or
    its ``apply`` returns something other than a LazyFrame."""


@register_error
class PipelineError(OperatorError):
    """Base class of the errors raised while building or running a pipeline (the data graph)."""


@register_error
class SpecError(PipelineError):
    """Raised when a pipeline spec (TOML) is unreadable or invalid; names the file and, in ``problems``,
    each bad key (located as ``<file>: <key>``)."""


@dataclass(frozen=True)
class Mismatch:
    """One column that does not match what an operator declares."""

    operator: str
    side: str  # "input" or "output"
    column: str
    expected: str
    found: str | None  # the dtype found, None when the column is missing
    where: str = ""  # the source or step the frame comes from

    def __str__(self) -> str:
        origin = f" (from {self.where})" if self.where else ""
        if self.found is None:
            if self.side == "output":
                return f"{self.operator}: its output has no column '{self.column}' ({self.expected}), which it declares"
            return f"{self.operator}: input column '{self.column}' ({self.expected}) is missing{origin}"
        if self.side == "output":
            return f"{self.operator}: output column '{self.column}' is {self.found}, but it declares {self.expected}"
        return (
            f"{self.operator}: input column '{self.column}' is {self.found}, expected {self.expected}{origin}"
        )


@register_error
class SchemaMismatch(PipelineError):
    """Raised when building a pipeline finds frames that do not match the operators' declared schemas.

    Nothing was read or computed: the check uses only the query plans. ``mismatches`` lists every column
    at fault, each naming its operator; ``problems`` says the same, one `ErrorDetail` per mismatch.
    """

    data_fields = ("mismatches",)

    def __init__(self, mismatches: Sequence[Mismatch], *, pipeline: str) -> None:
        self.mismatches = tuple(mismatches)
        super().__init__(
            f"pipeline '{pipeline}' does not fit its operators' schemas:",
            hint="fix the source data or the step order, or add a step that renames or casts the columns",
            problems=[ErrorDetail("", str(mismatch), _code(mismatch)) for mismatch in self.mismatches],
        )

    @classmethod
    def from_data(
        cls,
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        problems: Iterable[ErrorDetail] = (),
        data: Mapping[str, Any] | None = None,
    ) -> SchemaMismatch:
        """Rebuilt from data, each of ``mismatches`` a `Mismatch` again (those that are not are left out)."""
        error = super().from_data(message, extension=extension, hint=hint, problems=problems, data=data)
        error.mismatches = tuple(filter(None, map(_mismatch, error.mismatches or ())))
        return error


def _code(mismatch: Mismatch) -> str:
    return "missing_column" if mismatch.found is None else "dtype_mismatch"


def _mismatch(data: object) -> Mismatch | None:
    """A `Mismatch` from its fields as plain data, or None when they do not make one."""
    if not isinstance(data, Mapping):
        return None
    operator, side, column, expected = (data.get(name) for name in ("operator", "side", "column", "expected"))
    found, where = data.get("found"), data.get("where", "")
    if not (
        isinstance(operator, str)
        and isinstance(side, str)
        and isinstance(column, str)
        and isinstance(expected, str)
        and (found is None or isinstance(found, str))
        and isinstance(where, str)
    ):
        return None
    return Mismatch(operator, side, column, expected, found, where)


@register_error
class BadData(PipelineError):
    """Raised when input data cannot be used: no file, an empty file, files whose schemas drift apart, or a
    value that does not parse as the declared dtype (with ``on_bad_rows = "fail"``).

    ``file``, ``column`` and ``operator`` say where, when known.
    """

    data_fields = ("file", "column", "operator")

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        operator: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.file = file
        self.column = column
        self.operator = operator
        super().__init__(message, hint=hint)
