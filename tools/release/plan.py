"""The release plan: which distributions have something to release, at which version, and what follows.

A package with pending fragments gets the next SemVer version; a package never released gets its first
release at its current version. When a release leaves a dependent's range (the core's breaking 0.2.0
outside `symphony-sdk-core>=0.1,<0.2`), the dependent's range moves and, for a package, it is released too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from .commands import list_release_tags
from .errors import ReleaseError
from .fragments import list_fragments
from .versions import admits, bump, choose_bump, compute_range, replace_range
from .workspace import Package, find_requirement_on, list_project_files, load_packages


@dataclass
class Release:
    """One distribution to release."""

    distribution: str
    folder: str
    current: str
    next: str
    bump: str
    fragments: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


@dataclass
class RangeUpdate:
    """One dependency range that must move because of a release."""

    file: str
    dependency: str
    version: str
    old: str
    new: str


@dataclass
class Plan:
    """Everything `release apply` would do."""

    releases: list[Release]
    range_updates: list[RangeUpdate]

    def as_json(self) -> dict[str, object]:
        """Return the plan as plain data for `--json`."""
        return asdict(self)


def plan_release(root: Path, package: Package, override: Version | None) -> Release | None:
    """Decide one package's own release from its fragments and tags, before knock-on effects."""
    fragments = list_fragments(package)
    types = {f.type for f in fragments}
    names = [f.path.name for f in fragments]
    current = package.version
    if not list_release_tags(root, package.distribution):
        reasons = ["never released: first release at the current version"]
        return Release(
            package.distribution,
            package.folder,
            str(current),
            str(override or current),
            "first",
            names,
            reasons,
        )
    part = choose_bump(current, types)
    if part is None and override is None:
        return None
    if override is not None and part is not None and override < bump(current, part):
        raise ReleaseError(
            f"{package.distribution}: {override} is too small: its fragments call for {bump(current, part)}"
        )
    reasons = [f"{t}: {', '.join(f.path.name for f in fragments if f.type == t)}" for t in sorted(types)]
    if override is not None:
        reasons.append(f"version {override} set by hand")
    nxt = override or bump(current, part or "patch")
    return Release(
        package.distribution, package.folder, str(current), str(nxt), part or "manual", names, reasons
    )


def make_plan(root: Path, overrides: dict[str, Version] | None = None) -> Plan:
    """Plan every release and range move the pending fragments call for."""
    overrides = overrides or {}
    packages = load_packages(root)
    by_file = {p.path / "pyproject.toml": p for p in packages}
    releases: dict[str, Release] = {}
    for package in packages:
        release = plan_release(root, package, overrides.get(package.distribution))
        if release is not None:
            releases[package.distribution] = release
    updates: list[RangeUpdate] = []
    # packages come core first, so a knock-on release of a public package is seen by the examples
    for package in packages:
        release = releases.get(package.distribution)
        if release is None:
            continue
        for pyproject in list_project_files(root):
            raw = find_requirement_on(pyproject, package.distribution)
            if raw is None:
                continue
            if admits(str(Requirement(raw).specifier), Version(release.next)):
                continue
            new = replace_range(raw, compute_range(Version(release.next)))
            updates.append(
                RangeUpdate(str(pyproject.relative_to(root)), package.distribution, release.next, raw, new)
            )
            dependent = by_file.get(pyproject)
            if dependent is not None:
                add_knock_on(releases, dependent, f"its {package.distribution} range moves to {new}")
    return Plan(list(releases.values()), updates)


def add_knock_on(releases: dict[str, Release], dependent: Package, reason: str) -> None:
    """Make sure a dependent whose range moves is released too, with the reason recorded."""
    release = releases.get(dependent.distribution)
    if release is None:
        nxt = bump(dependent.version, "patch")
        release = Release(dependent.distribution, dependent.folder, str(dependent.version), str(nxt), "patch")
        releases[dependent.distribution] = release
    release.reasons.append(reason)


def format_plan(plan: Plan) -> str:
    """Lay the plan out as plain-text tables."""
    if not plan.releases:
        return "nothing to release: no package has pending change fragments"
    header = ("distribution", "current", "next", "bump", "why")
    rows = [(r.distribution, r.current, r.next, r.bump, "; ".join(r.reasons)) for r in plan.releases]
    lines = format_rows([header, *rows])
    if plan.range_updates:
        lines += ["", "dependency ranges that move:"]
        lines += format_rows([("file", "from", "to"), *((u.file, u.old, u.new) for u in plan.range_updates)])
    return "\n".join(lines)


def format_rows(rows: Sequence[Sequence[str]]) -> list[str]:
    """Align rows into columns, with a rule under the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return [lines[0], "-" * len(lines[0]), *lines[1:]]
