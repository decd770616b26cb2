"""An instrument outside a host: the error for reading what only activation sets.

``Cls.create(...)`` makes the context with ``symphony_core.standalone_context``, as the other kits do.
"""

from __future__ import annotations

from symphony_core import served_config, standalone_context

from ._errors import InstrumentError

__all__ = ["not_active", "served_config", "standalone_context"]


def not_active(extension: object, what: str) -> InstrumentError:
    """The error for reading ``what`` (``config``, ``contributions``) of an extension no host activated."""
    name = type(extension).__name__
    return InstrumentError(
        f"{name} is not active, so it has no {what} yet",
        hint=f"start it through a host (host.start(id)), or make one with {name}.create(...) in a test",
    )
