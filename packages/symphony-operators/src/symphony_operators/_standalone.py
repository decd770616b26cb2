"""An operator outside a host: the error for reading what only activation sets.

``Cls.create(...)`` makes the context with ``symphony_core.standalone_context``, as the other kits do.
"""

from __future__ import annotations

from pydantic import ValidationError

from symphony_core import ErrorDetail, served_config, standalone_context

from ._errors import OperatorError

__all__ = ["not_active", "served_config", "standalone_context", "problems"]


def not_active(extension: object, what: str) -> OperatorError:
    """The error for reading ``what`` (``config``, ``contributions``) of an extension no host activated."""
    name = type(extension).__name__
    return OperatorError(
        f"{name} is not active, so it has no {what} yet",
        hint=f"start it through a host (host.start(id)), or make one with {name}.create(...) in a test",
    )


def problems(exc: ValidationError) -> list[ErrorDetail]:
    """Each error of a pydantic validation as an `ErrorDetail` located at its dotted key."""
    return [
        ErrorDetail(
            ".".join(str(part) for part in error["loc"]) or "(top level)", error["msg"], error["type"]
        )
        for error in exc.errors()
    ]
