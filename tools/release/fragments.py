"""Change fragments: list a package's pending ones, and check that a change to its src/ comes with one.

A fragment is `packages/<folder>/changes/<slug>.<type>.md`. A change to `src/` since the base needs a
fragment added (or edited) since the base, unless every commit touching `src/` carries the trailer
`Changelog: internal`. For internal work a `misc` fragment is the other way out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .commands import git, list_release_tags, run
from .errors import ReleaseError
from .versions import FRAGMENT_TYPES
from .workspace import Package

FRAGMENT_NAME = re.compile(
    rf"^(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]*)\.(?P<type>{'|'.join(FRAGMENT_TYPES)})\.md$"
)
# Files towncrier skips in a fragments folder.
NOT_FRAGMENTS = {".gitkeep", ".gitignore"}
TRAILER = "Changelog"
INTERNAL = "internal"


@dataclass(frozen=True)
class Fragment:
    """One pending change note."""

    path: Path
    slug: str
    type: str


def list_fragments(package: Package) -> list[Fragment]:
    """List a package's pending fragments; a file whose name is not a fragment's raises ReleaseError."""
    if not package.changes.is_dir():
        return []
    fragments, bad = [], []
    for path in sorted(package.changes.iterdir()):
        if path.name in NOT_FRAGMENTS:
            continue
        match = FRAGMENT_NAME.match(path.name)
        if match is None:
            bad.append(path.name)
        else:
            fragments.append(Fragment(path, match["slug"], match["type"]))
    if bad:
        raise ReleaseError(
            f"{package.relpath}/changes/ holds {', '.join(bad)}: fragments are named <slug>.<type>.md "
            f"with a slug of letters, digits, - and _, and a type among {', '.join(FRAGMENT_TYPES)}"
        )
    return fragments


@dataclass
class Coverage:
    """Whether one package's src/ changes since a base come with a change note."""

    package: str
    base: str | None
    base_reason: str
    changed: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Say whether the package passes: nothing changed, a fragment came along, or all was internal."""
        return not self.changed or bool(self.fragments) or not self.uncovered


def resolve_base(root: Path, package: Package, against: str | None) -> tuple[str | None, str]:
    """Choose what to compare with: the package's last release tag, else the merge base with `against`.

    `against` defaults to origin/main, else main: a fresh clone has the first, a local checkout the second.
    """
    for _, tag in reversed(list_release_tags(root, package.distribution)):
        if run(["git", "merge-base", "--is-ancestor", tag, "HEAD"], cwd=root, check=False).returncode == 0:
            return tag, f"last release tag {tag}"
    candidates = [against] if against else ["origin/main", "main"]
    known = [
        c
        for c in candidates
        if run(["git", "rev-parse", "-q", "--verify", c], cwd=root, check=False).returncode == 0
    ]
    if not known:
        return None, f"no release tag and no {' or '.join(candidates)} to take a merge base with"
    against = known[0]
    base = git(root, "merge-base", "HEAD", against)
    itself = " (HEAD itself)" if base == git(root, "rev-parse", "HEAD") else ""
    return base, f"no release tag: merge base with {against}{itself}"


def check_coverage(root: Path, package: Package, base: str | None, base_reason: str) -> Coverage:
    """Compare src/ and changes/ of one package between base and HEAD (committed history only)."""
    coverage = Coverage(package.distribution, base, base_reason)
    if base is None:
        return coverage
    src, changes = f"{package.relpath}/src", f"{package.relpath}/changes"
    coverage.changed = git(root, "diff", "--name-only", base, "HEAD", "--", src).split()
    touched = git(root, "diff", "--name-only", "--diff-filter=AMR", base, "HEAD", "--", changes).split()
    coverage.fragments = [p for p in touched if FRAGMENT_NAME.match(Path(p).name)]
    log = git(
        root,
        "log",
        f"--format=%h %s%x1f%(trailers:key={TRAILER},valueonly,separator=%x2C)",
        f"{base}..HEAD",
        "--",
        src,
    )
    for line in filter(None, log.splitlines()):
        commit, _, trailer = line.partition("\x1f")
        if INTERNAL not in {value.strip().lower() for value in trailer.split(",")}:
            coverage.uncovered.append(commit)
    return coverage


def describe(coverage: Coverage) -> list[str]:
    """Write what the check found for one package, one line each, the failure advice last."""
    head = f"{coverage.package}: compared with {coverage.base_reason}"
    if coverage.base is None:
        return [f"{head}: nothing to compare, PASS"]
    if not coverage.changed:
        return [f"{head}: src/ unchanged, PASS"]
    if coverage.fragments:
        return [f"{head}: src/ changed, fragments {', '.join(coverage.fragments)}, PASS"]
    if not coverage.uncovered:
        return [f"{head}: src/ changed in commits marked `{TRAILER}: {INTERNAL}`, PASS"]
    folder = f"packages/{Path(coverage.changed[0]).parts[1]}"
    return [
        f"{head}: src/ changed with no change fragment, FAIL",
        *(f"  commit {c}" for c in coverage.uncovered),
        f"  add {folder}/changes/<slug>.<type>.md (type: {', '.join(FRAGMENT_TYPES)});",
        f"  for internal-only work add a `misc` fragment, or end each commit message with `{TRAILER}: {INTERNAL}`",
    ]
