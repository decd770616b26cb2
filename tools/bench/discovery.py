"""Discovery of N installed distributions: Symphony's scan and index against ``importlib.metadata``.

Generates N distributions into a temporary site folder in the layout an installer leaves (dist-info with
METADATA, RECORD, WHEEL, entry_points.txt; the package folder with ``__init__.py`` and ``symphony.toml``).
By default every distribution is an operator extension (the worst case for discovery: every manifest is
read and validated) with a console script as well; the scenario ``N@share`` makes only that share of them
extensions, the rest plain libraries. Every package's ``__init__.py`` raises when imported, so discovery
importing any of them would break the run; each child also reports any of them found in ``sys.modules``.

Each sample runs in a fresh interpreter whose discovery path is the site plus the standard library:
    baseline   importlib.metadata.entry_points(group="symphony.operators")   (what everyone pays)
    cold       discover(cache, path=..., rescan=True)   (scan, manifest validation, index write); also
               on a second site of the same distributions built as the core's build hook builds them,
               each with a recorded copy of its manifest (the scan reads it instead of the manifest)
    warm       discover(cache, path=...) with a valid index, in a fresh process and repeated in-process
    host       Host(home, path=...).discover() with a valid index, what hosts call (adds the host's
               claims, quarantines and one ExtensionInfo per extension); also in CPU time
"Scan" figures preload the modules the call needs; "first call" figures include importing them.
The page cache stays warm: "cold" means a fresh interpreter and no Symphony index, not a cold disk.

The import table runs ``python -X importtime`` per statement, also with the largest site on sys.path:
pydantic looks for its plugins with ``importlib.metadata.entry_points()`` when the first model is built,
so importing the manifest model (as a cold scan does) costs a scan of every installed distribution too.

    python tools/bench/discovery.py [--quick] [--json FILE] [--check] [--sizes 50,200,1000,1000@0.05]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    Report,
    Stat,
    child_environment,
    options,
    ratio,
    run_child,
    stdlib_path,
    write_distribution,
    write_symphony_packages,
)

PREFIX = "bench_ext_"
WARM_BUDGET_MS = 5.0
COLD_BUDGET = 1.5  # a cold scan of wheels built with the core's hook, against importlib.metadata's
COLD_FALLBACK_LIMIT = 2.5  # distributions built without it: each manifest found, parsed and validated
BUDGET_SIZE = 1000
KEYS = (
    "baseline",
    "baseline_first",
    "cold",
    "cold_first",
    "cold_recorded",
    "warm",
    "warm_first",
    "warm_in_process",
    "host",
    "host_cpu",
)

BASELINE = """
import os, sys, time
path, preload = sys.argv[1].split(os.pathsep), sys.argv[2] == "preload"
if preload:
    import importlib.metadata
start = time.perf_counter_ns()
import importlib.metadata
saved = sys.path[:]
sys.path[:] = path
found = len(importlib.metadata.entry_points(group="symphony.operators"))
elapsed = time.perf_counter_ns() - start
sys.path[:] = saved
import json
print(json.dumps({"ns": elapsed, "found": found}))
"""

# Children report whether the index file changed: a "warm" sample that had to scan is not warm.
INDEX_STAMPS = """
def index_stamps(folder):
    try:
        return sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(folder))
    except OSError:
        return []
"""

SYMPHONY = (
    INDEX_STAMPS
    + """
import os, sys, time
path, cache, rescan = sys.argv[1].split(os.pathsep), sys.argv[2], sys.argv[3] == "cold"
if sys.argv[4] == "preload":
    import pathlib
    import importlib_metadata
    import symphony_core._catalog._discovery, symphony_core._model._manifest
before = index_stamps(cache)
start = time.perf_counter_ns()
from pathlib import Path
from symphony_core import discover
catalog = discover(Path(cache), path=path, rescan=rescan)
elapsed = time.perf_counter_ns() - start
leaked = sorted(name for name in sys.modules if name.startswith(sys.argv[5]))
problems = [r.problem.message for r in catalog.records if r.problem is not None]
import json
result = {"ns": elapsed, "found": len(catalog.records), "problems": problems[:3], "leaked": leaked}
print(json.dumps({**result, "scanned": index_stamps(cache) != before}))
"""
)

WARM_IN_PROCESS = (
    INDEX_STAMPS
    + """
import os, sys, time
from pathlib import Path
from symphony_core import discover
path, cache, repeat = sys.argv[1].split(os.pathsep), Path(sys.argv[2]), int(sys.argv[3])
discover(cache, path=path)
before = index_stamps(cache)
samples = []
for _ in range(repeat):
    start = time.perf_counter_ns()
    catalog = discover(cache, path=path)
    samples.append(time.perf_counter_ns() - start)
leaked = sorted(name for name in sys.modules if name.startswith(sys.argv[4]))
import json
result = {"samples": samples, "found": len(catalog.records), "leaked": leaked}
print(json.dumps({**result, "scanned": index_stamps(cache) != before}))
"""
)

HOST = (
    INDEX_STAMPS
    + """
import os, sys, time
from symphony_core import Host
path, home = sys.argv[1].split(os.pathsep), sys.argv[2]
host = Host(home, path=path)
before = index_stamps(host.home.cache_dir)
start, cpu = time.perf_counter_ns(), time.process_time_ns()
infos = host.discover()
elapsed, cpu = time.perf_counter_ns() - start, time.process_time_ns() - cpu
scanned = index_stamps(host.home.cache_dir) != before
problems = [f"{i.id}: {i.problem.message}" for i in infos if i.problem is not None]
leaked = sorted(name for name in sys.modules if name.startswith(sys.argv[3]))
host.close()
import json
result = {"ns": elapsed, "cpu_ns": cpu, "found": len(infos), "problems": problems[:3], "leaked": leaked}
print(json.dumps({**result, "scanned": scanned}))
"""
)

# (key, statement, label, with the largest generated site on sys.path)
IMPORTS = (
    ("empty", "pass", "empty interpreter (baseline)", False),
    ("json", "import json", "import json (baseline)", False),
    ("metadata", "import importlib.metadata", "import importlib.metadata", False),
    ("core", "import symphony_core", "import symphony_core", False),
    ("discover", "from symphony_core import discover", "from symphony_core import discover", False),
    ("host", "from symphony_core import Host", "from symphony_core import Host", False),
    (
        "manifest",
        "from symphony_core import Manifest",
        "from symphony_core import Manifest (pydantic)",
        False,
    ),
    ("empty_site", "pass", "empty interpreter, site on sys.path (baseline)", True),
    ("host_site", "from symphony_core import Host", "from symphony_core import Host, site on sys.path", True),
    ("manifest_site", "from symphony_core import Manifest", "... import Manifest, site on sys.path", True),
)


@dataclass(frozen=True)
class Scenario:
    """``count`` installed distributions, the first ``share`` of which are extensions."""

    count: int
    share: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Scenario:
        count, _, share = text.partition("@")
        return cls(int(count), float(share) if share else 1.0)

    @property
    def extensions(self) -> int:
        return round(self.count * self.share)

    def __str__(self) -> str:
        return str(self.count) if self.share == 1.0 else f"{self.count} ({self.share:.0%} ext)"


def build_site(site: Path, scenario: Scenario, *, recorded: bool = False) -> None:
    """Install the scenario's distributions and the Symphony kit's metadata into ``site``; with
    ``recorded``, each extension's wheel as the core's build hook makes it, with a copy of its manifest."""
    write_symphony_packages(site)
    for n in range(scenario.count):
        package = f"{PREFIX}{n:04d}"
        name = f"bench-ext-{n:04d}"
        files = {
            f"{package}/__init__.py": f'raise ImportError("{package} was imported by discovery")\n',
            f"{package}/cli.py": "def main() -> None:\n    pass\n",
        }
        entry_points = {"console_scripts": {name: f"{package}.cli:main"}}
        requires: tuple[str, ...] = ()
        if n < scenario.extensions:
            ext_id = f"bench.ext-{n:04d}"
            files[f"{package}/symphony.toml"] = (
                f'id = "{ext_id}"\n'
                'kind = "operator"\n'
                f'name = "Benchmark operator {n:04d}"\n'
                'summary = "An operator generated by the discovery benchmark; importing it is an error."\n'
                'targets = "symphony-operators>=0.1,<0.2"\n'
                f'config = "{package}.config:Config"\n'
                "\n[[permissions]]\n"
                'type = "fs.read"\n'
                'paths = ["{data}/*.parquet"]\n'
                'reason = "reads its lookup tables"\n'
            )
            entry_points["symphony.operators"] = {ext_id: f"{package}:Operator"}
            requires = ("symphony-operators>=0.1,<0.2",)
        write_distribution(
            site,
            name,
            "1.0.0",
            files=files,
            entry_points=entry_points,
            requires=requires,
            recorded=recorded and n < scenario.extensions,
        )


def site_dir(root: Path, scenario: Scenario, *, recorded: bool = False) -> Path:
    return root / f"site-{scenario.count}-{scenario.extensions}{'-recorded' if recorded else ''}"


def measure(scenario: Scenario, repeat: int, root: Path, env: dict[str, str]) -> dict[str, Any]:
    """Every figure of one scenario; samples of the variants are interleaved, after one warm-up round."""
    tag = f"{scenario.count}-{scenario.extensions}"
    site, cache, home = site_dir(root, scenario), root / f"cache-{tag}", root / f"home-{tag}"
    build_site(site, scenario)
    recorded = site_dir(root, scenario, recorded=True)
    build_site(recorded, scenario, recorded=True)
    path = os.pathsep.join([str(site), *stdlib_path()])
    recorded_path = os.pathsep.join([str(recorded), *stdlib_path()])
    samples: dict[str, list[int]] = {key: [] for key in KEYS if key != "warm_in_process"}
    leaked: set[str] = set()
    problems: set[str] = set()
    scans: dict[str, int] = {"warm": 0, "warm_first": 0, "warm_in_process": 0, "host": 0}

    def check(result: dict[str, Any], what: str) -> int:
        leaked.update(result.get("leaked", ()))
        problems.update(result.get("problems", ()))
        if result.get("scanned") and what in scans:
            scans[what] += 1
        if result["found"] != scenario.extensions:
            raise RuntimeError(
                f"{what.replace('_first', '')} found {result['found']} extensions, expected {scenario.extensions}"
            )
        return int(result["ns"])

    for round_ in range(repeat + 1):
        for preload, suffix in (("preload", ""), ("bare", "_first")):
            sample = {
                "baseline": check(run_child(BASELINE, path, preload, env=env), "entry_points()"),
                "cold": check(
                    run_child(SYMPHONY, path, str(cache), "cold", preload, PREFIX, env=env), "discover"
                ),
                "warm": check(
                    run_child(SYMPHONY, path, str(cache), "warm", preload, PREFIX, env=env),
                    f"warm{suffix}" if round_ else "discover",
                ),
            }
            if preload == "preload":
                sample["cold_recorded"] = check(
                    run_child(
                        SYMPHONY, recorded_path, str(cache) + "-recorded", "cold", preload, PREFIX, env=env
                    ),
                    "discover (recorded)",
                )
            if round_:  # round 0 warms the bytecode cache, the Symphony index and the host's state file
                for key, ns in sample.items():
                    samples[key if key == "cold_recorded" else key + suffix].append(ns)
        host = run_child(HOST, path, str(home), PREFIX, env=env)
        check(host, "host" if round_ else "Host.discover()")
        if round_:
            samples["host"].append(host["ns"])
            samples["host_cpu"].append(host["cpu_ns"])
    in_process = run_child(WARM_IN_PROCESS, path, str(cache), str(max(20, repeat * 4)), PREFIX, env=env)
    leaked.update(in_process["leaked"])
    scans["warm_in_process"] += in_process["scanned"]
    figures: dict[str, Any] = {key: Stat.of_ns(values) for key, values in samples.items()}
    figures["index_scans"] = scans
    figures["warm_in_process"] = Stat.of_ns(in_process["samples"])
    figures["extension_modules_imported"] = sorted(leaked)
    figures["problems"] = sorted(problems)
    return figures


def import_times(repeat: int, env: dict[str, str], site: Path) -> dict[str, dict[str, Stat]]:
    """``-X importtime`` totals and process wall times per statement, samples interleaved."""
    site_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))}
    totals: dict[str, list[int]] = {key: [] for key, *_ in IMPORTS}
    walls: dict[str, list[int]] = {key: [] for key, *_ in IMPORTS}
    for round_ in range(repeat + 1):
        for key, statement, _, with_site in IMPORTS:
            child_env = site_env if with_site else env
            command = [sys.executable, "-X", "importtime", "-c", statement]
            done = subprocess.run(command, capture_output=True, text=True, check=True, env=child_env)
            start = time.perf_counter_ns()
            subprocess.run([sys.executable, "-c", statement], check=True, env=child_env)
            wall = time.perf_counter_ns() - start
            if round_:  # round 0 warms the bytecode cache
                totals[key].append(sum(_self_us(line) for line in done.stderr.splitlines()) * 1000)
                walls[key].append(wall)
    return {
        key: {"importtime": Stat.of_ns(totals[key]), "wall": Stat.of_ns(walls[key])} for key, *_ in IMPORTS
    }


def _self_us(line: str) -> int:
    # "import time:       123 |        456 | module"; the header line has no number
    head = line.removeprefix("import time:").split("|", 1)[0].strip()
    return int(head) if head.isdigit() else 0


def with_ratio(value: Stat, baseline: Stat) -> str:
    return f"{value} {ratio(value, baseline)}"


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        help="comma-separated scenarios N or N@share-of-extensions (default: 50,200,1000,1000@0.05;"
        " quick: 50,1000)",
    )
    args = parser.parse_args()
    default = "50,1000" if args.quick else "50,200,1000,1000@0.05"
    scenarios = [Scenario.parse(text) for text in (args.sizes or default).split(",")]
    repeat = args.repeat or (4 if args.quick else 11)
    report = Report("discovery", args)
    bytecode = "from source (--no-bytecode)" if args.no_bytecode else "cached"
    report.note(
        f"discovery: scenarios {', '.join(map(str, scenarios))}; {repeat} fresh processes per figure;"
        f" Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; bytecode {bytecode}"
    )

    results: dict[Scenario, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="symphony-bench-discovery-") as tmp:
        env = child_environment(Path(tmp), bytecode=not args.no_bytecode)
        for scenario in scenarios:
            results[scenario] = measure(scenario, repeat, Path(tmp), env)
            for key, value in results[scenario].items():
                report.figure(f"{scenario.count}@{scenario.share:g}.{key}", value)
        largest = max(scenarios, key=lambda scenario: (scenario.count, scenario.share))
        imports = import_times(repeat, env, site_dir(Path(tmp), largest))

    rows = []
    for scenario, figures in results.items():
        base = figures["baseline"]
        rows.append(
            (
                scenario,
                scenario.extensions,
                base,
                with_ratio(figures["cold"], base),
                with_ratio(figures["cold_recorded"], base),
                with_ratio(figures["warm"], base),
                with_ratio(figures["warm_in_process"], base),
                with_ratio(figures["host"], base),
                figures["host_cpu"],
                sum(figures["index_scans"].values()),
                len(figures["extension_modules_imported"]),
            )
        )
    report.table(
        "Discovery, ms median (min), modules preloaded; ratio = / baseline of the same row",
        (
            "N",
            "ext",
            "baseline entry_points()",
            "cold discover(rescan)",
            "same, manifests recorded",
            "warm discover, fresh proc",
            "warm discover, in-process",
            "warm Host.discover()",
            "same, CPU time",
            "warm scans",
            "ext imported",
        ),
        rows,
    )
    rows = []
    for scenario, figures in results.items():
        base = figures["baseline_first"]
        rows.append(
            (scenario, base, with_ratio(figures["cold_first"], base), with_ratio(figures["warm_first"], base))
        )
    report.table(
        "First call in a fresh interpreter, ms median (min), including the imports the call needs",
        ("N", "import importlib.metadata + entry_points()", "cold discover(rescan)", "warm discover"),
        rows,
    )
    for scenario, figures in results.items():
        if any(figures["index_scans"].values()):
            report.note(f"  N={scenario}: 'warm' samples that found no valid index: {figures['index_scans']}")
        if figures["problems"]:
            report.note(f"  N={scenario}: unexpected extension problems, e.g. {figures['problems'][:2]}")

    json_added = imports["json"]["importtime"].median - imports["empty"]["importtime"].median
    rows = []
    for key, _, label, with_site in IMPORTS:
        figures = imports[key]
        empty = imports["empty_site" if with_site else "empty"]
        added = figures["importtime"].median - empty["importtime"].median
        rows.append(
            (
                label,
                figures["importtime"],
                f"{added:.1f}",
                "-" if key.startswith("empty") or json_added <= 0 else f"{added / json_added:.1f}x",
                figures["wall"],
                ratio(figures["wall"], empty["wall"]),
            )
        )
        report.figure(f"import.{key}.importtime", figures["importtime"])
        report.figure(f"import.{key}.wall", figures["wall"])
    report.table(
        "Import cost, ms median (min): -X importtime sum of self times, and process wall time;"
        f" 'site' = the N={largest} site on PYTHONPATH; 'added' is over the empty interpreter of the same kind",
        ("statement", "importtime total", "added", "added / json's", "process wall", "wall / empty"),
        rows,
    )

    budgeted = results.get(Scenario(BUDGET_SIZE))
    if budgeted is not None:
        name = f"N={BUDGET_SIZE}, all extensions"
        warm, in_process = budgeted["warm"], budgeted["warm_in_process"]
        report.budget(f"warm discover, {name}, in-process median", in_process.median, WARM_BUDGET_MS, "ms")
        report.budget(f"warm discover, {name}, fresh process median", warm.median, WARM_BUDGET_MS, "ms")
        host, host_cpu = budgeted["host"], budgeted["host_cpu"]
        report.budget(
            f"warm Host.discover(), {name}, fresh process median", host.median, WARM_BUDGET_MS, "ms"
        )
        report.budget(
            f"warm Host.discover(), {name}, fresh process, CPU median", host_cpu.median, WARM_BUDGET_MS, "ms"
        )
        base = budgeted["baseline"].median
        cold = budgeted["cold_recorded"].median / base
        report.budget(
            f"cold discover / importlib.metadata scan, {name}, wheels with recorded manifests",
            cold,
            COLD_BUDGET,
            "x",
        )
        cold = budgeted["cold"].median / base
        report.budget(
            f"cold discover / importlib.metadata scan, {name}, manifests read (no recorded copy)",
            cold,
            COLD_FALLBACK_LIMIT,
            "x",
        )
    for scenario, figures in results.items():
        imported = len(figures["extension_modules_imported"])
        report.budget(f"extension modules imported by discovery, N={scenario}", imported, 0, "modules")
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
