"""Check that each Symphony distribution, installed alone, pulls only its own heavy stack.

Builds the four wheels, installs each public package (and the core) into a fresh venv with uv, and fails
when a venv holds another package's heavy dependency or the squatted PyPI name `symphony-core`, or when a
pyproject.toml declares that name. Run from the repository root: `hatch run tools:isolation [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from uv import find_uv_bin

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CORE = "symphony-sdk-core"
# The PyPI name `symphony-core` belongs to an unrelated project: resolving it is dependency confusion.
SQUATTED = "symphony-core"
FOLDERS = {
    CORE: "symphony-core",
    "symphony-instruments": "symphony-instruments",
    "symphony-operators": "symphony-operators",
    "symphony-motifs": "symphony-motifs",
}
# The heavy stack each public package brings; each one is forbidden to the other two.
HEAVY = {
    "symphony-instruments": ("onnxruntime",),
    "symphony-operators": ("polars",),
    "symphony-motifs": ("pywebview", "pyqt6", "pyqt6-webengine"),
}
ALL_HEAVY = frozenset(dep for deps in HEAVY.values() for dep in deps) | {"numpy"}
FORBIDDEN = {
    pkg: {dep for other in HEAVY if other != pkg for dep in HEAVY[other]} | {SQUATTED} for pkg in HEAVY
}
# The core stays light: none of the heavy stacks, not even the numpy that onnxruntime brings.
FORBIDDEN[CORE] = set(ALL_HEAVY) | {SQUATTED}
# Why each forbidden name is forbidden, for the failure message.
REASONS = {dep: f"only {pkg} may depend on it" for pkg, deps in HEAVY.items() for dep in deps} | {
    "numpy": "only symphony-instruments may depend on it",
    SQUATTED: "it is an unrelated PyPI project (dependency confusion)",
}
UV = [find_uv_bin(), "--no-config"]  # ignore any uv.toml on the machine: CI runners have none


@dataclass
class Result:
    """What one venv holds after installing one distribution alone."""

    package: str
    distributions: int
    footprint_mb: float
    heavy: list[str]
    problems: list[str]

    @property
    def verdict(self) -> str:
        """Say PASS or FAIL for the table."""
        return "FAIL" if self.problems else "PASS"


def run(*args: str | Path) -> str:
    """Run a command quietly, returning its stdout; on failure show its stderr and exit."""
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(map(str, args))}\n{proc.stderr}")
    return proc.stdout


def find_squatted_declarations() -> list[str]:
    """List every requirement on `symphony-core` declared in a package's pyproject.toml."""
    problems = []
    for folder in FOLDERS.values():
        path = ROOT / "packages" / folder / "pyproject.toml"
        data = tomllib.loads(path.read_text())
        project = data.get("project", {})
        extras = project.get("optional-dependencies", {}).values()
        declared = [*project.get("dependencies", []), *(r for reqs in extras for r in reqs)]
        declared += data.get("build-system", {}).get("requires", [])
        for req in declared:
            if canonicalize_name(Requirement(req).name) == SQUATTED:
                problems.append(f"{path.relative_to(ROOT)} declares {req!r}: {SQUATTED} on PyPI is not ours")
    return problems


def build_wheel(package: str, outdir: Path) -> Path:
    """Build one distribution's wheel into outdir and return its path."""
    run(*UV, "build", "--quiet", "--wheel", "--out-dir", outdir, ROOT / "packages" / FOLDERS[package])
    return next(p for p in outdir.glob("*.whl") if parse_wheel_filename(p.name)[0] == package)


def measure_mb(venv: Path) -> float:
    """Add up the sizes of the files in the venv's site-packages, in MB."""
    site = next(
        p for pattern in ("lib/python*/site-packages", "Lib/site-packages") for p in venv.glob(pattern)
    )
    return round(sum(f.lstat().st_size for f in site.rglob("*") if f.is_file()) / 1e6, 1)


def check_package(package: str, wheels: dict[str, Path], venvs: Path) -> Result:
    """Install one distribution alone in a fresh venv and judge what it pulled."""
    venv = venvs / package
    run(*UV, "venv", "--quiet", "--python", sys.executable, venv)
    # The wheel dir lets siblings resolve locally; the core wheel is also named outright so that an upload
    # of `symphony-sdk-core` to PyPI with a higher version could never be chosen over it.
    wheel_dir = wheels[CORE].parent
    install: list[str | Path] = ["pip", "install", "--quiet", "--python", venv, "--find-links", wheel_dir]
    run(*UV, *install, wheels[package], wheels[CORE])
    listing = json.loads(run(*UV, "pip", "list", "--python", venv, "--format", "json"))
    installed = {canonicalize_name(d["name"]) for d in listing}
    problems = [f"{package} pulled {dep}: {REASONS[dep]}" for dep in sorted(installed & FORBIDDEN[package])]
    return Result(package, len(installed), measure_mb(venv), sorted(installed & ALL_HEAVY), problems)


def format_table(results: list[Result]) -> str:
    """Lay the results out as an aligned plain-text table."""
    header = ("package", "dists", "MB", "heavy deps present", "verdict")
    rows = [
        (r.package, str(r.distributions), f"{r.footprint_mb:.1f}", ", ".join(r.heavy) or "-", r.verdict)
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    ]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        description="Check that each distribution, installed alone, stays isolated."
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every printed figure to FILE")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the wheels and venvs in DIR")
    return parser.parse_args()


def main() -> int:
    """Run every check, print the table, and return the exit status."""
    args = parse_args()
    started = time.perf_counter()
    workdir = (
        nullcontext(str(args.keep))
        if args.keep
        else tempfile.TemporaryDirectory(prefix="symphony-isolation-")
    )
    with workdir as tmp:
        wheel_dir, venvs = Path(tmp, "wheels").resolve(), Path(tmp, "venvs").resolve()
        for folder in (wheel_dir, venvs):
            shutil.rmtree(folder, ignore_errors=True)  # nothing from an earlier --keep run may leak in
            folder.mkdir(parents=True)
        # Two workers: the machines running this have two cores, and uv is mostly waiting on the network.
        with ThreadPoolExecutor(max_workers=2) as pool:
            wheels = dict(zip(FOLDERS, pool.map(lambda p: build_wheel(p, wheel_dir), FOLDERS), strict=True))
            results = list(pool.map(lambda p: check_package(p, wheels, venvs), [*HEAVY, CORE]))
    problems = find_squatted_declarations() + [p for r in results for p in r.problems]
    seconds = round(time.perf_counter() - started, 1)
    print(format_table(results))
    for problem in problems:
        print(f"FAIL: {problem}")
    if any(r.problems for r in results):
        print("To see what brings one in: rerun with --keep DIR, then")
        print("  uv pip tree --python DIR/venvs/<package> --invert --package <dependency>")
    print(f"{'PASS' if not problems else 'FAIL'} in {seconds} s")
    if args.json:
        report = {"packages": [asdict(r) | {"verdict": r.verdict} for r in results], "problems": problems}
        args.json.write_text(
            json.dumps(report | {"passed": not problems, "seconds": seconds}, indent=2) + "\n"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
