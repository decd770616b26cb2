"""Consent: what an extension asks for, what was granted to which version, and the host's policy.

A grant belongs to one version of one extension. Permissions are compared scope by scope (one path,
one ``host:port``, one variable name at a time): when an upgrade asks for nothing beyond what an
earlier version was granted, the grant carries over without asking anyone; when it asks for more, it
is not activated until a person (or the host policy) consents to exactly what is new.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._errors import ConfigError
from ._kinds import canonical_id
from ._state import Grant, HostState

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCOPE_FIELDS = ("paths", "hosts", "names", "commands")

Atom = tuple[str, str]
"""One unit of consent: a permission type and one scope item (``("fs.read", "{data}/*.csv")``)."""


def atoms(permissions: Iterable[Mapping[str, Any]]) -> set[Atom]:
    """Split permissions into the units a person consents to, one per scope item."""
    units: set[Atom] = set()
    for permission in permissions:
        kind = str(permission["type"])
        scopes = [item for field in SCOPE_FIELDS for item in permission.get(field, ())]
        if scopes:
            units.update((kind, str(item)) for item in scopes)
        else:
            units.add((kind, ""))
    return units


def describe(atom: Atom) -> str:
    """An atom as a person reads it: ``fs.read {data}/*.csv``."""
    kind, scope = atom
    return f"{kind} {scope}".strip()


class _Selector(BaseModel):
    """Which extensions a policy entry is about: by publisher, extension id or distribution (all given must match)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    publisher: str | None = Field(
        default=None, description="Matches extensions whose id starts with `publisher.`."
    )
    extension: str | None = Field(default=None, description="Matches one extension id.")
    distribution: str | None = Field(
        default=None, description="Matches extensions shipped by this distribution."
    )

    @model_validator(mode="after")
    def _selects_something(self) -> _Selector:
        if self.publisher is None and self.extension is None and self.distribution is None:
            raise ValueError("an entry needs at least one of publisher, extension, distribution")
        return self

    def selects(self, extension: str, distribution: str) -> bool:
        """Whether the entry is about this extension; names compare after PEP 503 normalisation, so
        spelling cannot dodge it."""
        ext = canonical_id(extension)
        if self.extension is not None and canonical_id(self.extension) != ext:
            return False
        if self.publisher is not None and canonical_id(self.publisher) != ext.split(".", 1)[0]:
            return False
        return self.distribution is None or canonicalize_name(self.distribution) == canonicalize_name(
            distribution
        )


class Rule(_Selector):
    """One rule of the host policy: allow or deny permissions to matching extensions, unattended."""

    action: Literal["allow", "deny"] = Field(
        description="`allow` grants without asking; `deny` never grants."
    )
    permission: str = Field(default="*", description="A permission type such as `fs.read`, or `*` for any.")

    def matches(self, extension: str, distribution: str, kind: str) -> bool:
        """Whether the rule applies to this extension and permission type."""
        return self.selects(extension, distribution) and self.permission in ("*", kind)


class Trust(_Selector):
    """An entry of the host policy's trust list: with ``Host(isolation="auto")`` the extensions it
    selects run in the host's own process under the in-process guard (which is not a sandbox); every
    other extension runs in kernel-restricted workers."""


class Policy(BaseModel):
    """The host policy file: rules for hosts that run unattended, and whom the host trusts.

    A matching deny always wins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] = ()
    trust: tuple[Trust, ...] = Field(
        default=(),
        description="Extensions that may run in the host's process when it isolates the others "
        '(`isolation = "auto"`): first-party code, not code from strangers.',
    )

    def decide(self, extension: str, distribution: str, kind: str) -> tuple[str, int] | None:
        """``("deny", n)`` or ``("allow", n)`` for the deciding rule number n (1-based), else None."""
        allowed = None
        for number, rule in enumerate(self.rules, 1):
            if rule.matches(extension, distribution, kind):
                if rule.action == "deny":
                    return ("deny", number)
                allowed = allowed or ("allow", number)
        return allowed

    def trusts(self, extension: str, distribution: str) -> int | None:
        """The number (1-based) of the first trust entry selecting this extension, else None."""
        for number, entry in enumerate(self.trust, 1):
            if entry.selects(extension, distribution):
                return number
        return None


def read_policy(path: Path) -> Policy:
    """Read a policy file; a missing file is an empty policy, a bad one a `ConfigError` naming the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Policy()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc}", hint="fix or remove the file") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        lines = "".join(
            f"\n  - {'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid policy file {path}:{lines}", hint="fix the rules listed above") from None


@dataclass(frozen=True, slots=True)
class Consent:
    """Where one version of an extension stands: what it asks for and what still needs a yes."""

    extension: str
    version: str
    requested: tuple[Mapping[str, Any], ...]
    granted: Grant | None
    previous: Grant | None
    new: tuple[Atom, ...]
    by_policy: tuple[Atom, ...]
    denied: tuple[tuple[Atom, int], ...]

    @property
    def satisfied(self) -> bool:
        """True when every requested permission is granted or allowed by policy, and none is denied."""
        return not self.new and not self.denied

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready summary for ``--json`` output."""
        return {
            "extension": self.extension,
            "version": self.version,
            "requested": [dict(permission) for permission in self.requested],
            "granted_version": None if self.granted is None else self.granted.version,
            "previous_version": None if self.previous is None else self.previous.version,
            "needs_consent": [describe(atom) for atom in self.new],
            "allowed_by_policy": [describe(atom) for atom in self.by_policy],
            "denied_by_policy": [{"permission": describe(atom), "rule": rule} for atom, rule in self.denied],
            "satisfied": self.satisfied,
        }


def evaluate(
    state: HostState,
    policy: Policy,
    *,
    extension: str,
    version: str,
    distribution: str,
    requested: Sequence[Mapping[str, Any]],
) -> Consent:
    """Compare what a version requests with its grant (or an earlier version's) and the host policy."""
    granted = state.granted(extension, version)
    previous = None if granted is not None else state.latest_grant(extension)
    base = granted or previous
    covered = atoms(base.permissions) if base is not None else set()
    new, by_policy, denied = [], [], []
    for atom in sorted(atoms(requested)):
        decision = policy.decide(extension, distribution, atom[0])
        if decision is not None and decision[0] == "deny":
            denied.append((atom, decision[1]))
        elif atom in covered:
            continue
        elif decision is not None:
            by_policy.append(atom)
        else:
            new.append(atom)
    return Consent(
        extension, version, tuple(requested), granted, previous, tuple(new), tuple(by_policy), tuple(denied)
    )


def select(requested: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The requested permissions of the given types (all of them when ``kinds`` is empty)."""
    unknown = set(kinds) - {str(permission["type"]) for permission in requested}
    if unknown:
        raise ConfigError(
            f"the extension does not request {', '.join(sorted(unknown))}",
            hint="`symphony permissions ID` lists what it requests",
        )
    return [dict(permission) for permission in requested if not kinds or permission["type"] in kinds]
