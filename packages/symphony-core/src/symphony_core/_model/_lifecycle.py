"""The lifecycle of one extension: its states and the moves allowed between them."""

from __future__ import annotations

import enum

from ._public import public


@public
class State(str, enum.Enum):
    """Where an extension is in its lifecycle."""

    DISCOVERED = "discovered"
    VALIDATED = "validated"
    LOADED = "loaded"
    CONFIGURED = "configured"
    ACTIVE = "active"
    DEACTIVATED = "deactivated"
    UNLOADED = "unloaded"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


MOVES: dict[State, frozenset[State]] = {
    State.DISCOVERED: frozenset({State.VALIDATED}),
    State.VALIDATED: frozenset({State.LOADED}),
    State.LOADED: frozenset({State.CONFIGURED, State.UNLOADED}),
    State.CONFIGURED: frozenset({State.ACTIVE, State.UNLOADED}),
    State.ACTIVE: frozenset({State.DEACTIVATED}),
    State.DEACTIVATED: frozenset({State.UNLOADED, State.CONFIGURED}),
    State.UNLOADED: frozenset({State.VALIDATED}),
    State.FAILED: frozenset({State.VALIDATED}),
}
"""Allowed moves; any state may also move to FAILED. FAILED and UNLOADED go back to VALIDATED on reload."""


def can_move(old: State, new: State) -> bool:
    """Whether the lifecycle allows moving from ``old`` to ``new``."""
    return new is State.FAILED or new in MOVES[old]
