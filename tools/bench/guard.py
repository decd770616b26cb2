"""What the in-process guard costs: Python ``open()`` with and without it, and a polars read it cannot see.

Each ``open()`` sample runs in a fresh interpreter (an audit hook, once added, stays for the process's life),
the three modes interleaved so drift hits them alike; every child imports ``symphony_core._security._guard``:
    no hook    the baseline: the guard's audit hook is not installed
    idle       the hook is installed, no extension code is running (no policy active)
    guarded    inside ``acting_as(policy)``, opening a file the policy grants
A child times ``--opens`` open()+close() pairs of a small file, in batches, after a warm-up, and reports
the median ns per pair of its batches.

The polars figure reads a generated ~100 MB CSV with ``polars.read_csv``, in one fresh child, alternating
without a policy and inside ``acting_as`` a policy that grants nothing. The read succeeds and costs the
same: polars opens the file itself, so the guard never sees it. That is the point of the figure: the guard
is not a sandbox.

    python tools/bench/guard.py [--quick] [--json FILE] [--opens N] [--csv-mb MB]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import Report, child_environment, options, run_child

MODES = ("no hook", "idle", "guarded")

OPENS = """
import json, os, statistics, sys, time
from pathlib import Path
from symphony_core._security._guard import Policy, acting_as, install
from symphony_core._model._permissions import FileRead

mode, folder, opens = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
target = str(folder / "small.txt")
policy = Policy(
    extension="bench.guard",
    permissions=(FileRead(paths=("{data}",), reason="reads its inputs"),),
    data=folder,
    cache=folder / "cache",
)


def batch(count):
    start = time.perf_counter_ns()
    for _ in range(count):
        open(target, "rb").close()
    return (time.perf_counter_ns() - start) / count


def measure():
    batch(max(200, opens // 10))
    return statistics.median(batch(max(1, opens // 10)) for _ in range(10))


if mode == "no hook":
    result = measure()
else:
    install()
    if mode == "idle":
        result = measure()
    else:
        with acting_as(policy):
            result = measure()
print(json.dumps({"ns": result}))
"""

POLARS = """
import json, sys, time
from pathlib import Path
import polars
from symphony_core._security._guard import Policy, acting_as

csv, rounds = sys.argv[1], int(sys.argv[2])
folder = Path(csv).parent
policy = Policy(extension="bench.guard", data=folder / "data", cache=folder / "cache")  # grants nothing


def read():
    start = time.perf_counter_ns()
    frame = polars.read_csv(csv)
    elapsed = time.perf_counter_ns() - start
    return elapsed, frame.height


read()  # warm the page cache and polars' thread pool
samples = {"no policy": [], "policy": []}
rows = 0
for _ in range(rounds):
    elapsed, rows = read()
    samples["no policy"].append(elapsed)
    with acting_as(policy):
        elapsed, rows = read()
    samples["policy"].append(elapsed)
print(json.dumps({"samples": samples, "rows": rows}))
"""


def write_csv(path: Path, megabytes: float) -> int:
    """A CSV of about ``megabytes`` MB (ints, floats, short strings); returns its size in bytes."""
    import numpy as np
    import polars

    rows = int(megabytes * 1e6 / 43)  # about 43 bytes per row
    generator = np.random.default_rng(7)
    polars.DataFrame(
        {
            "id": np.arange(rows),
            "x": generator.random(rows),
            "y": generator.normal(size=rows).round(6),
            "group": polars.Series(generator.integers(0, 1000, rows)).cast(str).str.pad_start(6, "g"),
        }
    ).write_csv(path)
    return path.stat().st_size


def ns(value: float) -> str:
    return f"{value:,.0f} ns"


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument(
        "--opens", type=int, help="open()+close() pairs per child (default 20000; quick 5000)"
    )
    parser.add_argument("--csv-mb", type=float, default=100.0, help="size of the generated CSV (default 100)")
    args = parser.parse_args()
    repeat = args.repeat or (4 if args.quick else 11)
    opens = args.opens or (5000 if args.quick else 20000)
    report = Report("guard", args)
    report.note(
        f"guard: {repeat} fresh processes per open() figure, {opens} opens each; a {args.csv_mb:g} MB CSV;"
        f" Python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
    )

    with tempfile.TemporaryDirectory(prefix="symphony-bench-guard-") as tmp:
        folder = Path(tmp)
        env = child_environment(folder, bytecode=True)
        (folder / "small.txt").write_bytes(b"x" * 100)
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(repeat):
            for mode in MODES:
                samples[mode].append(run_child(OPENS, mode, str(folder), str(opens), env=env)["ns"])

        size = write_csv(folder / "table.csv", args.csv_mb)
        polars_run: dict[str, Any] = run_child(
            POLARS, str(folder / "table.csv"), str(max(3, repeat)), env=env
        )

    medians = {mode: statistics.median(values) for mode, values in samples.items()}
    base = medians["no hook"]
    rows = []
    for mode in MODES:
        rows.append((mode, ns(medians[mode]), ns(min(samples[mode])), f"{medians[mode] / base:.2f}x"))
        report.figure(
            f"open.{mode}",
            {"median_ns": medians[mode], "min_ns": min(samples[mode]), "samples_ns": samples[mode]},
        )
        report.figure(f"open.{mode}.ratio", medians[mode] / base)
    report.table("Python open()+close() of a 100-byte file", ("mode", "median", "min", "vs no hook"), rows)
    added = medians["guarded"] - base
    report.figure("open.guarded.added_ns", added)
    report.note(
        f"  the guard adds {ns(added)} per open() of a granted file, mostly os.path.realpath (one lstat per path part)"
    )

    read = {key: [value / 1e6 for value in values] for key, values in polars_run["samples"].items()}
    read_medians = {key: statistics.median(values) for key, values in read.items()}
    polars_ratio = read_medians["policy"] / read_medians["no policy"]
    report.table(
        f"polars.read_csv of a {size / 1e6:.0f} MB CSV ({polars_run['rows']:,} rows)",
        ("mode", "median", "min", "vs no policy"),
        [
            ("no policy", f"{read_medians['no policy']:.1f} ms", f"{min(read['no policy']):.1f} ms", "1.00x"),
            (
                "policy, file not granted",
                f"{read_medians['policy']:.1f} ms",
                f"{min(read['policy']):.1f} ms",
                f"{polars_ratio:.2f}x",
            ),
        ],
    )
    report.note("  the read succeeds although nothing is granted: polars' own I/O never reaches the guard")
    for key, values in read.items():
        report.figure(
            f"polars.{key}", {"median_ms": read_medians[key], "min_ms": min(values), "samples_ms": values}
        )
    report.figure("polars.ratio", polars_ratio)
    report.figure("polars.csv_bytes", size)
    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
