"""Operators larger than memory: a pipeline streamed to Parquet against the same pipeline run in memory.

Generated flight-like rows (id, carrier, dep, arr, tail) are written as Parquet files of 1,000,000 rows
each, in row groups of 100,000 rows, to a temporary folder; sizes are 8, 32 and 64 million rows (2 and
8 with --quick). Two operators, ``bench.gain`` (a derived column, and a filter on it: about half the rows
stay) and ``bench.pace`` (another derived column), installed as a distribution, run over each size in
four ways, each sample in a fresh interpreter, the ways interleaved round by round:

    in-memory           in this process: ``Pipeline.run(engine="in-memory")`` with a Parquet sink, the
                        whole result collected, then written
    streaming           in this process: ``Pipeline.sink_parquet``, polars' streaming engine writing the
                        file as the rows are made
    isolated in-memory  the same pipeline with the operators run by a ``Host(isolation="isolated")``:
                        the fused plan runs in a runner, its whole result crosses to the host through
                        shared memory, and the host writes it
    isolated streaming  ``Pipeline.sink_parquet`` there: the same runner streams the fused plan's rows to
                        the host batch by batch, and the host's polars sink writes them as they come

After one warm-up round at the smallest size, each child runs its way once (the files were just written:
the page cache is warm for every way alike) and reports the wall time from before the pipeline is built
to the file in place (the isolated operators' workers started before), and the peak memory
of the whole tier: its own ``ru_maxrss`` plus the ``VmHWM`` of every process it started, read every 20
ms while it runs (the streaming runner lives only as long as its output), so workers, runners and the
host are all counted. The isolated host's policy lifts the memory and file-size limits, so the
in-memory ways fit at every size; the streaming ways would run under a few hundred MiB (the tests run
them so). Throughput is rows read per second. Each output is checked to hold the same number of rows.

Budgets: at every size, the streaming way's throughput is at least 0.8x the in-memory way's (in this
process and isolated); the streaming way's peak memory at the largest size is at most 1.5x its peak at
the smallest while the data grows 8x (4x with --quick): bounded, not growing with the data.

    python tools/bench/streaming.py [--quick] [--json FILE] [--check] [--repeat N]
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

THROUGHPUT = 0.8
BOUNDED = 1.5
ROWS_PER_FILE = 1_000_000
WAYS = ("in-memory", "streaming", "isolated in-memory", "isolated streaming")

# argv: folder, files, rows per file
GENERATE = r"""
import sys
import polars as pl

folder, files, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for k in range(files):
    n = pl.int_range(k * rows, (k + 1) * rows, dtype=pl.Int64)
    pl.select(n.alias("id")).with_columns(
        (pl.col("id") * 7919 % 13).cast(pl.String).alias("carrier"),
        ((pl.col("id") * 2_654_435_761) % 1000).cast(pl.Float64).truediv(10).sub(20).alias("dep"),
        ((pl.col("id") * 40_503) % 1200).cast(pl.Float64).truediv(10).sub(20).alias("arr"),
        pl.format("N{}", pl.col("id") % 100_000).alias("tail"),
    ).write_parquet(f"{folder}/part-{k:03d}.parquet", row_group_size=100_000)
print("{}")
"""

STEPS = """
import polars as pl
from symphony_operators import Operator


class Gain(Operator):
    def apply(self, frame):
        gained = (pl.col("arr") - pl.col("dep")).alias("gained")
        return frame.with_columns(gained).filter(pl.col("gained") > 0)


class Pace(Operator):
    def apply(self, frame):
        return frame.with_columns((pl.col("gained") * 0.5).alias("pace"))
"""

# argv: source glob, output file, way, site, home
RUN = (
    r"""
import json, os, resource, sys, threading, time
from pathlib import Path

import polars as pl
from symphony_core import Host
from symphony_operators import Pipeline

source, out, way, site, home = sys.argv[1:6]
peaks, done = {}, threading.Event()
"""
    + PROCESS_TREE
    + r"""

def sample():  # a process's VmHWM is its own peak: the last reading before it ends is the one kept
    while not done.wait(0.02):
        for pid in descendants():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            except OSError:
                pass


def run(host):
    if host is not None:  # started before the clock: their workers are ready, as in a serving host
        ops = [host.start(name) for name in ("bench.gain", "bench.pace")]
    else:
        from bench_streams import Gain, Pace

        ops = [Gain.create(manifest={"id": "bench.gain"}), Pace.create(manifest={"id": "bench.pace"})]
    t0 = time.perf_counter_ns()
    pipeline = Pipeline.chain(source, *ops, name="bench")
    if way.endswith("streaming"):
        pipeline.sink_parquet(out)
    else:
        pipeline.sink(out).run(engine="in-memory")
    return time.perf_counter_ns() - t0


sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
if way.startswith("isolated"):
    Path(home).mkdir(parents=True, exist_ok=True)
    Path(home, "policy.toml").write_text("[limits]\nmemory = false\nfile_size = false\n")
    with Host(home, isolation="isolated", path=[site, *sys.path]) as host:
        host.discover()
        wall = run(host)
        done.set()
        sampler.join()
else:
    sys.path.insert(0, site)
    wall = run(None)
    done.set()
    sampler.join()
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = pl.scan_parquet(out).select(pl.len()).collect().item()
print(json.dumps({"wall_ns": wall, "rss_kib": own + sum(peaks.values()), "rows": rows}))
"""
)


def install_steps(site: Path) -> None:
    files = {"bench_streams/__init__.py": STEPS}
    for name, cls in (("gain", "Gain"), ("pace", "Pace")):
        files[f"bench_streams/{name}/__init__.py"] = f"from bench_streams import {cls}\n"
        files[f"bench_streams/{name}/symphony.toml"] = (
            f'id = "bench.{name}"\nkind = "operator"\nname = "{name}"\nsummary = "A benchmark step."\n'
            'targets = "symphony-operators>=0.1,<0.2"\n'
        )
    write_distribution(
        site,
        "bench-streams",
        "1.0.0",
        files=files,
        entry_points={
            "symphony.operators": {
                "bench.gain": "bench_streams.gain:Gain",
                "bench.pace": "bench_streams.pace:Pace",
            }
        },
        requires=("symphony-operators>=0.1,<0.2",),
    )


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    args = parser.parse_args()
    report = Report("streaming", args)
    sizes = [2_000_000, 8_000_000] if args.quick else [8_000_000, 32_000_000, 64_000_000]
    repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="symphony-bench-streaming-") as tmp:
        env = child_environment(Path(tmp), bytecode=not args.no_bytecode)
        site = Path(tmp, "site")
        install_steps(site)
        results: dict[tuple[int, str], dict[str, list[float]]] = {}
        rows_out: dict[int, set[int]] = {}
        for size in sizes:
            folder = Path(tmp, f"data-{size}")
            folder.mkdir()
            run_child(GENERATE, str(folder), str(size // ROWS_PER_FILE), str(ROWS_PER_FILE), env=env)
            on_disk = sum(file.stat().st_size for file in folder.iterdir())
            report.figure(f"{size}.input_mib", on_disk / 2**20)
            if size == sizes[0]:  # a warm-up round, not kept: bytecode caches, the first runner's start
                for way in WAYS:
                    out = Path(tmp, "out", "warm-up.parquet")
                    out.parent.mkdir(exist_ok=True)
                    home = Path(tmp, f"home-warm-up-{way.replace(' ', '-')}")
                    run_child(RUN, f"{folder}/*.parquet", str(out), way, str(site), str(home), env=env)
            for round_ in range(repeat):
                order = WAYS[round_ % len(WAYS) :] + WAYS[: round_ % len(WAYS)]
                for way in order:
                    out = Path(tmp, "out", f"{size}-{way.replace(' ', '-')}.parquet")
                    out.parent.mkdir(exist_ok=True)
                    home = Path(tmp, f"home-{size}-{round_}-{way.replace(' ', '-')}")
                    child = run_child(
                        RUN, f"{folder}/*.parquet", str(out), way, str(site), str(home), env=env
                    )
                    sample = results.setdefault((size, way), {"wall": [], "rss": []})
                    sample["wall"].append(child["wall_ns"])
                    sample["rss"].append(child["rss_kib"] / 1024)
                    rows_out.setdefault(size, set()).add(child["rows"])
                    out.unlink()
            if len(rows_out[size]) != 1:
                raise SystemExit(f"the ways wrote different row counts at {size:,} rows: {rows_out[size]}")
            for path in folder.iterdir():
                path.unlink()
        _tables(report, sizes, results)
    return report.finish()


def _tables(report: Report, sizes: list[int], results: dict[tuple[int, str], dict[str, list[float]]]) -> None:
    rows = []
    for size in sizes:
        for way in WAYS:
            wall = Stat.of_ns(int(ns) for ns in results[size, way]["wall"])
            rss = Stat(tuple(results[size, way]["rss"]))
            throughput = size / (wall.median / 1000)
            baseline = "in-memory" if not way.startswith("isolated") else "isolated in-memory"
            base_wall = Stat.of_ns(int(ns) for ns in results[size, baseline]["wall"])
            key = f"{size}.{way.replace(' ', '_')}"
            report.figure(f"{key}.wall", wall)
            report.figure(f"{key}.peak_rss_mib", rss.as_json())
            report.figure(f"{key}.rows_per_s", throughput)
            rows.append(
                (
                    f"{size:,}",
                    way,
                    str(wall),
                    f"{throughput / 1e6:.1f} M/s",
                    ratio(base_wall, wall),
                    f"{rss.median:.0f} MiB",
                    ratio(rss, Stat(tuple(results[size, baseline]["rss"]))),
                )
            )
            if way.endswith("streaming"):
                report.budget(
                    f"{way} throughput vs {baseline}, {size:,} rows",
                    base_wall.median / wall.median,
                    THROUGHPUT,
                    "x",
                    at_least=True,
                )
    report.table(
        "Wall time (ms), throughput and peak memory of the whole tier; ratios against the in-memory way "
        "of the same tier",
        ("rows", "way", "wall ms", "rows read/s", "throughput", "peak RSS", "peak ratio"),
        rows,
    )
    grown = []
    for way in WAYS:
        first = Stat(tuple(results[sizes[0], way]["rss"])).median
        last = Stat(tuple(results[sizes[-1], way]["rss"])).median
        grown.append((way, f"{first:.0f} MiB", f"{last:.0f} MiB", f"{last / first:.2f}x"))
        report.figure(f"growth.{way.replace(' ', '_')}", last / first)
        if way.endswith("streaming"):
            report.budget(f"{way} peak memory, {sizes[-1] // sizes[0]}x the data", last / first, BOUNDED, "x")
    report.table(
        f"Peak memory from {sizes[0]:,} to {sizes[-1]:,} rows ({sizes[-1] // sizes[0]}x the data)",
        ("way", "smallest", "largest", "growth"),
        grown,
    )


if __name__ == "__main__":
    sys.exit(main())
