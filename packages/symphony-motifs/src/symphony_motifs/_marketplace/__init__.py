"""The marketplace view: the host's extensions and its marketplace's catalog, shipped as a motif.

It is the host's own UI. It uses only the public host API, and its methods run in the host process
beside the host (not as a guarded extension), which is why it is trusted only as shipped by
symphony-motifs and started by ``symphony ui`` or `symphony_motifs.serve` / `open_window`.

Nothing is granted without a person choosing it: `grant`, `install` and `upgrade` take the permissions
ticked in the consent dialog, one scope at a time, and grant nothing when none is named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from symphony_core import (
    Context,
    ExtensionInfo,
    Host,
    InstallPlan,
    LifecycleEvent,
    PermissionEvent,
    State,
    SymphonyError,
    hookimpl,
)
from symphony_motifs._errors import MotifError
from symphony_motifs._forms import ConfigEditor
from symphony_motifs._markdown import visible
from symphony_motifs._motif import Motif

from ._consent import dialog, permission_diff
from ._listings import CatalogView

KIND_ORDER = ("instrument", "operator", "motif")
ACTOR = "marketplace"


class Marketplace(Motif[Any]):
    """The marketplace view motif: search the catalog, install, consent, configure and run extensions."""

    def __init__(self, host: Host | None = None) -> None:
        self._host = host
        self._observer: _Observer | None = None
        self._catalog: CatalogView | None = None

    @property
    def host(self) -> Host:
        if self._host is None:
            raise MotifError(
                "runs only as the host's own UI, with the host it shows",
                extension="symphony.marketplace",
                hint="open it with `symphony ui` (or `symphony ui --serve`)",
            )
        return self._host

    @property
    def catalog_view(self) -> CatalogView:
        if self._catalog is None:
            self._catalog = CatalogView(self.host)
        return self._catalog

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

    # Exposed to the page (see symphony.toml): what is installed

    def overview(self, rescan: bool = False) -> dict[str, Any]:
        """Every installed extension with its state in words and its permissions, grouped by kind."""
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

    def consent(self, extension: str) -> dict[str, Any]:
        """The consent dialog of an installed extension: each permission, its reason, reach and status."""
        info = self.host.inspect(extension)
        return dialog(self.host.consent(extension), title=info.name or info.id)

    def grant(self, extension: str, permissions: list[str]) -> dict[str, Any]:
        """Grant exactly the permissions a person ticked (scopes as the dialog names them); nothing else."""
        chosen = _chosen(permissions, extension)
        self.host.grant(extension, chosen, actor=ACTOR)
        return {"granted": chosen, "consent": self.consent(extension), "summary": self.details(extension)}

    def revoke(self, extension: str) -> dict[str, Any]:
        """Withdraw every grant of the extension."""
        self.host.revoke(extension, actor=ACTOR)
        return self.details(extension)

    def config_form(self, extension: str) -> dict[str, Any]:
        """The extension's config editor: its form, values, where they came from, and current errors."""
        return ConfigEditor(self.host, extension).state()

    def save_config(
        self, extension: str, changes: dict[str, Any], reset: list[str] | None = None
    ) -> dict[str, Any]:
        """Save the whole form at once (changed values, and values reset to their defaults): every change
        is stored, or none is and the errors come back by field."""
        editor = ConfigEditor(self.host, extension)
        result = editor.save(changes, reset=reset or ())
        if result.saved:
            self._changed(extension)
        return {**result.as_json(), "state": editor.state()}

    # The marketplace's catalog

    def catalog(self, refresh: bool = False) -> dict[str, Any]:
        """Whether the host has a verified catalog, and its size; why not, when it has none."""
        try:
            listings = self.catalog_view.load(refresh=refresh)
        except SymphonyError as exc:
            return {"available": False, "message": exc.message, "hint": exc.hint}
        return {
            "available": True,
            "count": len(listings),
            "generated": listings.generated,
            "kinds": sorted({listing.kind for listing in listings}),
        }

    def search(self, text: str = "", kind: str | None = None) -> dict[str, Any]:
        """The catalog's extensions matching every word of ``text`` (and ``kind``), best first."""
        installed = {info.id: info.version for info in self.host.extensions()}
        return self.catalog_view.search(text, kind, installed)

    def listing(self, extension: str) -> dict[str, Any]:
        """The details pane of a listed extension, with what installing its latest version would ask."""
        shown = self.catalog_view.details(extension)
        shown["consent"] = dialog(self.host.listed_consent(extension), title=shown["name"])
        shown["installed"] = None
        installed = self._installed(extension)
        if installed is not None:
            shown["installed"] = {
                "version": installed.version,
                "managed": installed.environment is not None,
                "status": self._status(installed),
            }
        return shown

    def review_upgrade(self, extension: str) -> dict[str, Any]:
        """The consent dialog for upgrading an installed extension to the latest listed version, with what
        it asks for that the installed version did not, and what it no longer asks for."""
        installed = self.host.inspect(extension)
        review = dialog(self.host.listed_consent(extension), title=installed.name or installed.id)
        before = [item["permission"] for item in self.consent(extension)["items"]]
        review["installed_version"] = installed.version
        review["changes"] = permission_diff(before, [item["permission"] for item in review["items"]])
        return review

    def install(self, extension: str, version: str, permissions: list[str]) -> dict[str, Any]:
        """Install a listed version into an environment of its own, granting only ``permissions``."""
        listing = self.catalog_view.load().get(extension)
        if listing is None:
            raise MotifError("is not listed by the marketplace", extension=extension, hint="search again")
        shown = self.host.listed_consent(extension, version)
        chosen = _chosen(permissions, extension, allow_none=True)
        done = self.host.install(
            f"{listing.distribution}=={version}",
            grant=chosen or False,
            confirm=_as_reviewed(extension, version, shown),
            actor=ACTOR,
        )
        return self._installed_result(extension, done)

    def upgrade(self, extension: str, version: str, permissions: list[str]) -> dict[str, Any]:
        """Upgrade a managed installation to ``version`` (the latest listed), granting what is ticked."""
        shown = self.host.listed_consent(extension, version)
        chosen = _chosen(permissions, extension, allow_none=True)
        done = self.host.upgrade(
            extension, grant=chosen or False, confirm=_as_reviewed(extension, version, shown), actor=ACTOR
        )
        return self._installed_result(extension, done)

    def uninstall(self, extension: str, purge: bool = False) -> dict[str, Any]:
        """Remove a managed installation (its environment and grants; with ``purge`` its data too)."""
        done = self.host.uninstall(extension, purge=purge, actor=ACTOR)
        self._changed(extension)
        return {"action": done.action, "distribution": done.distribution, "version": done.version}

    # Internals

    def _installed(self, extension: str) -> ExtensionInfo | None:
        try:
            return self.host.inspect(extension)
        except SymphonyError:
            return None

    def _installed_result(self, extension: str, done: Any) -> dict[str, Any]:
        if done.action == "declined":
            raise MotifError(
                "the wheel the index serves asks for other permissions than the marketplace listed; "
                "nothing was installed",
                extension=extension,
                hint="refresh the catalog and review it again",
            )
        self._changed(extension)
        return {
            "action": done.action,
            "version": done.version,
            "granted": {key: list(value) for key, value in done.granted.items()},
            "summary": self.details(extension),
            "consent": self.consent(extension),
        }

    def _summary(self, info: ExtensionInfo) -> dict[str, Any]:
        manifest = info.manifest or {}
        data: dict[str, Any] = {
            "id": info.id,
            "name": visible(info.name or info.id),
            "kind": info.kind,
            "version": info.version,
            "distribution": info.distribution,
            "summary": None if info.summary is None else visible(info.summary),
            "state": info.state.value,
            "enabled": info.enabled,
            "managed": info.environment is not None,
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
        data["status"] = self._status(info, data["permissions"])
        return data

    def _status(self, info: ExtensionInfo, permissions: dict[str, Any] | None = None) -> str:
        """The extension's state in the words a person reads."""
        if permissions is None and info.manifest is not None:
            permissions = self._permissions(info)
        if info.state is State.FAILED:
            why = info.problem.message if info.problem is not None else "see `symphony inspect`"
            return f"failed: {why}"
        if info.problem is not None:
            return f"cannot run: {info.problem.message}"
        if not info.enabled:
            return "disabled"
        if permissions is not None and permissions.get("error"):
            return f"cannot run: {permissions['error']}"
        if permissions is not None and not permissions["satisfied"]:
            return "needs your consent"
        if info.state is State.ACTIVE:
            return "running"
        if info.state in (State.DEACTIVATED, State.UNLOADED):
            return "stopped"
        return "ready, not running"

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
            "flagged": document["flagged"],
            "allowed_by_policy": document["allowed_by_policy"],
            "denied_by_policy": document["denied_by_policy"],
            "satisfied": document["satisfied"],
        }

    def _changed(self, extension: str) -> None:
        self.emit("changed", {"extension": extension})


def _chosen(permissions: Sequence[str], extension: str, *, allow_none: bool = False) -> list[str]:
    """The permissions a person ticked: named one by one, never "all" by leaving the list empty."""
    if not isinstance(permissions, list) or not all(
        isinstance(item, str) and item.strip() for item in permissions
    ):
        raise MotifError(
            "permissions are named one by one", extension=extension, hint="tick them in the dialog"
        )
    if not permissions and not allow_none:
        raise MotifError(
            "nothing was chosen, so nothing was granted",
            extension=extension,
            hint="tick the permissions to grant in the dialog",
        )
    return list(permissions)


def _as_reviewed(extension: str, version: str, shown: Any) -> Any:
    """A plan check: the wheel is the version reviewed and asks for exactly what the dialog showed."""
    reviewed = {(item["permission"], item["scope"]) for item in shown.as_json()["reach"]}

    def confirm(plan: InstallPlan) -> bool:
        if plan.wheel.version != version:
            return False
        for consent in plan.consents:
            if consent.extension == shown.extension:
                asked = {(item["permission"], item["scope"]) for item in consent.as_json()["reach"]}
                return asked == reviewed
        return not reviewed

    return confirm


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
