"""Compatibility cells: which core and which package source each cell tests, and installing one.

tox runs the cells (`tox.toml`, label `compat`): it makes each cell's environment, installs the test tools,
runs the tests and reports. What tox cannot know is decided here and called from `toxfile.py` before tox
installs anything into a cell:

- `<pkg>-oldest-core`: the package from the workspace, with the oldest core its range admits (that
  version's release tag, or the workspace when no tag is admitted) and uv's `lowest-direct` resolution,
  so every direct dependency is at the lowest release its range admits;
- `<pkg>-newest-core`: the package from the workspace with the newest core admitted (the workspace's when
  admitted) and the newest third-party releases;
- `core-with-<pkg>-release`: the package's source and tests at its last release tag against the
  workspace's core, skipped with the reason when there is no tag or that release's range excludes the
  current core.

The core is always a wheel built here, from the workspace or from the source at its release tag, named
outright on the install line: a cell tests exactly the core it names, whatever an index holds.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .bounds import find_unbounded
from .commands import clean_env, git, list_release_tags, run
from .errors import ReleaseError
from .versions import admits
from .workspace import (
    CORE,
    SQUATTED,
    Package,
    find_requirement,
    find_requirement_on,
    load_packages,
    read_toml,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CONSTRAINTS = "cell-constraints.txt"
"""What the cell resolved, written into the cell's environment folder: tox installs the test tools under it."""
REPORT = "cell.json"
"""What the cell installed, written into the cell's environment folder for `release matrix` to show."""
SOURCE = "cell-src"
"""Where a reverse cell's package source and tests at its release tag are extracted, in the env folder."""


@dataclass
class Cell:
    """One combination to test: a package's source and tests, one core, one resolution."""

    name: str
    package: Package
    ref: str | None  # the package's release tag, or None for the workspace
    core_version: str
    core_ref: str | None  # the core's release tag, or None for the workspace
    resolution: str
    skip: str | None = None

    @property
    def core_label(self) -> str:
        """Say which core the cell uses and where it comes from."""
        return f"{self.core_version} ({self.core_ref or 'workspace'})"

    @property
    def package_label(self) -> str:
        """Say which package source the cell tests."""
        return f"{self.package.distribution} ({self.ref or 'workspace'})"


def plan_cells(root: Path, packages: list[Package]) -> list[Cell]:
    """Name every cell, with the reason when one cannot run."""
    core = next(p for p in packages if not p.public)
    tagged = dict(list_release_tags(root, CORE))
    public = [p for p in packages if p.public]
    cells = []
    for package in public:
        spec = str(Requirement(find_requirement_on(package.path / "pyproject.toml", CORE) or CORE).specifier)
        admitted = sorted(v for v in {*tagged, core.version} if admits(spec, v))
        if not admitted:
            raise ReleaseError(f"{package.distribution} admits no core we have ({CORE}{spec})")
        oldest, newest = admitted[0], admitted[-1]
        # a tagged version is tested as released; the newest is the workspace's when the range admits it
        oldest_ref = tagged.get(oldest)
        newest_ref = None if newest == core.version else tagged[newest]
        cells.append(
            Cell(f"{package.short}-oldest-core", package, None, str(oldest), oldest_ref, "lowest-direct")
        )
        cells.append(Cell(f"{package.short}-newest-core", package, None, str(newest), newest_ref, "highest"))
    cells += [plan_reverse_cell(root, package, core) for package in public]
    return cells


def plan_reverse_cell(root: Path, package: Package, core: Package) -> Cell:
    """Plan the current core against the package's last release, or say why that cannot run."""
    cell = Cell(f"core-with-{package.short}-release", package, None, str(core.version), None, "highest")
    tags = list_release_tags(root, package.distribution)
    if not tags:
        cell.skip = f"{package.distribution} has no release tag yet"
        return cell
    cell.ref = tags[-1][1]
    released = tomllib.loads(git(root, "show", f"{cell.ref}:{package.relpath}/pyproject.toml"))
    raw = find_requirement(released["project"].get("dependencies", []), CORE) or CORE
    if not admits(str(Requirement(raw).specifier), core.version):
        cell.skip = f"{cell.ref} requires {raw}, which excludes the current core {core.version}"
    return cell


def find_cell(root: Path, name: str) -> Cell:
    """Plan the cells and return the one called name."""
    cells = {c.name: c for c in plan_cells(root, load_packages(root))}
    if name not in cells:
        raise ReleaseError(f"no cell {name}: one of {', '.join(cells)}")
    return cells[name]


def extract(root: Path, ref: str, paths: list[str], dest: Path) -> Path:
    """Write the files under paths as they were at ref into dest, and return dest."""
    proc = subprocess.run(
        ["git", "archive", "--format=tar", ref, *paths], cwd=root, capture_output=True, check=False
    )
    if proc.returncode:
        raise ReleaseError(f"`git archive {ref}` failed:\n{proc.stderr.decode()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def build_core(root: Path, uv: list[str], ref: str | None, dest: Path) -> Path:
    """Build the core's wheel from the workspace or from the source at its release tag into dest."""
    shutil.rmtree(dest, ignore_errors=True)
    source = root / "packages" / "symphony-core"
    if ref is not None:
        source = extract(root, ref, ["packages/symphony-core"], dest / "src") / "packages" / "symphony-core"
    run([*uv, "build", "--quiet", "--wheel", "--out-dir", dest, source], cwd=root, env=clean_env())
    return next(dest.glob("*.whl"))


def install_cell(root: Path, cell: Cell, uv: list[str], python: Path, env_dir: Path) -> dict[str, str]:
    """Install the cell's package and core into the environment tox made, and say what was resolved.

    Writes the resolved versions as constraints (`CONSTRAINTS`) under which tox then adds the test tools,
    so the tools cannot move what the cell is about, and a report (`REPORT`) of what the cell installed.
    """
    if cell.skip is not None:
        raise ReleaseError(f"{cell.name} cannot run: {cell.skip}")
    unbounded = find_unbounded(root) if cell.resolution == "lowest-direct" else []
    if unbounded:  # lowest-direct would install the first release ever of such a dependency
        raise ReleaseError("\n".join(unbounded))
    core_wheel = build_core(root, uv, cell.core_ref, env_dir / "cell-core")
    source = cell.package.path
    if cell.ref is not None:
        checkout = env_dir / SOURCE
        shutil.rmtree(checkout, ignore_errors=True)
        extract(root, cell.ref, [cell.package.relpath, "pytest.ini"], checkout)
        source = checkout / cell.package.relpath
    names = (CORE, cell.package.distribution)
    run(
        [
            *uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            "--resolution",
            cell.resolution,
            *(arg for name in names for arg in ("--reinstall-package", name)),
            "-e",
            source,
            core_wheel,
        ],
        cwd=root,
        env=clean_env(),
    )
    installed = list_installed(root, uv, python)
    if SQUATTED in installed or installed.get(CORE) != cell.core_version:
        raise ReleaseError(f"{cell.name}: expected {CORE} {cell.core_version}, got {installed}")
    (env_dir / CONSTRAINTS).write_text(
        "".join(f"{n}=={v}\n" for n, v in sorted(installed.items()) if n != cell.package.distribution)
    )
    report = {
        "cell": cell.name,
        "package": cell.package_label,
        "core": cell.core_label,
        "resolution": cell.resolution,
        "resolved": describe_resolved(cell.package, installed, cell.resolution),
    }
    (env_dir / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def describe_resolved(package: Package, installed: dict[str, str], resolution: str) -> str:
    """List the package's direct dependencies as installed; in a lowest cell, flag any above its floor."""
    parts = []
    for raw in package.dependencies:
        requirement = Requirement(raw)
        name = canonicalize_name(requirement.name)
        if name == CORE or name not in installed:
            continue
        part = f"{name} {installed[name]}"
        floor = lowest_admitted(requirement.specifier)
        if resolution == "lowest-direct" and floor is not None and Version(installed[name]) != floor:
            part += f" (above its floor {floor}: another dependency needs more)"
        parts.append(part)
    return ", ".join(parts)


def lowest_admitted(specifier: SpecifierSet) -> Version | None:
    """Return the version a `>=`, `==` or `~=` bound names, the floor lowest-direct aims for."""
    floors = [Version(s.version) for s in specifier if s.operator in (">=", "==", "~=")]
    return max(floors) if floors else None


def list_installed(root: Path, uv: list[str], python: Path) -> dict[str, str]:
    """Map each distribution installed in an environment to its version."""
    listing = run([*uv, "pip", "list", "--python", python, "--format", "json"], cwd=root, env=clean_env())
    return {canonicalize_name(d["name"]): d["version"] for d in json.loads(listing.stdout)}


def read_test_dependencies(root: Path, short: str) -> set[str]:
    """Read the test-only dependencies hatch.toml's `hatch-test` cell of one package installs."""
    hatch_test = read_toml(root / "hatch.toml")["envs"]["hatch-test"]
    extras = (
        hatch_test.get("overrides", {}).get("matrix", {}).get("package", {}).get("extra-dependencies", [])
    )
    declared = [
        *hatch_test.get("dependencies", []),
        *(e["value"] for e in extras if short in e.get("if", [])),
    ]
    return {str(Requirement(raw)) for raw in declared}


def compare_test_dependencies(root: Path, short: str, tox_deps: list[str]) -> str | None:
    """Say how a tox environment's test tools differ from hatch's for the same package, or None."""
    ours = {str(Requirement(line)) for line in tox_deps if not line.startswith("-")}
    hatch = read_test_dependencies(root, short)
    if ours == hatch:
        return None
    return (
        f"tox.toml and hatch.toml disagree on the test tools of {short}: "
        f"only in tox.toml: {', '.join(sorted(ours - hatch)) or 'none'}; "
        f"only in hatch.toml: {', '.join(sorted(hatch - ours)) or 'none'}. Change both together."
    )
