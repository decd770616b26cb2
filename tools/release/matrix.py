"""Compatibility matrix: each public package against the oldest and newest core its range admits, and the
current core against the last released public packages.

`symphony-sdk-core` is not on PyPI (and `symphony-core` there is someone else's), so the core always comes
from a wheel built here: from the workspace, or from the source at its release tag. The wheel is named
outright on the install line, so no index is ever asked for a core. The oldest cells resolve the package's
other direct dependencies with uv's `lowest-direct`, the newest cells with the newest releases.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .commands import clean_env, find_uv, git, list_release_tags, run
from .errors import ReleaseError
from .versions import admits
from .workspace import CORE, SQUATTED, Package, find_requirement, find_requirement_on, read_toml

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


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


@dataclass
class CellResult:
    """How one cell went."""

    name: str
    package: str
    core: str
    resolution: str
    verdict: str
    seconds: float
    detail: str


def plan_cells(root: Path, packages: list[Package]) -> list[Cell]:
    """Name every cell of the matrix, with the reason when one cannot run."""
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


def extract(root: Path, ref: str, paths: list[str], dest: Path) -> Path:
    """Write the files under paths as they were at ref into dest, and return dest."""
    archive = run_bytes(["git", "archive", "--format=tar", ref, *paths], root)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run_bytes(args: list[str], cwd: Path) -> bytes:
    """Run a command that prints binary data, returning it."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, check=False)
    if proc.returncode:
        raise ReleaseError(f"`{' '.join(args)}` failed:\n{proc.stderr.decode()}")
    return proc.stdout


def build_core(root: Path, core: Package, ref: str | None, workdir: Path) -> Path:
    """Build the core's wheel from the workspace or from its release tag; return the wheel."""
    label = ref or "workspace"
    source = (
        core.path if ref is None else extract(root, ref, [core.relpath], workdir / "src" / ref) / core.relpath
    )
    dest = workdir / "core-wheels" / label
    run([*find_uv(), "build", "--quiet", "--wheel", "--out-dir", dest, source], cwd=root, env=clean_env())
    return next(dest.glob("*.whl"))


def read_test_dependencies(root: Path, package: Package) -> list[str]:
    """Read the test-only dependencies of the package's `hatch test` cell from hatch.toml."""
    hatch_test = read_toml(root / "hatch.toml")["envs"]["hatch-test"]
    extras = (
        hatch_test.get("overrides", {}).get("matrix", {}).get("package", {}).get("extra-dependencies", [])
    )
    return [
        *hatch_test.get("dependencies", []),
        *(e["value"] for e in extras if package.short in e.get("if", [])),
    ]


def run_cell(root: Path, cell: Cell, core_wheel: Path, workdir: Path) -> CellResult:
    """Install one cell into a fresh venv and run the package's tests there."""
    started = time.perf_counter()
    if cell.ref is None:
        source, test_root = cell.package.path, root
    else:
        test_root = extract(root, cell.ref, [cell.package.relpath, "pytest.ini"], workdir / "src" / cell.ref)
        source = test_root / cell.package.relpath
    uv, env = find_uv(), clean_env()
    venv = workdir / "venvs" / cell.name
    run([*uv, "venv", "--quiet", "--python", sys.executable, venv], cwd=root, env=env)
    install: list[str | Path] = [*uv, "pip", "install", "--quiet", "--python", venv]
    run([*install, "--resolution", cell.resolution, "-e", source, core_wheel], cwd=root, env=env)
    installed = list_installed(root, venv)
    if SQUATTED in installed or installed.get(CORE) != cell.core_version:
        raise ReleaseError(f"{cell.name}: expected {CORE} {cell.core_version}, got {installed}")
    # test tools may not move what the cell resolved: pin it while adding them
    pins = workdir / f"{cell.name}-pins.txt"
    pins.write_text("".join(f"{n}=={v}\n" for n, v in installed.items() if n != cell.package.distribution))
    run([*install, "-c", pins, *read_test_dependencies(root, cell.package)], cwd=root, env=env)
    python = venv / "bin" / "python"
    tests = run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", source / "tests"],
        cwd=test_root,
        env=env,
        check=False,
    )
    own = [canonicalize_name(Requirement(r).name) for r in cell.package.dependencies]
    detail = ", ".join(f"{n} {installed[n]}" for n in own if n in installed and n != CORE)
    if tests.returncode:
        detail += "\n" + tests.stdout[-3000:]
    verdict = "FAIL" if tests.returncode else "PASS"
    return CellResult(
        cell.name,
        cell.package_label,
        cell.core_label,
        cell.resolution,
        verdict,
        round(time.perf_counter() - started, 1),
        detail,
    )


def list_installed(root: Path, venv: Path) -> dict[str, str]:
    """Map each distribution installed in a venv to its version."""
    listing = run(
        [*find_uv(), "pip", "list", "--python", venv, "--format", "json"], cwd=root, env=clean_env()
    )
    return {canonicalize_name(d["name"]): d["version"] for d in json.loads(listing.stdout)}


def run_matrix(root: Path, packages: list[Package], cells: list[Cell], workdir: Path) -> list[CellResult]:
    """Build the cores the cells need, then run the cells one after another."""
    core = next(p for p in packages if not p.public)
    wheels: dict[str | None, Path] = {}
    results = []
    for cell in cells:
        if cell.skip is not None:
            results.append(
                CellResult(
                    cell.name, cell.package_label, cell.core_label, cell.resolution, "SKIP", 0.0, cell.skip
                )
            )
            continue
        if cell.core_ref not in wheels:
            wheels[cell.core_ref] = build_core(root, core, cell.core_ref, workdir)
        results.append(run_cell(root, cell, wheels[cell.core_ref], workdir))
    return results
