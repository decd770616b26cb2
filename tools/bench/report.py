"""Record benchmark runs, generate the documentation's budget tables from them, and catch regressions.

    python tools/bench/report.py record [NAME ...] [--runs 3] [--quick]
        run each benchmark ``--runs`` times, one after the other, writing every run's ``--json`` to
        tools/bench/results/NAME/<date>-<commit>-<k>.json (commit the files you want published);
        ``NAME-loaded`` runs benchmark NAME with a busy process beside it (a Python loop that keeps one
        core busy for the whole run), for the figures under load
    python tools/bench/report.py docs [--check]
        regenerate every budget table in docs/benchmarks.md (between ``<!-- budgets:NAME -->`` and
        ``<!-- /budgets:NAME -->``) from the committed runs; ``--check`` fails when the page is stale
    python tools/bench/report.py check [NAME ...] [--tolerance 0.35]
        run each benchmark ``--quick`` and fail when a ratio budget (unit ``x``) is worse than the worst
        committed run of the same mode by more than the tolerance; a benchmark that fails is run once more
        and judged on its better run, so one noisy sample on a shared machine does not fail CI

A figure in the tables is the median over the committed runs with the range beside it; the verdict says
in how many runs the budget was met. Each table names the runs it comes from: mode, dates, commits,
the machine and its load average when each run started.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"
PAGE = ROOT / "docs" / "benchmarks.md"
CHECKED = ("discovery", "sandbox")
"""Benchmarks ``check`` runs by default: those with ratio budgets that finish quickly."""
LOADED = "-loaded"
"""The suffix of a benchmark's name that runs it under load: `BUSY` busy processes beside it."""
BUSY = 1
BUSY_LOOP = "while True: pass"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    record = commands.add_parser("record", help="run benchmarks and keep their results")
    record.add_argument("names", nargs="*", help="benchmarks (default: every one with results)")
    record.add_argument("--runs", type=int, default=3)
    record.add_argument("--quick", action="store_true")
    docs = commands.add_parser("docs", help="regenerate docs/benchmarks.md's budget tables")
    docs.add_argument("--check", action="store_true", help="fail if the page is not up to date")
    check = commands.add_parser("check", help="fail when a ratio budget regressed")
    check.add_argument("names", nargs="*", help=f"benchmarks (default: {', '.join(CHECKED)})")
    check.add_argument("--tolerance", type=float, default=0.35)
    args = parser.parse_args(argv)
    if args.command == "record":
        return _record(args.names or _recorded(), args.runs, args.quick)
    if args.command == "docs":
        return _docs(args.check)
    return _check(args.names or list(CHECKED), args.tolerance)


# Recording


def _recorded() -> list[str]:
    return sorted(folder.name for folder in RESULTS.iterdir() if folder.is_dir()) if RESULTS.is_dir() else []


def _run(name: str, out: Path, quick: bool) -> int:
    script = HERE / f"{name.removesuffix(LOADED)}.py"
    command = [sys.executable, str(script), "--json", str(out), *(["--quick"] if quick else [])]
    busy = BUSY if name.endswith(LOADED) else 0
    print(
        f"$ {' '.join(command[1:])}" + (f"  (with {busy} busy process beside it)" if busy else ""), flush=True
    )
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        env = os.environ | {"SYMPHONY_BENCH_BUSY": str(busy)}
        return subprocess.run(command, check=False, env=env).returncode
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _record(names: Sequence[str], runs: int, quick: bool) -> int:
    if not names:
        print("name the benchmarks to record (none has results yet)", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M")
    failed = []
    for run in range(1, runs + 1):
        for name in names:  # interleaved: drift on the machine hits every benchmark alike
            folder = RESULTS / name
            folder.mkdir(parents=True, exist_ok=True)
            if _run(name, folder / f"{stamp}-{run}.json", quick) != 0:
                failed.append(f"{name} (run {run})")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(
        f"recorded {runs} run(s) of {', '.join(names)} under {RESULTS.relative_to(ROOT)}; then: report.py docs"
    )
    return 0


def _runs(name: str) -> list[dict[str, Any]]:
    """The committed runs of one benchmark, oldest first."""
    runs = []
    for path in sorted((RESULTS / name).glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        document["file"] = path.name
        runs.append(document)
    return runs


# The documentation page

_BLOCK = re.compile(r"(<!-- budgets:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /budgets:(?P=name) -->)", re.S)


def _docs(check: bool) -> int:
    page = PAGE.read_text(encoding="utf-8")
    names = [match["name"] for match in _BLOCK.finditer(page)]
    missing = [name for name in names if not _runs(name)]
    if missing:
        print(
            f"no committed results for {', '.join(missing)} (report.py record {' '.join(missing)})",
            file=sys.stderr,
        )
        return 1
    updated = _BLOCK.sub(lambda m: m[1] + table(_runs(m["name"])) + m[4], page)
    if check:
        if updated != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run tools/bench/report.py docs", file=sys.stderr)
            return 1
        print(f"{PAGE.relative_to(ROOT)}: every budget table matches the committed results")
        return 0
    PAGE.write_text(updated, encoding="utf-8")
    print(f"{PAGE.relative_to(ROOT)}: {len(names)} budget table(s) regenerated")
    return 0


def table(runs: list[dict[str, Any]]) -> str:
    """The Markdown table of every budget over ``runs`` (of the latest mode recorded), and its sources."""
    mode = runs[-1].get("mode", "full")
    runs = [run for run in runs if run.get("mode", "full") == mode]
    order: list[str] = []
    by_budget: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        for budget in run["budgets"]:
            if budget["budget"] not in by_budget:
                order.append(budget["budget"])
            by_budget.setdefault(budget["budget"], []).append(budget)
    lines = ["| budget | measured: median (range) | limit | verdict |", "|---|---|---|---|"]
    for name in order:
        samples = by_budget[name]
        values = [sample["value"] for sample in samples]
        unit = samples[-1]["unit"]
        sign = "≥" if samples[-1].get("at_least") else "≤"
        met = sum(1 for sample in samples if sample["ok"])
        if met == len(samples):
            verdict = "met" if len(samples) == 1 else f"met in all {len(samples)} runs"
        elif met == 0:
            verdict = "**missed**" if len(samples) == 1 else f"**missed in all {len(samples)} runs**"
        else:
            verdict = f"**met in {met} of {len(samples)} runs**"
        spread = "" if len(values) == 1 else f" ({_number(min(values))}-{_number(max(values))})"
        lines.append(
            f"| {name} | {_number(statistics.median(values))}{spread} {unit} | {sign} {_number(samples[-1]['limit'])} "
            f"{unit} | {verdict} |"
        )
    machines = sorted({str((run.get("machine") or {}).get("cpu", "an unnamed CPU")) for run in runs})
    lines.append("")
    lines.append(
        f"From {len(runs)} {mode} run(s) on {', '.join(machines)}: "
        + "; ".join(_source(run) for run in runs)
        + "."
    )
    return "\n".join(lines) + "\n"


def _source(run: dict[str, Any]) -> str:
    machine = run.get("machine") or {}
    load = machine.get("load_at_start")
    date = str(run.get("date") or "undated")[:16].replace("T", " ")
    where = f"{machine.get('cpus', run.get('cpus', '?'))} CPUs"
    busy = machine.get("busy_processes") or 0
    return (
        f"{date} UTC, commit {run.get('commit') or 'unknown'}, {where}"
        + ("" if load is None else f", load {load:.1f}")
        + (f", {busy} busy process{'es' if busy > 1 else ''} beside it" if busy else "")
    )


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


# Regressions


def regressions(measured: dict[str, Any], committed: list[dict[str, Any]], tolerance: float) -> list[str]:
    """Each ratio budget of ``measured`` worse than the worst committed run of its mode, beyond tolerance."""
    mode = measured.get("mode", "full")
    worst: dict[str, float] = {}
    for run in committed:
        if run.get("mode", "full") != mode:
            continue
        for budget in run["budgets"]:
            if budget["unit"] != "x":
                continue
            name, value = budget["budget"], budget["value"]
            if name not in worst:
                worst[name] = value
            else:
                worst[name] = min(worst[name], value) if budget.get("at_least") else max(worst[name], value)
    found = []
    for budget in measured["budgets"]:
        name = budget["budget"]
        if name not in worst:
            continue
        value, before = budget["value"], worst[name]
        if budget.get("at_least"):
            regressed = value < before / (1 + tolerance)
        else:
            regressed = value > before * (1 + tolerance)
        if regressed:
            found.append(
                f"{name}: {_number(value)}x against {_number(before)}x at worst in the committed runs"
            )
    return found


def _check(names: Sequence[str], tolerance: float) -> int:
    failed = []
    with tempfile.TemporaryDirectory(prefix="symphony-bench-") as scratch:
        for name in names:
            committed = _runs(name)
            if not any(run.get("mode") == "quick" for run in committed):
                print(f"{name}: no committed quick run to compare with (report.py record {name} --quick)")
                failed.append(name)
                continue
            found: list[str] = []
            for attempt in (1, 2):
                out = Path(scratch) / f"{name}-{attempt}.json"
                if _run(name, out, quick=True) != 0:
                    found = [f"the benchmark itself failed (attempt {attempt})"]
                    continue
                found = regressions(json.loads(out.read_text(encoding="utf-8")), committed, tolerance)
                if not found:
                    break
                print(f"{name}: a ratio looks worse ({'; '.join(found)}); measuring once more", flush=True)
            if found:
                failed.append(name)
                print(f"{name}: REGRESSED: {'; '.join(found)}", file=sys.stderr)
            else:
                print(f"{name}: every ratio budget within {tolerance:.0%} of the committed runs")
    if failed:
        print(f"ratio budgets regressed in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
