"""Host overhead: loading and activating one extension through ``Host`` against doing it by hand.

Operator extensions are installed into a temporary site folder (dist-info with entry point, package
with ``symphony.toml``), which each child puts first on ``sys.path``:
    bench.work   ``activate`` does a fixed amount of pure-Python CPU work (~20-50 ms here, see the table)
    bench.noop   ``activate`` does nothing: the trivial extension
    bench.first  does nothing either; started first when measuring a start that is not the process's first
Both derive from ``symphony_core.Extension`` rather than the operator kit's ``Operator``, because the kit
only adds importing polars, which would count as the extension's own work and hide the host's cost.

The host imports an extension's kit (here ``symphony_operators``, which imports polars) as itself before
the extension, and a real operator's module imports it anyway; so the baseline imports it too, and the
extension's own work is the kit's import plus its own. After another start the kit is already imported:
that start is judged against the extension's work without it.

Each sample is a fresh interpreter (``logging`` and ``pathlib`` preloaded in both, as any host has them):
    baseline   import the kit of the extension's kind, import the module, create the class, call
               ``activate(context)``
    host       ``from symphony_core import Host``; ``Host(home, isolation="guard")`` (the in-process
               tier, which this measures); ``host.discover()`` (valid index, as every start after the
               first); ``host.start(id)``; each step timed
    after      the same, but ``host.start("bench.first")`` before the timed ``host.start(id)``; also
               with ``Host(home, isolation="none")``, to show what the in-process guard costs
    kit        the same as host, but the kit imported before anything is timed, as the baseline's
               module figure has it: the first start's own cost, without the kit's import (hundreds of
               milliseconds, whose noise would swamp the few the host adds)
    isolated   ``Host(home, isolation="isolated")``, ``host.discover()``, then ``host.start`` of a trivial
               motif (whose kit puts no front in the host) twice: the first isolated start in the process
               and one after it; the host process's own CPU (its workers' is theirs) and the wall time,
               which includes a cold worker's start. Again in a process whose host called
               ``host.prepare()`` after discovery (what a serving host does as it gets ready): that call's
               own cost, and the first isolated start after it
The per-extension overhead is ``host.start(id)`` minus the baseline, both as the first start in the
process (which pays the host's lazy imports) and after another start. The percentage budgets are judged
within each start instead ("paired"): the extension's ``activate`` measures its own CPU on its thread,
and the rest of that ``host.start``'s CPU is the host's share, so the ±5 ms by which the work moves from
process to process does not enter the host's figure (the table of baselines still shows the
difference of medians); the total adds importing the
host, opening its state and discovery, which a host pays once however many extensions it starts.
Every step is timed in wall time and in the process's CPU time (all its threads); the budgets are judged
on CPU time, which other work on a shared machine moves much less. "Host total - kit import" subtracts the
kit's import as the baseline times it; in the host the kit finds a few modules the host imported already
(typing_extensions, for one), so that figure leaves those out.

    python tools/bench/host_overhead.py [--quick] [--json FILE] [--check] [--work ITERATIONS]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import Report, Stat, child_environment, options, ratio, run_child, write_distribution

OVERHEAD_BUDGET = 0.05
TRIVIAL_BUDGET_MS = 100.0
FIRST_START_BUDGET_MS = 10.0
TRIVIAL_PATH_BUDGET_MS = 50.0
KIT = "symphony_operators"
WORK_ITERATIONS = 400_000

EXTENSION = '''"""A benchmark extension: {doc}"""

import time

from symphony_core import Extension

OWN_CPU_NS = 0
"""CPU time ``activate`` took on its own thread: the extension's own work, as it measures it itself."""


def spin(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total = (total + i * i) % 1_000_003
    return total


class Bench(Extension):
    def activate(self, context):
        global OWN_CPU_NS
        started = time.thread_time_ns()
        super().activate(context)
        self.result = spin({iterations})
        OWN_CPU_NS = time.thread_time_ns() - started
'''

ISOLATED_EXTENSION = '''"""A benchmark extension for the isolated tier: activate does nothing."""

from symphony_core import Extension


class Bench(Extension):
    pass
'''

ISOLATED_MANIFEST = """id = "{ext_id}"
kind = "motif"
name = "Benchmark {name}"
summary = "An extension generated by the host overhead benchmark, run in isolated workers."
targets = "symphony-motifs>=0.1,<0.2"
"""
ISOLATED = (
    ("iso_first", "bench.iso-first", "bench_iso_first"),
    ("iso_noop", "bench.iso-noop", "bench_iso_noop"),
)
"""Trivial motifs: a kind whose kit puts no front of its own in the host, so what the host does for an
isolated start is the core's alone (its worker pool, the worker's spawn, its grants and spec)."""

# argv: site, home, first id, measured id. The host's own CPU (this process, every thread) for the first
# isolated start in the process and for one after it; the workers' CPU is theirs, not counted.
HOST_ISOLATED = """
import sys, time
site, home, first, measured, prepared = *sys.argv[1:5], sys.argv[5] == "prepared"
sys.path[:] = [site, *(entry for entry in sys.path if entry)]
from symphony_core import Host
host = Host(home, isolation="isolated")
host.discover()
clock, cpu = time.perf_counter_ns, time.process_time_ns
tp, cp = clock(), cpu()
if prepared:
    assert host.prepare()
t0, c0 = clock(), cpu()
host.start(first)
t1, c1 = clock(), cpu()
host.start(measured)
t2, c2 = clock(), cpu()
states = [host.inspect(ext).state.value for ext in (first, measured)]
host.close()
import json
print(json.dumps({"prepare": t0 - tp, "prepare_cpu": c0 - cp, "first": t1 - t0, "first_cpu": c1 - c0,
                  "after": t2 - t1, "after_cpu": c2 - c1, "states": states}))
"""

MANIFEST = """id = "{ext_id}"
kind = "operator"
name = "Benchmark {name}"
summary = "An extension generated by the host overhead benchmark."
targets = "symphony-operators>=0.1,<0.2"
"""

# argv: site, home, extension id, module, kit. "core" is importing what the extension's module imports
# from Symphony (a host has it already), "kit" importing its kind's kit (as the host does first),
# "module" its own import, creation and activation; "own" is kit + module. Each also as CPU time.
BASELINE = """
import sys, time, logging, pathlib
site, home, ext_id, module_name, kit = sys.argv[1:6]
sys.path[:] = [site, *(entry for entry in sys.path if entry)]
clock, cpu = time.perf_counter_ns, time.process_time_ns
t0, c0 = clock(), cpu()
from symphony_core import Context, Extension
t1, c1 = clock(), cpu()
import dataclasses, importlib
try:
    importlib.import_module(kit)
except Exception:
    pass
tk, ck = clock(), cpu()
module = importlib.import_module(module_name)
instance = module.Bench()
root = pathlib.Path(home, "extensions", ext_id)
values = {
    "id": ext_id, "version": "1.0.0", "manifest": {}, "config": None, "data_dir": root / "data",
    "cache_dir": root / "cache", "logger": logging.getLogger(f"symphony.ext.{ext_id}"),
}
# by name, and only the fields Context has: it grows now and then
context = Context(**{f.name: values[f.name] for f in dataclasses.fields(Context) if f.name in values})
instance.activate(context)
t2, c2 = clock(), cpu()
import json
wall = {"core": t1 - t0, "kit": tk - t1, "module": t2 - tk, "own": t2 - t1, "total": t2 - t0}
cpus = {"core": c1 - c0, "kit": ck - c1, "module": c2 - ck, "own": c2 - c1, "total": c2 - c0}
print(json.dumps({**wall, **{key + "_cpu": value for key, value in cpus.items()}}))
"""

# argv: site, home, extension id, mode. Mode "after" starts another (trivial) extension first, so the
# timed start no longer pays what the host does once per process (lazy imports, its event loop...);
# "after_unguarded" does the same with the in-process guard off (Host(isolation="none")); "kit" imports
# the extension's kit first.
HOST = """
import os, sys, time, logging, pathlib, importlib, importlib.abc, importlib.util
def index_stamps(folder):
    try:
        return sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(folder))
    except OSError:
        return []

site, home, ext_id, mode = sys.argv[1:5]
sys.path[:] = [site, *(entry for entry in sys.path if entry)]
clock, cpu = time.perf_counter_ns, time.process_time_ns
kit_cpu = []


class TimeKit(importlib.abc.MetaPathFinder):
    # times the kit's import where the host does it (its module and all it imports), once
    def find_spec(self, name, path, target=None):
        if name != sys.argv[5]:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            started = cpu()
            try:
                run(module)
            finally:
                kit_cpu.append(cpu() - started)

        spec.loader.exec_module = exec_module
        return spec


if mode == "kit":
    importlib.import_module(sys.argv[5])
elif mode == "first":
    sys.meta_path.insert(0, TimeKit())
t0, c0 = clock(), cpu()
from symphony_core import Host
t1, c1 = clock(), cpu()
host = Host(home, isolation="none" if mode == "after_unguarded" else "guard")
index = index_stamps(host.home.cache_dir)
t2, c2 = clock(), cpu()
host.discover()
t3, c3 = clock(), cpu()
if mode.startswith("after"):
    host.start(sys.argv[5])
    t3, c3 = clock(), cpu()
host.start(ext_id)
t4, c4 = clock(), cpu()
state = host.inspect(ext_id).state.value
own = getattr(sys.modules.get(ext_id.replace(".", "_")), "OWN_CPU_NS", None)
# the extension's own import and creation, as the baseline counts them: the same module under another name
c5 = cpu()
importlib.import_module(ext_id.replace(".", "_") + "_twin").Bench()
twin = cpu() - c5
scanned = index != index_stamps(host.home.cache_dir)
host.close()
import json
steps = {"import": t1 - t0, "init": t2 - t1, "discover": t3 - t2, "start": t4 - t3, "total": t4 - t0}
cpus = {"import": c1 - c0, "init": c2 - c1, "discover": c3 - c2, "start": c4 - c3, "total": c4 - c0}
cpus = {key + "_cpu": value for key, value in cpus.items()}
print(json.dumps({**steps, **cpus, "own_cpu": own, "twin_cpu": twin, "kit_in_host_cpu": sum(kit_cpu),
                  "state": state, "scanned": scanned}))
"""

# (variant, extension id, package, measured)
EXTENSIONS = (
    ("work", "bench.work", "bench_work", True),
    ("noop", "bench.noop", "bench_noop", True),
    ("first", "bench.first", "bench_first", False),
)
MEASURED = [(variant, ext_id, package) for variant, ext_id, package, measured in EXTENSIONS if measured]
FIRST_ID = "bench.first"
STEPS = ("import", "init", "discover", "start", "total")
TIMED = ("kit", "module", "own", "by_hand", *STEPS, "start_kit", "start_after", "start_after_unguarded")
KEYS = (*TIMED, *(key + "_cpu" for key in TIMED))
PAIRED = (
    "activate_after_cpu",
    "import_after_cpu",
    "host_after_cpu",
    "activate_kit_cpu",
    "import_kit_cpu",
    "host_kit_cpu",
    "kit_in_host_cpu",
    "beyond_kit_cpu",
)
"""Within one process: the CPU the extension's ``activate`` measured on its own thread, what importing and
creating the same module under another name took right after the start (its own import, as the baseline
counts it), and the rest of the start's CPU (the process's, every thread): the host's share, with no other
process's noise. ``beyond_kit_cpu``: import..started less the kit's import where the host made it."""


def build_site(site: Path, iterations: int) -> None:
    """Install the benchmark extensions into ``site``."""
    for variant, ext_id, package in ISOLATED:
        write_distribution(
            site,
            f"bench-{variant.replace('_', '-')}",
            "1.0.0",
            files={
                f"{package}/__init__.py": ISOLATED_EXTENSION,
                f"{package}/symphony.toml": ISOLATED_MANIFEST.format(ext_id=ext_id, name=variant),
            },
            entry_points={"symphony.motifs": {ext_id: f"{package}:Bench"}},
            requires=("symphony-motifs>=0.1,<0.2",),
        )
    for variant, ext_id, package, _ in EXTENSIONS:
        work = iterations if variant == "work" else 0
        doc = f"activate spins {work} iterations." if work else "activate does nothing."
        code = EXTENSION.format(doc=doc, iterations=work)
        write_distribution(
            site,
            f"bench-{variant}",
            "1.0.0",
            files={
                f"{package}/__init__.py": code,
                f"{package}/symphony.toml": MANIFEST.format(ext_id=ext_id, name=variant),
                f"{package}_twin/__init__.py": code,  # its own import, timed beside the host's start
            },
            entry_points={"symphony.operators": {ext_id: f"{package}:Bench"}},
            requires=("symphony-operators>=0.1,<0.2",),
        )


def measure(repeat: int, root: Path, env: dict[str, str]) -> tuple[dict[str, dict[str, Stat]], int]:
    """Baseline and host samples of the measured extensions, interleaved, after one warm-up round.

    Also returns how many host samples found no valid discovery index (the workspace's editable
    source folders are on ``sys.path``, so someone adding a file there invalidates it).
    """
    site, home = str(root / "site"), str(root / "home")
    scans = 0
    samples: dict[str, dict[str, list[int]]] = {
        variant: {key: [] for key in (*KEYS, *PAIRED)} for variant, *_ in MEASURED
    }
    isolated: dict[str, list[int]] = {
        key: []
        for key in (
            "first",
            "first_cpu",
            "after",
            "after_cpu",
            "prepare",
            "prepare_cpu",
            "ready",
            "ready_cpu",
        )
    }
    for round_ in range(repeat + 1):
        (_, first_id, _), (_, measured_id, _) = ISOLATED
        alone = run_child(HOST_ISOLATED, site, home, first_id, measured_id, "cold", env=env)
        prepared = run_child(HOST_ISOLATED, site, home, first_id, measured_id, "prepared", env=env)
        for states in (alone["states"], prepared["states"]):
            if states != ["active", "active"]:
                raise RuntimeError(f"the isolated extensions ended in states {states}, expected active")
        if round_:
            for key in ("first", "first_cpu", "after", "after_cpu"):
                isolated[key].append(alone[key])
            for key in ("prepare", "prepare_cpu"):
                isolated[key].append(prepared[key])
            isolated["ready"].append(prepared["first"])
            isolated["ready_cpu"].append(prepared["first_cpu"])
        for variant, ext_id, package in MEASURED:
            base = run_child(BASELINE, site, home, ext_id, package, KIT, env=env)
            first = run_child(HOST, site, home, ext_id, "first", KIT, env=env)
            after = run_child(HOST, site, home, ext_id, "after", FIRST_ID, env=env)
            unguarded = run_child(HOST, site, home, ext_id, "after_unguarded", FIRST_ID, env=env)
            kit = run_child(HOST, site, home, ext_id, "kit", KIT, env=env)
            for host in (first, after, unguarded, kit):
                if host["state"] != "active":
                    raise RuntimeError(f"{ext_id} ended in state {host['state']}, expected active")
            if not round_:  # round 0 warms the bytecode cache, the discovery index and the host's state
                continue
            scans += first["scanned"] + after["scanned"] + unguarded["scanned"] + kit["scanned"]
            taken = samples[variant]
            for cpu in ("", "_cpu"):
                for key in ("kit", "module", "own"):
                    taken[key + cpu].append(base[key + cpu])
                taken["by_hand" + cpu].append(base["total" + cpu])
                for step in STEPS:
                    taken[step + cpu].append(first[step + cpu])
                taken["start_kit" + cpu].append(kit["start" + cpu])
                taken["start_after" + cpu].append(after["start" + cpu])
                taken["start_after_unguarded" + cpu].append(unguarded["start" + cpu])
            for key, host in (("after", after), ("kit", kit)):
                taken[f"activate_{key}_cpu"].append(host["own_cpu"])
                taken[f"import_{key}_cpu"].append(host["twin_cpu"])
                taken[f"host_{key}_cpu"].append(host["start_cpu"] - host["own_cpu"] - host["twin_cpu"])
            taken["kit_in_host_cpu"].append(first["kit_in_host_cpu"])
            taken["beyond_kit_cpu"].append(first["total_cpu"] - first["kit_in_host_cpu"])
    results = {
        variant: {key: Stat.of_ns(values) for key, values in figures.items()}
        for variant, figures in samples.items()
    }
    results["isolated"] = {key: Stat.of_ns(values) for key, values in isolated.items()}
    return results, scans


def overhead(value: Stat, baseline: Stat) -> tuple[float, float]:
    """The extra milliseconds of the medians, and that as a fraction of the baseline."""
    extra = value.median - baseline.median
    return extra, extra / baseline.median


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument(
        "--work",
        type=int,
        default=WORK_ITERATIONS,
        help=f"loop iterations of the working extension's activate (default {WORK_ITERATIONS:,})",
    )
    args = parser.parse_args()
    repeat = args.repeat or (5 if args.quick else 15)
    report = Report("host_overhead", args)
    bytecode = "from source (--no-bytecode)" if args.no_bytecode else "cached"
    report.note(
        f"host_overhead: {repeat} fresh processes per figure; work = {args.work:,} iterations;"
        f" Python {sys.version.split()[0]}; bytecode {bytecode}"
    )
    with tempfile.TemporaryDirectory(prefix="symphony-bench-host-") as tmp:
        build_site(Path(tmp, "site"), args.work)
        env = child_environment(Path(tmp), bytecode=not args.no_bytecode)
        results, scans = measure(repeat, Path(tmp), env)
    report.figure("host_samples_without_valid_index", scans)
    if scans:
        report.note(f"{scans} host sample(s) found no valid discovery index and scanned")

    def cells(value: Stat, baseline: Stat, key: str) -> tuple[str, str]:
        extra, fraction = overhead(value, baseline)
        report.figure(f"{key}_overhead_ms", extra)
        report.figure(f"{key}_overhead_fraction", fraction)
        return f"{value} {ratio(value, baseline)}", f"{extra:+.1f} ms ({fraction:+.1%})"

    for variant, _, _ in MEASURED:
        for key, value in results[variant].items():
            report.figure(f"{variant}.{key}", value)
    for cpu, clock in (("", "wall"), ("_cpu", "CPU")):
        rows = []
        for variant, ext_id, _ in MEASURED:
            figures = results[variant]
            own, module = figures["own" + cpu], figures["module" + cpu]
            row: list[object] = [ext_id, figures["kit" + cpu], module, own]
            row += cells(figures["start" + cpu], own, f"{variant}.start{cpu}")
            for key in ("start_kit", "start_after", "start_after_unguarded"):
                row += cells(figures[key + cpu], module, f"{variant}.{key}{cpu}")
            rows.append(row)
        report.table(
            f"Load + activate one extension, fresh process per sample, {clock} ms median (min);"
            " ratio = / own (1st start) or / its module (the kit already imported)",
            (
                "extension",
                "kit import",
                "module: import+create+activate",
                "own: kit + module",
                "host.start, 1st in process",
                "overhead",
                "same, kit imported first",
                "overhead",
                "host.start, after another",
                "overhead",
                "same, guard off",
                "overhead",
            ),
            rows,
        )
        rows = []
        for variant, ext_id, _ in MEASURED:
            figures = results[variant]
            steps = [figures[step + cpu] for step in STEPS[:-1]]
            beyond_kit = figures["total" + cpu].median - figures["kit" + cpu].median
            report.figure(f"{variant}.total_beyond_kit{cpu}_ms", beyond_kit)
            rows.append(
                (
                    ext_id,
                    figures["by_hand" + cpu],
                    *steps,
                    *cells(figures["total" + cpu], figures["by_hand" + cpu], f"{variant}.total{cpu}"),
                    f"{beyond_kit:.1f}",
                )
            )
        report.table(
            f"The whole path in a fresh process, {clock} ms median (min); ratio = / by hand",
            (
                "extension",
                "by hand: core + kit + module",
                "from symphony_core import Host",
                "Host(home)",
                "host.discover()",
                "host.start(id)",
                "host total",
                "overhead",
                "host total - kit import",
            ),
            rows,
        )

    work, noop = results["work"], results["noop"]
    rows = []
    for key, label in (
        ("after", "after another start"),
        ("kit", "1st start in process (kit imported first)"),
    ):
        own, imported, host = (work[f"{part}_{key}_cpu"] for part in ("activate", "import", "host"))
        shares = [
            extra / (alone + module) * 100
            for extra, alone, module in zip(host.samples, own.samples, imported.samples, strict=True)
        ]
        share = Stat(tuple(shares)).median
        report.figure(f"work.host_{key}_share_percent", {"median": share, "samples": shares})
        rows.append((label, own, imported, host, f"{share:.1f} %"))
        report.budget(
            f"host.start overhead beyond the extension's own work, CPU, {label}, paired in one start",
            share,
            5.0,
            "%",
        )
    report.table(
        "bench.work: one host.start split in the same process, CPU ms median (min): what the extension's"
        " activate measured on its own thread, its module's import and creation (the same module under"
        " another name, right after), and the rest of the start's CPU (all threads)",
        (
            "host.start",
            "extension's own activate",
            "its import + create",
            "the host's share",
            "share / own work (median)",
        ),
        rows,
    )
    report.budget(
        "trivial extension, host.start(id) 1st in process (kit imported first), beyond its own work, CPU",
        overhead(noop["start_kit_cpu"], noop["module_cpu"])[0],
        FIRST_START_BUDGET_MS,
        "ms",
    )
    isolated = results["isolated"]
    for key, value in isolated.items():
        report.figure(f"isolated.{key}", value)
    report.table(
        "Isolated tier: a trivial extension's host.start, the host's own CPU and the wall time, ms median"
        " (min); the worker's CPU is its own (a cold worker: spawned, restricted, importing)",
        ("host.start", "host CPU", "wall"),
        [
            ("1st in process", isolated["first_cpu"], isolated["first"]),
            ("after another", isolated["after_cpu"], isolated["after"]),
            ("host.prepare() itself", isolated["prepare_cpu"], isolated["prepare"]),
            ("1st in process, after host.prepare()", isolated["ready_cpu"], isolated["ready"]),
        ],
    )
    report.budget(
        "isolated tier: trivial extension, host.start after another, the host's CPU",
        isolated["after_cpu"].median,
        FIRST_START_BUDGET_MS,
        "ms",
    )
    report.budget(
        "isolated tier: trivial extension, host.start 1st in process, the host's CPU",
        isolated["first_cpu"].median,
        FIRST_START_BUDGET_MS,
        "ms",
    )
    report.budget(
        "isolated tier: trivial extension, host.start 1st in process after host.prepare(), the host's CPU",
        isolated["ready_cpu"].median,
        FIRST_START_BUDGET_MS,
        "ms",
    )
    beyond = noop["beyond_kit_cpu"]
    report.figure("noop.import_to_started_beyond_kit_paired_cpu", beyond)
    report.table(
        "bench.noop: from symphony_core import Host to started, less the kit's import where the host made"
        " it (timed in the same process), CPU ms median (min)",
        ("import..started", "the kit's import in it", "beyond the kit's import"),
        [(noop["total_cpu"], noop["kit_in_host_cpu"], beyond)],
    )
    report.budget(
        "trivial extension, host import..started beyond its kit's import, CPU, paired in one process",
        beyond.median,
        TRIVIAL_PATH_BUDGET_MS,
        "ms",
    )
    report.budget(
        "trivial extension, host import..started beyond its kit's import, wall",
        noop["total"].median - noop["kit"].median,
        TRIVIAL_BUDGET_MS,
        "ms",
    )
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
