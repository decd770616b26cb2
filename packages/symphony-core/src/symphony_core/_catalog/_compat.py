"""Decide, before importing anything, whether each discovered extension can run here."""

from __future__ import annotations

import functools
import platform
from collections import defaultdict

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from symphony_core._model._kinds import CORE_DISTRIBUTION, KINDS, canonical_id, canonical_name
from symphony_core._model._manifest import parse_requirement

from ._records import Catalog, Problem, Record, record_key


def check_compat(catalog: Catalog, *, python_version: str | None = None) -> dict[str, Problem]:
    """Return the compatibility problem of every record that has one, keyed by ``distribution:id``.

    Records that already carry a discovery problem are not checked again.
    """
    python = Version(python_version or platform.python_version())
    problems: dict[str, Problem] = {}
    cores: dict[str, Problem | None] = {}  # the same few packages' core, checked once
    for record in catalog.records:
        if record.problem is None:
            problem = _check_record(record, catalog, python, cores)
            if problem is not None:
                problems[record_key(record)] = problem
    problems.update(_duplicates(catalog))
    return problems


def _check_record(
    record: Record, catalog: Catalog, python: Version, cores: dict[str, Problem | None]
) -> Problem | None:
    manifest = record.manifest
    assert manifest is not None
    for source, spec in (
        (f"distribution '{record.distribution}'", record.requires_python),
        ("manifest", manifest.get("requires-python")),
    ):
        if isinstance(spec, str) and not _admits(spec, python):
            return Problem(
                "python",
                f"needs Python {spec} (from its {source}), this is Python {python}",
                "run the host on a Python the extension supports, or install a release of it that supports this one",
            )
    target = parse_requirement(str(manifest["targets"]))
    package = canonical_name(target.name)
    installed = catalog.packages.get(package)
    if installed is None:
        return Problem(
            "missing-package",
            f"is built on {package}, which is not installed",
            f"pip install '{target}'",
        )
    if not _contains(str(manifest["targets"]), installed):
        return Problem(
            "incompatible",
            f"was built for {target.name}{target.specifier}, but {package} {installed} is installed",
            f"install a release of '{record.distribution}' made for {package} {installed}, "
            f"or pip install '{target}'",
        )
    if package not in cores:
        cores[package] = _check_core(package, catalog)
    return cores[package]


def _check_core(package: str, catalog: Catalog) -> Problem | None:
    """The public package itself must sit on a core it admits (a --no-deps install can break that)."""
    core = catalog.packages.get(CORE_DISTRIBUTION)
    for line in catalog.package_requires.get(package, ()):
        requirement = parse_requirement(line)
        if canonical_name(requirement.name) != CORE_DISTRIBUTION or requirement.marker is not None:
            continue
        if core is None or not requirement.specifier.contains(core, prereleases=True):
            found = f"{CORE_DISTRIBUTION} {core}" if core else f"no {CORE_DISTRIBUTION}"
            return Problem(
                "incompatible",
                f"{package} needs {CORE_DISTRIBUTION}{requirement.specifier}, but {found} is installed",
                f"pip install '{package}' again so that it brings the core it needs",
            )
    return None


@functools.lru_cache(maxsize=1024)
def _contains(requirement: str, version: str) -> bool:
    return parse_requirement(requirement).specifier.contains(version, prereleases=True)


@functools.lru_cache(maxsize=1024)
def _admits(spec: str, version: Version) -> bool:
    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return True  # a malformed Requires-Python is the installer's concern, not a reason to refuse


def _duplicates(catalog: Catalog) -> dict[str, Problem]:
    claims: dict[str, list[Record]] = defaultdict(list)
    for record in catalog.records:
        claims[canonical_id(record.id)].append(record)
    problems: dict[str, Problem] = {}
    for records in claims.values():
        if len(records) < 2:
            continue
        owners = ", ".join(f"'{r.distribution}' ({KINDS[r.kind].group})" for r in records)
        for record in records:
            problems[record_key(record)] = Problem(
                "conflict",
                f"the id '{record.id}' is declared by {len(records)} extensions: {owners}; none of them is used",
                "uninstall all but one of these distributions",
            )
    return problems


def own_problem(record: Record, catalog: Catalog) -> Problem | None:
    """The record's problem were it the only one declaring its id.

    Discovery marks every record of an id that several distributions declare with a conflict (and checks
    none of them further); the host settles which one keeps the id, and that one is checked here.
    """
    if record.problem is None or record.problem.code != "conflict":
        return record.problem
    alone = msgspec.structs.replace(record, problem=None)
    return check_compat(msgspec.structs.replace(catalog, records=(alone,))).get(record_key(alone))
