"""The marketplace view: the installed extensions, their permissions and config, shipped as a motif.

It is the host's own UI. It uses only the public host API, and its methods run in the host process
beside the host (not as a guarded extension), which is why it is trusted only as shipped by
symphony-motifs and started by ``symphony ui`` or `symphony_motifs.serve` / `open_window`.
"""

from __future__ import annotations

from typing import Any

from symphony_core import (
    Context,
    ExtensionInfo,
    Host,
    LifecycleEvent,
    PermissionEvent,
    SymphonyError,
    hookimpl,
)
from symphony_motifs._errors import MotifError
from symphony_motifs._forms import ConfigEditor
from symphony_motifs._motif import Motif

KIND_ORDER = ("instrument", "operator", "motif")


class Marketplace(Motif[Any]):
    """The marketplace view motif: browse, enable, grant and configure the installed extensions."""

    def __init__(self, host: Host | None = None) -> None:
        self._host = host
        self._observer: _Observer | None = None

    @property
    def host(self) -> Host:
        if self._host is None:
            raise MotifError(
                "runs only as the host's own UI, with the host it shows",
                extension="symphony.marketplace",
                hint="open it with `symphony ui` (or `symphony ui --serve`)",
            )
        return self._host

    def activate(self, context: Context) -> None:
        super().activate(context)
        if self._host is not None:
            self._observer = _Observer(self)
            self._host.hooks.register(self._observer)

    def deactivate(self) -> None:
        if self._host is not None and self._observer is not None:
            self._host.hooks.unregister(self._observer)
            self._observer = None
        self._disconnect()

    # Exposed to the page (see symphony.toml)

    def overview(self, rescan: bool = False) -> dict[str, Any]:
        """Every installed extension with its state and permissions, grouped by kind."""
        infos = self.host.discover(rescan=rescan)
        extensions = [self._summary(info) for info in infos]
        counts = {kind: sum(1 for e in extensions if e["kind"] == kind) for kind in KIND_ORDER}
        return {"kinds": list(KIND_ORDER), "counts": counts, "extensions": extensions}

    def details(self, extension: str) -> dict[str, Any]:
        """One extension's summary, as it is now."""
        return self._summary(self.host.inspect(extension))

    def set_enabled(self, extension: str, enabled: bool) -> dict[str, Any]:
        """Enable or disable an extension (a running one is stopped first)."""
        if enabled:
            self.host.enable(extension)
        else:
            self.host.disable(extension)
        self._changed(extension)
        return self.details(extension)

    def grant(self, extension: str) -> dict[str, Any]:
        """Consent to everything the extension's current version requests."""
        self.host.grant(extension, actor="marketplace")
        return self.details(extension)

    def revoke(self, extension: str) -> dict[str, Any]:
        """Withdraw every grant of the extension."""
        self.host.revoke(extension, actor="marketplace")
        return self.details(extension)

    def config_form(self, extension: str) -> dict[str, Any]:
        """The extension's config editor: its form, values, where they came from, and current errors."""
        return ConfigEditor(self.host, extension).state()

    def save_config(self, extension: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Save changed config values as host overrides; errors come back by field."""
        result = ConfigEditor(self.host, extension).save(changes)
        if result.saved:
            self._changed(extension)
        return {**result.as_json(), "state": ConfigEditor(self.host, extension).state()}

    # Internals

    def _summary(self, info: ExtensionInfo) -> dict[str, Any]:
        manifest = info.manifest or {}
        data: dict[str, Any] = {
            "id": info.id,
            "name": info.name or info.id,
            "kind": info.kind,
            "version": info.version,
            "distribution": info.distribution,
            "summary": info.summary,
            "state": info.state.value,
            "enabled": info.enabled,
            "has_config": bool(manifest.get("config")),
            # This view itself: it runs as the host's UI whatever its enablement, so it offers no toggle.
            "is_this_view": info.id == self._identity(),
            "problem": None
            if info.problem is None
            else {"message": info.problem.message, "hint": info.problem.hint},
            "permissions": None,
        }
        if info.manifest is not None:
            data["permissions"] = self._permissions(info)
        return data

    def _permissions(self, info: ExtensionInfo) -> dict[str, Any]:
        try:
            consent = self.host.consent(info.id)
        except SymphonyError as exc:  # an unreadable policy file: say so on this extension's card
            return {"error": str(exc)}
        document = consent.as_json()
        return {
            "requested": document["requested"],
            "granted_version": document["granted_version"],
            "granted": [] if consent.granted is None else consent.granted.permissions,
            "granted_by": None if consent.granted is None else consent.granted.granted_by,
            "granted_at": None if consent.granted is None else consent.granted.granted_at.isoformat(),
            "previous_version": document["previous_version"],
            "needs_consent": document["needs_consent"],
            "allowed_by_policy": document["allowed_by_policy"],
            "denied_by_policy": document["denied_by_policy"],
            "satisfied": document["satisfied"],
        }

    def _changed(self, extension: str) -> None:
        self.emit("changed", {"extension": extension})


class _Observer:
    """Turns the host's lifecycle and permission events into ``changed`` events for the page."""

    def __init__(self, view: Marketplace) -> None:
        self.view = view

    @hookimpl
    def symphony_lifecycle_event(self, event: LifecycleEvent) -> None:
        self.view._changed(event.extension)

    @hookimpl
    def symphony_permission_event(self, event: PermissionEvent) -> None:
        self.view._changed(event.extension)
