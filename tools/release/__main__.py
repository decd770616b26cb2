"""The `release` command line: fragments, plan, apply, api, artifacts, bounds, readme, matrix.

Run from the repository root through hatch, e.g. `hatch run release:plan --json`. The compatibility cells
run under tox (`tox run -m compat`); `matrix` lists them, or runs them through tox and sums them up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from packaging.version import InvalidVersion, Version

from . import api, fragments
from .apply import apply_plan
from .artifacts import check_artifacts
from .bounds import find_unbounded
from .cells import REPORT, plan_cells
from .commands import clean_env, find_root, find_uv
from .errors import ReleaseError
from .plan import format_plan, format_rows, make_plan
from .readme import check_readmes
from .workspace import load_packages

# The tox `matrix` runs the cells with, through `uv tool run` (the same floor as tox.toml's `requires`).
TOX = "tox>=4.67"
TOX_UV = "tox-uv>=1.37"


def run_fragments(root: Path, args: argparse.Namespace) -> int:
    """Fail when a package's src/ changed since its base with no change fragment."""
    ok = True
    for package in load_packages(root):
        fragments.list_fragments(package)  # a misnamed fragment fails here, whatever changed
        base, reason = (
            (args.base, f"--base {args.base}")
            if args.base
            else fragments.resolve_base(root, package, args.against)
        )
        coverage = fragments.check_coverage(root, package, base, reason)
        print("\n".join(fragments.describe(coverage)))
        ok &= coverage.passed
    return 0 if ok else 1


def run_plan(root: Path, args: argparse.Namespace) -> int:
    """Print the release plan as tables, or as JSON."""
    plan = make_plan(root, parse_overrides(args.set))
    print(json.dumps(plan.as_json(), indent=2) if args.json else format_plan(plan))
    return 0


def run_apply(root: Path, args: argparse.Namespace) -> int:
    """Release what the plan holds: versions, changelogs, ranges, one commit, the tags."""
    plan, tags = apply_plan(root, parse_overrides(args.set))
    print(format_plan(plan))
    if tags:
        print(f"\ncommitted and tagged {', '.join(tags)}; push with: git push origin HEAD {' '.join(tags)}")
    return 0


def run_api(root: Path, args: argparse.Namespace) -> int:
    """Fail when a public API broke since the last tag with no breaking fragment."""
    packages = load_packages(root)
    core = next(p for p in packages if not p.public)
    checks = [api.check_api(root, package, core) for package in packages]
    for check in checks:
        print("\n".join(api.describe(check)))
    return 0 if all(c.passed for c in checks) else 1


def run_artifacts(root: Path, args: argparse.Namespace) -> int:
    """Build every project twice and check the artifacts."""
    with choose_workdir(args.keep, "symphony-artifacts-") as tmp:
        report = check_artifacts(root, Path(tmp))
    print("\n".join(f"built {name}" for name in report.files))
    for problem in report.problems:
        print(f"FAIL: {problem}")
    print("artifacts: " + ("FAIL" if report.problems else "PASS (twine check, contents, same bytes twice)"))
    return 1 if report.problems else 0


def run_readme(root: Path, args: argparse.Namespace) -> int:
    """Check each package as PyPI shows it: twine check --strict, and its README rendered."""
    with tempfile.TemporaryDirectory(prefix="symphony-readme-") as tmp:
        report = check_readmes(root, Path(tmp))
    print("\n".join(f"rendered the README of {name}" for name in report.checked))
    for problem in report.problems:
        print(f"FAIL: {problem}")
    print("readme: " + ("FAIL" if report.problems else "PASS (twine check --strict, rendered as on PyPI)"))
    return 1 if report.problems else 0


def run_bounds(root: Path, args: argparse.Namespace) -> int:
    """Fail when a declared dependency has no lower bound."""
    problems = find_unbounded(root)
    print("\n".join(f"FAIL: {p}" for p in problems) or "bounds: every declared dependency has a lower bound")
    return 1 if problems else 0


def run_matrix_command(root: Path, args: argparse.Namespace) -> int:
    """List the compatibility cells, or run them (all, or those named with --cell) with tox."""
    packages = load_packages(root)
    cells = plan_cells(root, packages)
    unknown = set(args.cell) - {c.name for c in cells}
    if unknown:
        raise ReleaseError(f"no cell {', '.join(sorted(unknown))}: one of {', '.join(c.name for c in cells)}")
    cells = [c for c in cells if not args.cell or c.name in args.cell]
    if args.list:
        listing = [(c.name, c.package_label, c.core_label, c.resolution, c.skip or "") for c in cells]
        print(
            "\n".join(format_rows([("cell", "package", "core", "resolution", "skipped because"), *listing]))
        )
        return 0
    problems = find_unbounded(root)
    if problems:
        print("\n".join(f"FAIL: {p}" for p in problems))
        return 1
    started = time.perf_counter()
    workdir = root / ".tox"
    with tempfile.TemporaryDirectory(prefix="symphony-matrix-") as tmp:
        results_file = Path(tmp) / "tox.json"
        tox = [*find_uv(), "tool", "run", "--from", TOX, "--with", TOX_UV, "tox"]
        names = ",".join(c.name for c in cells)
        command = [*tox, "run", "--workdir", str(workdir), "--result-json", str(results_file), "-e", names]
        subprocess.run(command, cwd=root, env=clean_env(), check=False)
        if not results_file.exists():
            raise ReleaseError(f"tox wrote no results: `{' '.join(command)}` failed before running a cell")
        envs = json.loads(results_file.read_text())["testenvs"]
    rows = []
    for cell in cells:
        outcome = envs.get(cell.name, {}).get("result", {})
        report = workdir / cell.name / REPORT
        resolved = json.loads(report.read_text())["resolved"] if report.exists() and not cell.skip else ""
        verdict = "SKIP" if outcome.get("skipped") else "PASS" if outcome.get("success") else "FAIL"
        seconds = f"{outcome.get('duration', 0.0):.1f}"
        rows.append(
            (
                cell.name,
                cell.package_label,
                cell.core_label,
                cell.resolution,
                verdict,
                seconds,
                cell.skip or resolved,
            )
        )
    header = ("cell", "package", "core", "resolution", "result", "s", "resolved")
    print("\n".join(format_rows([header, *rows])))
    failed = any(r[4] == "FAIL" for r in rows)
    print(f"matrix: {'FAIL' if failed else 'PASS'} in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([dict(zip(header, r, strict=True)) for r in rows], indent=2) + "\n")
    return 1 if failed else 0


def choose_workdir(keep: Path | None, prefix: str) -> nullcontext[str] | tempfile.TemporaryDirectory[str]:
    """Use the folder given with --keep, or a temporary one removed afterwards."""
    if keep is None:
        return tempfile.TemporaryDirectory(prefix=prefix)
    keep.mkdir(parents=True, exist_ok=True)
    return nullcontext(str(keep.resolve()))


def parse_overrides(pairs: list[str]) -> dict[str, Version]:
    """Read `--set distribution=version` pairs."""
    overrides = {}
    for pair in pairs:
        name, _, version = pair.partition("=")
        try:
            overrides[name.strip()] = Version(version)
        except InvalidVersion:
            raise ReleaseError(
                f"--set {pair}: expected distribution=version, e.g. symphony-sdk-core=1.0.0"
            ) from None
    return overrides


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="release", description="Release Symphony's distributions one by one."
    )
    parser.add_argument(
        "--root", type=Path, default=Path.cwd(), help="a folder inside the repository (default: here)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    cmd = commands.add_parser("fragments", help="fail on a src/ change with no change fragment")
    cmd.add_argument("--base", help="compare with this ref instead of each package's last release tag")
    cmd.add_argument("--against", help="branch to take a merge base with when untagged (origin/main, main)")
    cmd.set_defaults(handler=run_fragments)

    for name, handler, text in (
        ("plan", run_plan, "show the next version of each package and the knock-on effects"),
        ("apply", run_apply, "bump, build changelogs, move ranges, commit and tag"),
    ):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument(
            "--set", action="append", default=[], metavar="DIST=VERSION", help="choose a version by hand"
        )
        cmd.set_defaults(handler=handler)
        if name == "plan":
            cmd.add_argument("--json", action="store_true", help="print the plan as JSON")

    commands.add_parser("api", help="fail on an unannounced public API break").set_defaults(handler=run_api)
    commands.add_parser("bounds", help="fail on a dependency with no lower bound").set_defaults(
        handler=run_bounds
    )

    cmd = commands.add_parser("artifacts", help="build twice; twine check, wheel contents, same bytes")
    cmd.add_argument("--keep", type=Path, metavar="DIR", help="keep the built files in DIR")
    cmd.set_defaults(handler=run_artifacts)

    commands.add_parser(
        "readme", help="twine check --strict; each README rendered as on PyPI, with no relative link"
    ).set_defaults(handler=run_readme)

    cmd = commands.add_parser(
        "matrix", help="test packages against the oldest and newest core they admit (tox's `compat` cells)"
    )
    cmd.add_argument("--cell", action="append", default=[], help="run only this cell (repeatable)")
    cmd.add_argument("--list", action="store_true", help="list the cells and the core each names")
    cmd.add_argument("--json", type=Path, metavar="FILE", help="write the results to FILE")
    cmd.set_defaults(handler=run_matrix_command)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """Run one command, turning a ReleaseError into its message and exit status 2."""
    args = parse_args(argv)
    try:
        return int(args.handler(find_root(args.root), args))
    except ReleaseError as error:
        print(f"release {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
