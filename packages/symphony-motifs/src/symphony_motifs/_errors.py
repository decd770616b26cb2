"""The errors of motifs and their hosting; each names the motif and says what to do next."""

from __future__ import annotations

from symphony_core import SymphonyError


class MotifError(SymphonyError):
    """Raised when a motif cannot be shown: its ``[contributes]`` table, its assets, or an undeclared event."""


class CallRefused(MotifError):
    """Raised when a page calls a method its motif does not expose (nothing of the motif runs)."""


class InvalidArguments(MotifError):
    """Raised when a page calls an exposed method with arguments its signature does not accept.

    ``problems`` holds one ``(argument, message)`` pair per bad argument, e.g. ``("count", "Input should be a
    valid integer")``.
    """

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        problems: tuple[tuple[str, str], ...] = (),
        hint: str | None = None,
    ) -> None:
        self.problems = problems
        details = "".join(f"\n  - {name}: {text}" for name, text in problems)
        super().__init__(message + details, extension=extension, hint=hint)
