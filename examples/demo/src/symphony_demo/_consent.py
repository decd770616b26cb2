"""The demo's consent rule: grant what stays inside an extension's own folders, refuse everything else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OWN_FOLDERS = ("{data}/", "{cache}/")
SCOPES = ("paths", "hosts", "names", "commands")


@dataclass(frozen=True)
class Decision:
    """What the demo decided about one requested permission, and why."""

    extension: str
    kind: str
    scopes: tuple[str, ...]
    reason: str
    """The extension's own reason, from its manifest."""
    granted: bool
    why: str
    """The demo's reason for granting or refusing."""

    def describe(self) -> str:
        """The permission as a person reads it: ``fs.read {data}/weather.csv``."""
        return f"{self.kind} {', '.join(self.scopes)}".strip()

    def as_json(self) -> dict[str, Any]:
        return {
            "extension": self.extension,
            "permission": self.describe(),
            "reason": self.reason,
            "granted": self.granted,
            "why": self.why,
        }


def decide(extension: str, requested: Sequence[Mapping[str, Any]]) -> list[Decision]:
    """Judge each requested permission: file access inside ``{data}`` or ``{cache}`` only.

    A permission type is granted as a whole (that is how a host grants), so one scope outside the
    extension's own folders refuses every request of that type, and the extension does not get to run
    until someone consents to the rest.
    """
    refused_kinds = {str(permission["type"]) for permission in requested if _outside(permission) is not None}
    decisions = []
    for permission in requested:
        kind = str(permission["type"])
        scopes = tuple(str(item) for field in SCOPES for item in permission.get(field, ()))
        outside = _outside(permission)
        if outside is not None:
            granted, why = False, outside
        elif kind in refused_kinds:
            granted, why = False, f"another {kind} request of this extension reaches outside its own folders"
        else:
            granted, why = True, "only its own folders"
        decisions.append(Decision(extension, kind, scopes, str(permission.get("reason", "")), granted, why))
    return decisions


def _outside(permission: Mapping[str, Any]) -> str | None:
    """Why a permission reaches beyond the extension's own folders, or None when it does not."""
    kind = str(permission["type"])
    if kind not in ("fs.read", "fs.write"):
        return {
            "net.connect": "network access: nothing in the demo needs it",
            "net.listen": "accepting connections: nothing in the demo needs it",
            "env": "environment variables can hold secrets",
            "subprocess": "starting programs",
            "gpu": "the demo runs on the CPU",
        }.get(kind, f"{kind} is not needed by the demo")
    for path in permission.get("paths", ()):
        text = str(path)
        if not text.startswith(OWN_FOLDERS) or ".." in text.split("/"):
            return f"{text} is outside its own folders"
    return None
