"""The SemVer rules: which part of a version a set of change types bumps, and the range that admits it."""

from __future__ import annotations

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

# Change fragment types, as in `packages/<folder>/changes/<slug>.<type>.md`.
FRAGMENT_TYPES = ("breaking", "feature", "fix", "docs", "misc")


def choose_bump(version: Version, types: set[str]) -> str | None:
    """Say which part to bump for these change types: breaking is major (minor while 0.x), and so on."""
    if "breaking" in types:
        return "minor" if version.major == 0 else "major"
    if "feature" in types and version.major >= 1:
        return "minor"
    return "patch" if types else None


def bump(version: Version, part: str) -> Version:
    """Return the version after bumping one part, dropping any pre-release or local label."""
    major, minor, patch = (*version.release, 0, 0)[:3]
    if part == "major":
        return Version(f"{major + 1}.0.0")
    if part == "minor":
        return Version(f"{major}.{minor + 1}.0")
    return Version(f"{major}.{minor}.{patch + 1}")


def compute_range(version: Version) -> str:
    """Write the range that admits every release compatible with version: `>=0.2,<0.3` or `>=1.4,<2`."""
    if version.major == 0:
        return f">=0.{version.minor},<0.{version.minor + 1}"
    return f">={version.major}.{version.minor},<{version.major + 1}"


def admits(specifier: str, version: Version) -> bool:
    """Say whether a range such as `>=0.1,<0.2` admits version."""
    return SpecifierSet(specifier).contains(version, prereleases=True)


def replace_range(raw: str, specifier: str) -> str:
    """Rewrite a requirement string with a new range, keeping its name, extras and marker."""
    requirement = Requirement(raw)
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{requirement.name}{extras}{specifier}{marker}"
