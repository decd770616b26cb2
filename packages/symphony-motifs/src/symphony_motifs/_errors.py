"""The errors of motifs and their hosting; each names the motif and says what to do next.

Each is registered to cross from an isolated worker as itself (``register_error``), with its problems.

    SymphonyError           (symphony_core)
    └── MotifError          also: a motif not active asked for its config or contributions
        ├── CallRefused
        └── InvalidArguments
"""

from __future__ import annotations

from symphony_core import SymphonyError, register_error


@register_error
class MotifError(SymphonyError):
    """Base class of the errors this package raises; raised itself when a motif cannot be shown (its
    ``[contributes]`` table, its assets, an undeclared event), or when a motif that is not active is
    asked for its ``config`` or ``contributions``."""


@register_error
class CallRefused(MotifError):
    """Raised when a page calls a method its motif does not expose (nothing of the motif runs)."""


@register_error
class InvalidArguments(MotifError):
    """Raised when a page calls an exposed method with arguments its signature does not accept.

    ``problems`` holds one `ErrorDetail` per bad argument, located at the argument, e.g. ``count``: "Input
    should be a valid integer".
    """
