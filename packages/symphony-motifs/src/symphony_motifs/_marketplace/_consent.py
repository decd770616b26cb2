"""A consent dialog's content, from the core's `Consent`: one line per permission a person can say yes to.

Each scope a manifest requests is one item: its reason, what it reaches on this machine (the core's
``reach``), whether it is flagged (beyond the extension's own folders, network, environment variables,
programs), and where it stands: already granted, carried over from an earlier version, allowed or denied
by the host's policy, refused (no one may grant it), or waiting for a yes. Only waiting items can be
chosen, and a flagged one is never chosen by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from symphony_core import Consent
from symphony_motifs._markdown import render_markdown, visible

SCOPE_FIELDS = ("paths", "hosts", "names", "commands")


def permission_name(kind: str, scope: str) -> str:
    """One scope as the core and the command line write it: ``fs.read {data}/*.csv``."""
    return f"{kind} {scope}".strip()


def reasons(requested: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The reason given for each requested scope, by its name."""
    found: dict[str, str] = {}
    for permission in requested:
        kind = str(permission["type"])
        scopes = [str(item) for field in SCOPE_FIELDS for item in permission.get(field) or ()]
        for scope in scopes or [""]:
            found.setdefault(permission_name(kind, scope), str(permission.get("reason", "")))
    return found


def dialog(consent: Consent, *, title: str) -> dict[str, Any]:
    """The items of a consent dialog for ``consent`` and what it says about the whole."""
    document = consent.as_json()
    why = reasons(consent.requested)
    new = set(document["needs_consent"])
    by_policy = set(document["allowed_by_policy"])
    denied = {entry["permission"]: entry["rule"] for entry in document["denied_by_policy"]}
    refused = {entry["permission"]: entry["message"] for entry in document["refused"]}
    flagged = set(document["flagged"])
    granted_version = document["granted_version"]
    previous = document["previous_version"]
    items = []
    for reach in document["reach"]:
        name = permission_name(reach["permission"], reach["scope"])
        if name in denied:
            status = f"denied by the host's policy (rule {denied[name]})"
        elif name in refused:
            status = "refused: no one can grant it"
        elif name in new:
            status = f"new since {previous}: needs your consent" if previous else "needs your consent"
        elif name in by_policy:
            status = "allowed by the host's policy"
        elif granted_version is not None:
            status = f"granted to {granted_version}"
        elif previous is not None:
            status = f"granted to {previous}, carries over"
        else:
            status = "granted"
        items.append(
            {
                "permission": name,
                "type": reach["permission"],
                "scope": visible(reach["scope"]),
                "reason_html": render_markdown(why.get(name, ""), inline=True),
                "path": reach["path"],
                "opens": reach["opens"],
                "notes": reach["notes"],
                "flagged": name in flagged,
                "status": status,
                "choosable": name in new,
                # Never a yes by default for what reaches beyond the extension's own folders.
                "checked": name in new and name not in flagged,
                "new": name in new and previous is not None,
            }
        )
    return {
        "extension": consent.extension,
        "title": visible(title),
        "version": consent.version,
        "distribution": consent.distribution,
        "previous_version": previous,
        "granted_version": granted_version,
        "satisfied": consent.satisfied,
        "warnings": [
            {"field": warning["field"], "message": visible(warning["message"])}
            for warning in document["warnings"]
        ],
        "items": items,
    }


def permission_diff(before: Iterable[str], after: Iterable[str]) -> dict[str, list[str]]:
    """What an upgrade adds to and drops from the scopes an extension asks for."""
    old, new = set(before), set(after)
    return {"added": sorted(new - old), "dropped": sorted(old - new)}
