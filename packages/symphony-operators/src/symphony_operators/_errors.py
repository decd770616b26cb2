"""The errors a pipeline raises on purpose, on top of the core's family (``symphony_operators`` re-exports both).

Each one names what a person needs to find the fault: the operator (extension id), the column, the file,
and ends with what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from symphony_core import SymphonyError


class PipelineError(SymphonyError):
    """Base class of the errors raised while building or running a pipeline."""


class SpecError(PipelineError):
    """Raised when a pipeline spec (TOML) is unreadable or invalid; names the file and each bad key."""


class ContractError(PipelineError):
    """Raised when an operator's declared input or output schema (its ``[contributes]``) is invalid."""


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


class SchemaMismatch(PipelineError):
    """Raised when building a pipeline finds frames that do not match the operators' declared schemas.

    Nothing was read or computed: the check uses only the query plans. ``mismatches`` lists every column
    at fault, each naming its operator.
    """

    def __init__(self, mismatches: Sequence[Mismatch], *, pipeline: str) -> None:
        self.mismatches = tuple(mismatches)
        lines = "".join(f"\n  - {mismatch}" for mismatch in self.mismatches)
        super().__init__(
            f"pipeline '{pipeline}' does not fit its operators' schemas:{lines}",
            hint="fix the source data or the step order, or add a step that renames or casts the columns",
        )


class BadData(PipelineError):
    """Raised when input data cannot be used: no file, an empty file, files whose schemas drift apart, or a
    value that does not parse as the declared dtype (with ``on_bad_rows = "fail"``).

    ``file``, ``column`` and ``operator`` say where, when known.
    """

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
