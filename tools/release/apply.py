"""Carry out the release plan: versions, changelogs, dependent ranges, one commit and one tag per release.

It refuses a dirty tree, a local (`+`) version, a version whose tag already exists and a changelog that
already has a section for the version, so that running it twice can never publish two different things
under one version.
"""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import Version

from .commands import find_tool, git, run, tag_exists
from .errors import ReleaseError
from .plan import Plan, make_plan
from .workspace import load_packages, read_toml

VERSION_LINE = re.compile(r'^version = "[^"]*"$', re.MULTILINE)
VERSION_ATTRIBUTE = re.compile(r'^__version__ = "[^"]*"$', re.MULTILINE)


def apply_plan(root: Path, overrides: dict[str, Version]) -> tuple[Plan, list[str]]:
    """Release everything the plan holds, returning the plan and the tags made."""
    refuse_dirty(root)
    plan = make_plan(root, overrides)
    if not plan.releases:
        return plan, []
    packages = {p.distribution: p for p in load_packages(root)}
    for release in plan.releases:
        package = packages[release.distribution]
        refuse_unreleasable(root, package.tag(release.next), release.current, release.next, package.path)
    changed: list[Path] = []
    for update in plan.range_updates:
        changed.append(rewrite_once(root / update.file, f'"{update.old}"', f'"{update.new}"'))
        dependent = next(
            (p for p in packages.values() if root / update.file == p.path / "pyproject.toml"), None
        )
        if dependent is not None:
            slug = f"requires-{update.dependency}-{update.version.replace('.', '-')}"
            note = dependent.changes / f"{slug}.misc.md"
            note.parent.mkdir(exist_ok=True)
            note.write_text(f"Requires `{update.new}` ({update.dependency} {update.version}).\n")
            git(root, "add", str(note))
    towncrier = find_tool("towncrier")
    for release in plan.releases:
        package = packages[release.distribution]
        changed.append(
            rewrite_once(package.path / "pyproject.toml", VERSION_LINE, f'version = "{release.next}"')
        )
        changed.append(rewrite_once(package.init, VERSION_ATTRIBUTE, f'__version__ = "{release.next}"'))
        if read_toml(package.path / "pyproject.toml")["project"]["version"] != release.next:
            raise ReleaseError(
                f"{package.relpath}/pyproject.toml: the first `version =` line is not [project]'s"
            )
        run([towncrier, "build", "--version", release.next, "--yes"], cwd=package.path)
    git(root, "add", "--", *(str(p) for p in changed))
    summary = ", ".join(f"{r.distribution} {r.next}" for r in plan.releases)
    git(root, "commit", "--quiet", "-m", f"Release {summary}")
    tags = [packages[r.distribution].tag(r.next) for r in plan.releases]
    for release, tag in zip(plan.releases, tags, strict=True):
        git(root, "tag", "-a", tag, "-m", f"{release.distribution} {release.next}")
    return plan, tags


def refuse_dirty(root: Path) -> None:
    """Stop unless the work tree is clean, untracked files included: a release is exactly one commit."""
    status = git(root, "status", "--porcelain")
    if status:
        raise ReleaseError(f"the work tree is not clean; commit or stash first:\n{status}")


def refuse_unreleasable(root: Path, tag: str, current: str, nxt: str, path: Path) -> None:
    """Stop on a local version, an existing tag, or a changelog that already has the version."""
    for version in (current, nxt):
        if Version(version).local is not None:
            raise ReleaseError(f"{path.name}: {version} is a local version (`+...`): PyPI refuses those")
    if tag_exists(root, tag):
        raise ReleaseError(
            f"tag {tag} already exists: that version was released; add a fragment to release again"
        )
    changelog = (path / "CHANGELOG.md").read_text()
    if re.search(rf"^#+ {re.escape(nxt)}\b", changelog, re.MULTILINE):
        raise ReleaseError(
            f"{path.name}/CHANGELOG.md already has a section for {nxt}: move its entries into fragments "
            f"under {path.name}/changes/ and delete the section, then run this again"
        )


def rewrite_once(path: Path, old: str | re.Pattern[str], new: str) -> Path:
    """Replace exactly one occurrence of old in a file; zero or several raise ReleaseError."""
    text = path.read_text()
    pattern = old if isinstance(old, re.Pattern) else re.compile(re.escape(old))
    found = len(pattern.findall(text))
    if found != 1:
        raise ReleaseError(f"{path}: expected one {pattern.pattern!r}, found {found}")
    path.write_text(pattern.sub(new.replace("\\", "\\\\"), text, count=1))
    return path
