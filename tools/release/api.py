"""The API-break gate: compare each package's public API with its last release tag using griffe.

A breaking change needs a `breaking` fragment in the package's changes/, so that the release plan bumps
the right part of the version. A public package is loaded with the core beside it, so that a core change
which breaks a name the public package re-exports counts against the public package too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .commands import find_tool, list_release_tags, run
from .errors import ReleaseError
from .fragments import list_fragments
from .workspace import CORE, Package

# griffe's oneline format: `path:line: name: what broke`
BREAKAGE = re.compile(r"^(?P<where>[^:\s]+:\d+): (?P<name>[^:]+): (?P<what>.+)$")


@dataclass
class ApiCheck:
    """What the gate found for one package."""

    package: str
    folder: str
    tag: str | None
    breakages: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    breaking_fragments: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Say whether the package passes: no breakage, or one announced by a breaking fragment."""
        return not self.breakages or bool(self.breaking_fragments)


def check_api(root: Path, package: Package, core: Package) -> ApiCheck:
    """Run griffe against the package's last release tag and judge the result."""
    tags = list_release_tags(root, package.distribution)
    if not tags:
        return ApiCheck(package.distribution, package.relpath, None)
    tag = tags[-1][1]
    search = [package.src] if package.distribution == CORE else [package.src, core.src]
    args: list[str | Path] = [find_tool("griffe"), "check", "-f", "oneline", package.import_name, "-a", tag]
    for path in search:
        args += ["-s", path.relative_to(root)]
    proc = run(args, cwd=root, check=False)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if BREAKAGE.match(line)]
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not lines):
        raise ReleaseError(f"griffe could not compare {package.distribution} with {tag}:\n{proc.stderr}")
    check = ApiCheck(package.distribution, package.relpath, tag, lines)
    check.names = sorted({m["name"] for line in lines if (m := BREAKAGE.match(line))})
    check.breaking_fragments = [f.path.name for f in list_fragments(package) if f.type == "breaking"]
    return check


def describe(check: ApiCheck) -> list[str]:
    """Write what the gate found for one package, one line each."""
    if check.tag is None:
        return [f"{check.package}: no release tag yet, nothing to compare: PASS"]
    if not check.breakages:
        return [f"{check.package}: public API compatible with {check.tag}: PASS"]
    names = ", ".join(check.names)
    if check.breaking_fragments:
        head = f"{check.package}: breaks {names} since {check.tag}, announced by {', '.join(check.breaking_fragments)}: PASS"
        return [head]
    return [
        f"{check.package}: breaks {names} since {check.tag} with no breaking fragment: FAIL",
        *(f"  {line}" for line in check.breakages),
        f"  restore them, or announce the break in {check.folder}/changes/<slug>.breaking.md",
    ]
