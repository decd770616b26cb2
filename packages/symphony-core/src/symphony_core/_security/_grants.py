"""Consent: what an extension asks for, what was granted to which installation, and the host's policy.

A grant belongs to one version of one extension as shipped by one distribution, and to the installed
files themselves where the installer recorded them (the SHA-256 of the distribution's ``RECORD``): the
same id and version from another distribution, or another build of the same one, asks again.
Permissions are compared scope by scope (one path, one ``host:port``, one variable name at a time):
when an upgrade of the same distribution asks for nothing beyond what an earlier version was granted,
the grant carries over without asking anyone; when it asks for more, it is not activated until a person
(or the host policy) consents to exactly what is new.

Ids and publishers are names any distribution can declare, so whom the host trusts, and which of two
distributions declaring one id keeps it, are bound to distributions too.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from symphony_core._catalog._compat import own_problem
from symphony_core._catalog._records import Catalog, Problem, Record, contested, record_key
from symphony_core._model._errors import ConfigError, ConsentRequired
from symphony_core._model._kinds import KINDS, canonical_id
from symphony_core._model._public import public
from symphony_core._model._spoofing import Suspicion, manifest_suspicions
from symphony_core._store._state import Grant, HostState
from symphony_core._store._state import binds as _binds
from symphony_core._store._state import same_distribution as _same

from ._limits import ResourceLimits
from ._reach import UNFLAGGED_TYPES, Note, Reach, Roots, reach

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCOPE_FIELDS = ("paths", "hosts", "names", "commands")
log = logging.getLogger("symphony.policy")

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
    other extension runs in kernel-restricted workers. Of two distributions declaring one id, the one it
    selects keeps the id.

    An entry names the distribution: any distribution can declare any id under any publisher, so
    ``publisher`` and ``extension`` only narrow an entry, and ``sha256`` pins one installation of it.
    An entry without ``distribution`` trusts nothing (`Policy.trusts` says so in the log); it is not
    refused, since a policy file that fails to read stops every extension, not only the ones it names.
    """

    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Matches only the installation whose `RECORD` file has this SHA-256 "
        "(`symphony inspect ID --json` shows it as `distribution_sha256`).",
    )

    def selects_installed(self, extension: str, distribution: str, sha256: str | None) -> bool:
        """Whether the entry is about this extension as installed; a pinned hash that the host cannot
        check (no ``RECORD``) does not match."""
        if self.distribution is None:
            return False
        if self.sha256 is not None and (sha256 is None or sha256.lower() != self.sha256.lower()):
            return False
        return self.selects(extension, distribution)


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
    limits: ResourceLimits = Field(
        default_factory=ResourceLimits,
        description="The resource limits of each isolated worker (`[limits]`); unwritten ones keep their "
        "defaults.",
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

    def trusts(self, extension: str, distribution: str, sha256: str | None = None) -> int | None:
        """The number (1-based) of the first trust entry selecting this extension as shipped by
        ``distribution`` (installed with that ``RECORD`` hash), else None."""
        for number, entry in enumerate(self.trust, 1):
            if entry.selects_installed(extension, distribution, sha256):
                return number
            if entry.distribution is None and entry.selects(extension, distribution):
                log.warning(
                    "trust entry %d of the host policy names no distribution, so it does not trust %s: any "
                    'distribution can declare an id under any publisher; add `distribution = "NAME"`, '
                    "the distribution you trust to ship it (`symphony inspect %s` shows it)",
                    number,
                    extension,
                    extension,
                )
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
        raise ConfigError(
            f"invalid policy file {path}:{lines}", hint="fix the entries listed above"
        ) from None


@public
@dataclass(frozen=True, slots=True)
class Consent:
    """Where one installed version of an extension stands: what it asks for and what still needs a yes."""

    extension: str
    version: str
    requested: tuple[Mapping[str, Any], ...]
    granted: Grant | None
    previous: Grant | None
    new: tuple[Atom, ...]
    by_policy: tuple[Atom, ...]
    denied: tuple[tuple[Atom, int], ...]
    distribution: str | None = None
    sha256: str | None = None
    """SHA-256 of the installed distribution's ``RECORD``; None when the installer wrote none."""
    replaced: Grant | None = None
    """A grant to this version from this distribution, made for other installed files: nothing carries
    over from it, everything is asked again."""
    reach: tuple[Reach, ...] = ()
    """What each requested scope reaches on this machine, in the order of ``atoms``."""
    warnings: tuple[Suspicion, ...] = ()
    """Text of the manifest a person should look at twice: invisible characters, mixed scripts."""

    @property
    def refused(self) -> tuple[tuple[Atom, Note], ...]:
        """Requested scopes no one can grant, and why (a write grant over ``SYMPHONY_HOME``)."""
        return tuple(((r.permission, r.scope), note) for r in self.reach if (note := r.refused) is not None)

    @property
    def flagged(self) -> tuple[Atom, ...]:
        """Requested scopes a person must opt in to one by one (`Reach.flagged`): files beyond the
        extension's own folders, any network access, environment variables, programs."""
        if self.reach:
            return tuple((r.permission, r.scope) for r in self.reach if r.flagged)
        # Without the extension's folders no one can tell where a path leads: every file scope is flagged.
        return tuple(atom for atom in sorted(atoms(self.requested)) if atom[0] not in UNFLAGGED_TYPES)

    @property
    def satisfied(self) -> bool:
        """True when every requested permission is granted or allowed by policy, and none is denied or refused."""
        return not self.new and not self.denied and not self.refused

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready summary for ``--json`` output."""
        return {
            "extension": self.extension,
            "version": self.version,
            "requested": [dict(permission) for permission in self.requested],
            "granted_version": None if self.granted is None else self.granted.version,
            "previous_version": None if self.previous is None else self.previous.version,
            "distribution": self.distribution,
            "distribution_sha256": self.sha256,
            "installed_files_changed": self.replaced is not None,
            "needs_consent": [describe(atom) for atom in self.new],
            "allowed_by_policy": [describe(atom) for atom in self.by_policy],
            "denied_by_policy": [{"permission": describe(atom), "rule": rule} for atom, rule in self.denied],
            "refused": [{"permission": describe(atom), **note.as_json()} for atom, note in self.refused],
            "reach": [item.as_json() for item in self.reach],
            "flagged": [describe(atom) for atom in self.flagged],
            "warnings": [warning.as_json() for warning in self.warnings],
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
    sha256: str | None = None,
    roots: Roots | None = None,
    name: str | None = None,
) -> Consent:
    """Compare what an installed version requests with its grant (or an earlier version's from the same
    distribution) and the host policy.

    Grants made before grants named their distribution count as earlier ones of any distribution; the
    first grant recorded for a distribution replaces them (`HostState.grant`).

    With ``roots`` (the extension's folders on this machine) it says what each scope reaches, and refuses
    what no one may grant; with ``name`` it warns about the display name's text as about each reason.
    """
    grants = state.grants(extension)
    granted = next((g for g in grants if _binds(g, version, distribution, sha256)), None)
    replaced = None
    if granted is None:
        replaced = next((g for g in grants if _binds(g, version, distribution, g.sha256)), None)
    previous = None
    if granted is None and replaced is None:
        earlier = [g for g in grants if g.distribution is None or _same(g.distribution, distribution)]
        previous = earlier[-1] if earlier else None
    base = granted or previous
    covered = atoms(base.permissions) if base is not None else set()
    new, by_policy, denied = [], [], []
    reaches = (
        () if roots is None else tuple(reach(kind, scope, roots) for kind, scope in sorted(atoms(requested)))
    )
    refused = {(item.permission, item.scope) for item in reaches if item.refused is not None}
    for atom in sorted(atoms(requested)):
        decision = policy.decide(extension, distribution, atom[0])
        if decision is not None and decision[0] == "deny":
            denied.append((atom, decision[1]))
        elif atom in refused:
            continue  # no one can consent to it, a grant neither: `Consent.refused` says why
        elif atom in covered:
            continue
        elif decision is not None:
            by_policy.append(atom)
        else:
            new.append(atom)
    return Consent(
        extension,
        version,
        tuple(requested),
        granted,
        previous,
        tuple(new),
        tuple(by_policy),
        tuple(denied),
        distribution,
        sha256,
        replaced,
        reach=reaches,
        warnings=manifest_suspicions(name, requested),
    )


def select(requested: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> list[dict[str, Any]]:
    """The requested permissions named by ``kinds`` (all of them when it is empty).

    Each entry names a permission type (``fs.read``: every scope of it) or one scope as `describe`
    writes it (``fs.read {data}/*.csv``); a permission is kept with only the scopes named."""
    return rebuild(requested, chosen_atoms(requested, kinds))


def chosen_atoms(requested: Sequence[Mapping[str, Any]], kinds: Sequence[str]) -> set[Atom]:
    """The atoms of ``requested`` that ``kinds`` names (see `select`); `ConfigError` for a name it does
    not request."""
    available = atoms(requested)
    if not kinds:
        return available
    chosen: set[Atom] = set()
    unknown = []
    for entry in kinds:
        kind, _, scope = entry.strip().partition(" ")
        matching = {atom for atom in available if atom[0] == kind and (not scope or atom[1] == scope.strip())}
        if matching:
            chosen |= matching
        else:
            unknown.append(entry)
    if unknown:
        raise ConfigError(
            f"the extension does not request {', '.join(sorted(unknown))}",
            hint="`symphony permissions ID` lists what it requests",
        )
    return chosen


def rebuild(requested: Sequence[Mapping[str, Any]], chosen: set[Atom]) -> list[dict[str, Any]]:
    """The requested permissions cut down to the ``chosen`` atoms, in their order, reasons kept."""
    kept: list[dict[str, Any]] = []
    for permission in requested:
        kind = str(permission["type"])
        fields = [name for name in SCOPE_FIELDS if permission.get(name)]
        if not fields:
            if (kind, "") in chosen:
                kept.append(dict(permission))
            continue
        cut = dict(permission)
        for name in fields:
            cut[name] = [item for item in permission[name] if (kind, str(item)) in chosen]
        if any(cut[name] for name in fields):
            kept.append({key: value for key, value in cut.items() if key not in fields or value})
    return kept


def covered(consent: Consent) -> set[Atom]:
    """What the version's grant (or the earlier version's it carries over from) already holds of what it
    requests: kept by any grant that adds to it."""
    base = consent.granted or consent.previous
    return atoms(base.permissions) & atoms(consent.requested) if base is not None else set()


def settle(consent: Consent, state: HostState) -> None:
    """Refuse to run the extension without consent (`ConsentRequired`); record a grant that carried over
    from an earlier version or came from the policy."""
    extension = consent.extension
    if not consent.satisfied:
        asks = [describe(atom) for atom in consent.new]
        denied = [f"{describe(atom)} (denied by policy rule {rule})" for atom, rule in consent.denied]
        denied += [f"{describe(atom)} (refused: {note.message})" for atom, note in consent.refused]
        since = f" (new since version {consent.previous.version})" if consent.previous else ""
        if consent.replaced is not None:  # the same version, installed from other files
            since = f" (its installed files differ from those version {consent.version} was granted to)"
        raise ConsentRequired(
            f"needs consent before it can run{since}: " + "; ".join(denied + asks),
            extension=extension,
            hint=f"review with `symphony permissions {extension}`, then `symphony grant {extension}`",
        )
    if consent.granted is None and consent.requested:
        source = (
            "policy"
            if consent.by_policy
            else f"carried over from {consent.previous.version}"
            if consent.previous
            else "host"
        )
        permissions = [dict(permission) for permission in consent.requested]
        state.grant(
            extension,
            consent.version,
            permissions,
            actor=source,
            distribution=consent.distribution,
            sha256=consent.sha256,
        )


def settle_claims(
    catalog: Catalog, state: HostState, read: Callable[[], Policy]
) -> dict[str, tuple[str, Problem | None]]:
    """Decide which of several distributions declaring one extension id keeps it.

    Returns, for every record whose id is declared more than once (by ``record_key``), the key its slot
    gets (the canonical id for the one keeping it, ``distribution:id`` for the others) and its problem.
    The one the policy trusts keeps the id; with none trusted, the one holding a grant for it. Any other
    case (none, or several) is left to a person: every claimant stays refused.
    """
    try:
        policy = read()
    except ConfigError:
        policy = Policy()  # a broken policy file trusts nobody; loading an extension reports it
    settled: dict[str, tuple[str, Problem | None]] = {}
    for key, records in contested(catalog).items():
        kept = _keeper(key, records, state, policy)
        for number, record in enumerate(records):
            if kept is None:  # the first keeps the id's key, so that `symphony inspect ID` shows the conflict
                settled[record_key(record)] = (key if number == 0 else record_key(record), record.problem)
            elif record is kept[0]:
                settled[record_key(record)] = (key, own_problem(record, catalog))
            else:
                settled[record_key(record)] = (record_key(record), _refused(record, kept[0], kept[1]))
    return settled


def _keeper(
    key: str, records: Sequence[Record], state: HostState, policy: Policy
) -> tuple[Record, str] | None:
    trusted = [
        (record, number)
        for record in records
        if (number := policy.trusts(record.id, record.distribution, record.distribution_sha256)) is not None
    ]
    if trusted:
        if len(trusted) > 1:
            return None
        record, number = trusted[0]
        return record, f"trusted by entry {number} of the host policy"
    holders = {g.distribution for g in state.grants(key) if g.distribution is not None}
    granted = [record for record in records if any(_same(record.distribution, d) for d in holders)]
    if len(granted) == 1:
        return granted[0], "granted its permissions on this host"
    return None


def _refused(record: Record, kept: Record, why: str) -> Problem:
    return Problem(
        "conflict",
        f"the id '{record.id}' is also declared by '{kept.distribution}' ({KINDS[kept.kind].group}), which "
        f"keeps it ({why}); this one, from '{record.distribution}', is not used",
        f"uninstall '{record.distribution}' (`pip uninstall {record.distribution}`)",
    )
