"""The harness the benchmarks share: options, fresh-process runs, statistics, tables, budgets, fake sites.

A benchmark measures each figure beside its baseline in the same run, prints the ratio, and never fails
because the machine is slow: a budget only turns into a non-zero exit status when ``--check`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import symphony_core


def options(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; a benchmark may add its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions (under a minute)")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write every printed figure to FILE")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a budget is violated")
    parser.add_argument(
        "--repeat", type=int, help="fresh processes per figure (each benchmark has its defaults)"
    )
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="let children compile every module from source, as PYTHONDONTWRITEBYTECODE=1 without compiled"
        " installs does (default: children share a private bytecode cache, like an install that compiles)",
    )
    return parser


def child_environment(root: Path, *, bytecode: bool) -> dict[str, str]:
    """The environment of measured children.

    Installers usually compile bytecode; an environment with ``PYTHONDONTWRITEBYTECODE=1`` and installs
    that did not (uv's default) compiles every module on every start, which would swamp import figures.
    Children therefore cache bytecode under ``root`` unless ``bytecode`` is false.
    """
    env = dict(os.environ)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
    return env


@dataclass(frozen=True)
class Stat:
    """The samples of one figure, in milliseconds."""

    samples: tuple[float, ...]

    @classmethod
    def of_ns(cls, samples_ns: Iterable[int]) -> Stat:
        return cls(tuple(ns / 1e6 for ns in samples_ns))

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    def as_json(self) -> dict[str, Any]:
        return {
            "median_ms": self.median,
            "min_ms": self.min,
            "n": len(self.samples),
            "samples_ms": self.samples,
        }

    def __str__(self) -> str:
        return f"{_ms(self.median)} (min {_ms(self.min)})"


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ratio(value: Stat | float, baseline: Stat | float) -> str:
    """``value / baseline`` of the medians, printed as ``0.42x``."""
    a = value.median if isinstance(value, Stat) else value
    b = baseline.median if isinstance(baseline, Stat) else baseline
    return f"{a / b:.2f}x" if b else "n/a"


@dataclass
class Report:
    """Collects tables, figures and budget verdicts; prints as it goes and writes ``--json`` at the end."""

    benchmark: str
    args: argparse.Namespace
    figures: dict[str, Any] = field(default_factory=dict)
    budgets: list[dict[str, Any]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def figure(self, key: str, value: Any) -> None:
        """Keep a figure for the JSON output."""
        self.figures[key] = value.as_json() if isinstance(value, Stat) else value

    def table(self, title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Print an aligned table and keep it for the JSON output."""
        cells = [[str(cell) for cell in header]] + [[str(cell) for cell in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        print(f"\n{title}")
        for n, row in enumerate(cells):
            print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
            if n == 0:
                print("  " + "  ".join("-" * width for width in widths))
        self.tables.append({"title": title, "header": cells[0], "rows": cells[1:]})

    def note(self, text: str) -> None:
        print(text)

    def budget(
        self,
        name: str,
        value: float,
        limit: float,
        unit: str,
        *,
        at_least: bool = False,
        ok: bool | None = None,
    ) -> None:
        """Record a budget verdict: ``value`` must be at most ``limit`` (at least, with ``at_least``),
        unless ``ok`` says otherwise."""
        if ok is None:
            ok = value >= limit if at_least else value <= limit
        self.budgets.append(
            {"budget": name, "value": value, "limit": limit, "unit": unit, "at_least": at_least, "ok": ok}
        )

    def finish(self) -> int:
        """Print the budget verdicts, write the JSON file, and return the exit status."""
        elapsed = time.perf_counter() - self.started
        rows = [
            (
                b["budget"],
                f"{b['value']:.3f} {b['unit']}",
                f"{b['limit']:g} {b['unit']}",
                "ok" if b["ok"] else "OVER",
            )
            for b in self.budgets
        ]
        self.table("Budgets (docs/architecture.md)", ("budget", "measured", "limit", "verdict"), rows)
        print(f"\n{self.benchmark}: {'quick' if self.args.quick else 'full'} run in {elapsed:.1f} s")
        violated = [b for b in self.budgets if not b["ok"]]
        if self.args.json is not None:
            document = {
                "benchmark": self.benchmark,
                "mode": "quick" if self.args.quick else "full",
                **run_context(),
                "elapsed_s": elapsed,
                "figures": self.figures,
                "tables": self.tables,
                "budgets": self.budgets,
            }
            self.args.json.parent.mkdir(parents=True, exist_ok=True)
            self.args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            print(f"figures written to {self.args.json}")
        if violated and self.args.check:
            print(f"{len(violated)} budget(s) violated", file=sys.stderr)
            return 1
        return 0


def run_context() -> dict[str, Any]:
    """Where and when a run was made: the machine, its load, the date and the commit measured."""
    import platform
    from datetime import datetime, timezone

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    root = Path(__file__).resolve().parents[2]
    git = ["git", "-C", str(root)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    )
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") or None,
        "python": sys.version,
        "platform": sys.platform,
        "machine": {
            "cpu": cpu,
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "load_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            # busy processes `report.py record NAME-loaded` runs beside the benchmark (a Python loop each)
            "busy_processes": int(os.environ.get("SYMPHONY_BENCH_BUSY") or 0),
        },
        "cpus": os.cpu_count(),
    }


PROCESS_TREE = r"""
import os
from pathlib import Path


def descendants():
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
"""
"""Child code defining ``descendants()``: the pids of every process below the child (from /proc), so a
child can count the workers and runners it started."""


def run_child(code: str, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``code`` in a fresh interpreter; it must print one JSON document as its last stdout line."""
    command = [sys.executable, "-c", code, *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stdlib_path() -> list[str]:
    """The interpreter's own library folders: what a site needs beside it to be a whole ``sys.path``."""
    paths = sysconfig.get_paths()
    folders = [paths["stdlib"], paths["platstdlib"], os.path.join(paths["platstdlib"], "lib-dynload")]
    zipped = os.path.join(sys.base_prefix, "lib", f"python{sys.version_info[0]}{sys.version_info[1]}.zip")
    return list(dict.fromkeys([zipped, *folders]))


def write_distribution(site: Path, name: str, version: str, **layout: Any) -> Path:
    """`symphony_core.write_distribution`, declaring the ``Requires-Python`` real distributions declare
    (discovery reads it)."""
    return symphony_core.write_distribution(site, name, version, requires_python=">=3.10", **layout)


def write_symphony_packages(site: Path) -> None:
    """Metadata of the operator kit and the core, so compatibility checks have something to check."""
    write_distribution(
        site,
        "symphony-operators",
        "0.1.0",
        files={},
        entry_points={},
        requires=("polars>=1.0", "symphony-sdk-core>=0.1,<0.2"),
    )
    write_distribution(
        site,
        "symphony-sdk-core",
        "0.1.0",
        files={},
        entry_points={"console_scripts": {"symphony": "symphony_core._cli._commands:main"}},
        requires=("msgspec>=0.18", "pydantic>=2.7"),
    )
