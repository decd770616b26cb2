"""Hooks a host can implement to observe what happens to extensions (audit loggers, metrics)."""

from __future__ import annotations

from dataclasses import dataclass

import pluggy

from ._public import public

PROJECT = "symphony"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marks a method of an observer object as an implementation of one of the hooks below."""


@public
@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """An extension moved from one lifecycle state to another."""

    extension: str
    old: str
    new: str
    reason: str | None = None


@public
@dataclass(frozen=True, slots=True)
class PermissionEvent:
    """A permission was granted, revoked, used or denied."""

    extension: str
    action: str
    permission: str
    resource: str | None = None
    actor: str | None = None


@public
class HostHooks:
    """The hook specifications; a host registers observers that implement any of them."""

    @hookspec
    def symphony_lifecycle_event(self, event: LifecycleEvent) -> None:
        """Called after an extension changed lifecycle state."""

    @hookspec
    def symphony_permission_event(self, event: PermissionEvent) -> None:
        """Called after a permission was granted, revoked, or a use of one was denied."""
