"""What the isolated tier costs: worker start, round trips, bulk data, and work inside the sandbox.

Every figure stands beside a baseline from the same run:

    ready          a ready worker from a warm pool (take it, one round trip) vs a cold start of the same
                   trivial extension (spawn, restrict, import, activate) and vs a bare ``python -I`` start;
                   also the cold start of an extension that imports polars, numpy and onnxruntime
    restart        the first answer after a worker crash: pool of 2 (a warm spare answers) vs pool of 1
                   (a replacement must start first)
    round trip     ``call("noop")`` and ``ping`` on a ready worker vs the same method called in-process
    bulk           a ~100 MB polars frame (and a 100 MB numpy array) host -> worker -> host, through shared
                   memory (default) vs through the pipe (a worker whose inline limit is above the size)
    polars         a lazy pipeline (filter, derived columns, group-by, join, sort) over a frame prepared in
                   place, inside the worker vs in this process
    onnxruntime    an MLP (3 Gemm layers) at batch 128: inside the worker vs in this process, input and
                   output crossing as arrays

Budgets (docs/architecture.md): warm-pool ready <= 50 ms, control round trip median <= 50 us; and, from the issue,
shared memory >= 5x the pipe for 100 MB, polars and onnxruntime inside the worker within 10 % of
in-process. Run as ``hatch run bench:run sandbox.py [--quick] [--json FILE] [--check]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from _common import Report, Stat, options, ratio
from _models import write_mlp

from symphony_core._model._permissions import FileRead
from symphony_core._security._sandbox._pool import Pool
from symphony_core._security._sandbox._probe import probe
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._store._home import Home

FEATURES, HIDDEN, BATCH = 256, 1024, 128

WORK = '''
"""The work both sides run: the same code in the worker and in the benchmark's own process."""
import numpy as np
import polars as pl


def frame(rows):
    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "key": rng.integers(0, 5_000, rows),
            "value": rng.standard_normal(rows),
            "weight": rng.random(rows),
            "flag": rng.integers(0, 3, rows),
        }
    )


def pipeline(data, lookup):
    return (
        data.lazy()
        .filter(pl.col("flag") != 1)
        .with_columns((pl.col("value") * pl.col("weight")).alias("weighted"), (pl.col("key") % 97).alias("bucket"))
        .group_by("key", "bucket")
        .agg(pl.col("weighted").sum(), pl.col("value").mean().alias("mean"), pl.len().alias("n"))
        .join(lookup.lazy(), on="key", how="left")
        .sort("weighted", descending=True)
        .head(100)
        .collect()
    )


def lookup():
    return pl.DataFrame({"key": np.arange(5_000), "label": np.arange(5_000) % 13})


def timed_runs(session, batch, runs):
    """Nanoseconds per run of ``runs`` back-to-back runs, timed where the session lives."""
    import time

    start = time.perf_counter_ns()
    for _ in range(runs):
        session.run(None, {"input": batch})
    return (time.perf_counter_ns() - start) // runs


def session(onnxruntime, path):
    # no spinning: two sessions (worker, benchmark) on the same cores would otherwise steal each other's time
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
'''

EXTENSIONS = """
import time

from symphony_core import Extension


class Trivial(Extension):
    def noop(self):
        return None


class Heavy(Extension):
    def activate(self, context):
        import onnxruntime

        import bench_work

        self.context = context
        self.work = bench_work
        self.onnxruntime = onnxruntime
        self.data = None

    def noop(self):
        return None

    def same(self, value):
        return value

    def prepare(self, rows):
        self.data, self.lookup = self.work.frame(rows), self.work.lookup()
        return self.data.height

    def pipeline(self):
        return self.work.pipeline(self.data, self.lookup).height

    def load(self, path):
        self.session = self.work.session(self.onnxruntime, path)

    def infer(self, batch):
        return self.session.run(None, {"input": batch})[0]

    def infer_timed(self, batch, runs):
        return self.work.timed_runs(self.session, batch, runs)
"""


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--frame-mb", type=float, default=100.0, help="size of the bulk frame (default 100)")
    parser.add_argument("--rows", type=int, help="rows of the polars pipeline's frame (default 2M, quick 1M)")
    args = parser.parse_args()
    report = Report("sandbox", args)
    quick = args.quick
    repeat = args.repeat or (5 if quick else 15)
    capabilities = probe()
    report.note(
        f"sandbox: {repeat} samples per start figure; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"kernel {capabilities.kernel}; {capabilities.summary()}"
    )
    report.figure("probe", capabilities.as_json())
    if not capabilities.supported:
        report.note("the isolated tier needs Linux: nothing to measure here")
        return report.finish()

    with tempfile.TemporaryDirectory(prefix="symphony-bench-sandbox-") as tmp:
        folder = Path(tmp)
        code = folder / "code"
        (code / "bench_sandbox").mkdir(parents=True)
        (code / "bench_sandbox" / "__init__.py").write_text(EXTENSIONS, encoding="utf-8")
        (code / "bench_work.py").write_text(textwrap.dedent(WORK), encoding="utf-8")
        model = folder / "models" / "mlp.onnx"
        model.parent.mkdir()
        write_mlp(model, FEATURES, [HIDDEN, HIDDEN, 10])
        home = Home(folder / "home")

        def spec(name: str, entry: str, **options: Any) -> WorkerSpec:
            grant = FileRead(paths=(str(model.parent),), reason="loads the benchmark model")
            return WorkerSpec(
                extension=name,
                entry_point=entry,
                home=home,
                path=(str(code),),
                permissions=(grant,),
                **options,
            )

        trivial = spec("bench.trivial", "bench_sandbox:Trivial")
        heavy = spec("bench.heavy", "bench_sandbox:Heavy")
        readiness(report, trivial, heavy, repeat, quick)
        restarts(report, trivial, 3 if quick else 7)
        round_trips(report, trivial, 2_000 if quick else 20_000)
        sys.path.insert(0, str(code))
        bulk(report, heavy, spec("bench.piped", "bench_sandbox:Heavy", inline_limit=1 << 40), args, quick)
        work(report, heavy, model, args.rows or (1_000_000 if quick else 2_000_000), quick)
    return report.finish()


def timed(work: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    work()
    return time.perf_counter_ns() - start


def readiness(report: Report, trivial: WorkerSpec, heavy: WorkerSpec, repeat: int, quick: bool) -> None:
    WorkerProcess.start(trivial).stop()  # warm-up: the probe, pydantic for grants, page cache
    bare, cold, warm = [], [], []
    pool = Pool(trivial, size=1).start()
    try:
        for _ in range(repeat):
            bare.append(timed(lambda: subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)))
            started: list[WorkerProcess] = []
            cold.append(timed(lambda started=started: started.append(WorkerProcess.start(trivial))))
            started[0].stop()

            def take() -> None:
                with pool.worker() as ready:
                    ready.ping()

            warm.append(timed(take))
    finally:
        pool.close()
    WorkerProcess.start(heavy).stop()  # warm-up: bytecode of polars and onnxruntime in the worker's cache
    heavy_cold = []
    for _ in range(max(2, repeat // 3)):
        started = []
        heavy_cold.append(timed(lambda started=started: started.append(WorkerProcess.start(heavy))))
        started[0].stop()
    stats = {
        "bare python -I": Stat.of_ns(bare),
        "cold start, trivial extension": Stat.of_ns(cold),
        "cold start, polars+numpy+onnxruntime": Stat.of_ns(heavy_cold),
        "ready from a warm pool": Stat.of_ns(warm),
    }
    base = stats["cold start, trivial extension"]
    rows = []
    for name, stat in stats.items():
        report.figure(f"ready.{name}", stat)
        rows.append((name, f"{stat} ms", ratio(stat, base)))
    report.table("Worker ready (ms)", ("figure", "median (min)", "vs cold start"), rows)
    report.budget("ready from a warm pool", stats["ready from a warm pool"].median, 50.0, "ms")
    report.note(
        "  cold start = spawn + restrict (Landlock, seccomp, namespaces, cgroups) + import + activate;"
        " the heavy one imports polars, numpy and onnxruntime inside the sandbox"
    )


def restarts(report: Report, spec: WorkerSpec, repeat: int) -> None:
    figures = {}
    for size in (2, 1):
        samples = []
        pool = Pool(spec, size=size, backoff=0.0, crash_limit=10**6).start()
        try:
            for _ in range(repeat):
                deadline = time.monotonic() + 60
                while pool.status().ready < size and time.monotonic() < deadline:
                    time.sleep(0.01)
                with pool.worker() as worker:
                    worker.kill()  # a crash, as far as the pool can tell
                samples.append(timed(lambda pool=pool: pool.call("noop", timeout=60)))
        finally:
            pool.close()
        figures[size] = Stat.of_ns(samples)
        report.figure(f"restart.pool_of_{size}", figures[size])
    report.table(
        "First answer after a crash (ms)",
        ("pool", "median (min)", "vs pool of 1"),
        [(f"{size} worker(s)", f"{figures[size]} ms", ratio(figures[size], figures[1])) for size in (2, 1)],
    )


def round_trips(report: Report, spec: WorkerSpec, calls: int) -> None:
    worker = WorkerProcess.start(spec)
    try:
        for _ in range(200):
            worker.call("noop")
        noop = [timed(lambda: worker.call("noop")) for _ in range(calls)]
        ping = [timed(worker.ping) for _ in range(calls)]
    finally:
        worker.stop()
    local = _local_noop(calls)
    raw = _raw_pipe(calls)
    stats = {
        "call('noop') in a worker": noop,
        "ping (no extension code)": ping,
        "raw pipe echo between two processes": raw,
        "noop() in this process": local,
    }
    base = statistics.median(local)
    rows = []
    for name, samples in stats.items():
        median = statistics.median(samples) / 1e3
        report.figure(
            f"round_trip.{name}", {"median_us": median, "min_us": min(samples) / 1e3, "n": len(samples)}
        )
        rows.append(
            (
                name,
                f"{median:.1f} us",
                f"{min(samples) / 1e3:.1f} us",
                f"{statistics.median(samples) / base:.0f}x",
            )
        )
    report.table("Control round trip", ("figure", "median", "min", "vs in-process"), rows)
    protocol = (statistics.median(noop) - statistics.median(raw)) / 1e3
    report.figure("round_trip.protocol_over_raw_pipe_us", protocol)
    report.note(f"  Symphony's protocol adds {protocol:.1f} us per call to the raw pipe echo measured here")
    report.budget("control round trip median", statistics.median(noop) / 1e3, 50.0, "us")


_ECHO = "import os\nwhile True:\n    data = os.read(0, 64)\n    if not data:\n        break\n    os.write(1, data)\n"


def _raw_pipe(calls: int) -> list[int]:
    """What the machine itself costs: 24 bytes to another process and back over pipes, no Symphony."""
    echo = subprocess.Popen(
        [sys.executable, "-I", "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert echo.stdin is not None
    assert echo.stdout is not None
    send, receive = echo.stdin.fileno(), echo.stdout.fileno()
    message = b"x" * 24

    def once() -> None:
        os.write(send, message)
        os.read(receive, 64)

    try:
        for _ in range(200):
            once()
        return [timed(once) for _ in range(calls)]
    finally:
        echo.stdin.close()
        echo.wait()
        echo.stdout.close()


def _local_noop(calls: int) -> list[int]:
    class Trivial:
        def noop(self) -> None:
            return None

    instance = Trivial()
    return [timed(instance.noop) for _ in range(calls)]


def bulk(report: Report, spec: WorkerSpec, piped: WorkerSpec, args: Any, quick: bool) -> None:
    rows = int(args.frame_mb * 1e6 / 8 / 4)
    frame = pl.DataFrame({f"c{i}": np.arange(rows, dtype=np.float64) + i for i in range(4)})
    array = np.arange(int(args.frame_mb * 1e6 / 8), dtype=np.float64)
    size = frame.estimated_size() / 1e6
    samples: dict[str, list[int]] = {}
    repeat = 5 if quick else 9
    workers = {"shared memory": WorkerProcess.start(spec), "pipe": WorkerProcess.start(piped)}
    try:
        for value, kind in ((frame, "frame"), (array, "array")):
            for worker in workers.values():
                worker.call("same", (value,))  # warm-up: first use of the codecs on both sides
            for _ in range(repeat):
                for way, worker in workers.items():
                    back: list[Any] = []

                    def round_trip(
                        worker: WorkerProcess = worker, value: Any = value, back: list[Any] = back
                    ) -> None:
                        back.append(worker.call("same", (value,), timeout=600))

                    samples.setdefault(f"{kind} via {way}", []).append(timed(round_trip))
                    assert back[0].shape == value.shape
    finally:
        for worker in workers.values():
            worker.stop()
    rows_out = []
    for kind in ("frame", "array"):
        shm, pipe = Stat.of_ns(samples[f"{kind} via shared memory"]), Stat.of_ns(samples[f"{kind} via pipe"])
        report.figure(f"bulk.{kind}.shared_memory", shm)
        report.figure(f"bulk.{kind}.pipe", pipe)
        report.figure(f"bulk.{kind}.speedup", pipe.median / shm.median)
        rows_out.append((f"{kind}, shared memory", f"{shm} ms", ratio(shm, pipe)))
        rows_out.append((f"{kind}, pipe", f"{pipe} ms", "1.00x"))
    report.table(
        f"A {size:.0f} MB value host -> worker -> host (ms)", ("figure", "median (min)", "vs pipe"), rows_out
    )
    speedup = statistics.median(samples["frame via pipe"]) / statistics.median(
        samples["frame via shared memory"]
    )
    report.budget("shared memory vs pipe, 100 MB frame (speedup)", speedup, 5.0, "x", at_least=True)


def work(report: Report, spec: WorkerSpec, model: Path, rows: int, quick: bool) -> None:
    import bench_work  # the benchmark's own module, written next to the extension
    import onnxruntime

    repeat = 5 if quick else 15
    worker = WorkerProcess.start(spec)
    try:
        worker.call("prepare", (rows,), timeout=600)
        data, lookup = bench_work.frame(rows), bench_work.lookup()
        worker.call("pipeline", timeout=600)
        bench_work.pipeline(data, lookup)
        inside, here = [], []
        for _ in range(repeat):
            inside.append(timed(lambda: worker.call("pipeline", timeout=600)))
            here.append(timed(lambda: bench_work.pipeline(data, lookup)))
        worker.call("load", (str(model),))
        session = bench_work.session(onnxruntime, str(model))
        batch = np.random.default_rng(1).standard_normal((BATCH, FEATURES)).astype(np.float32)
        runs = 50 if quick else 200
        for _ in range(10):
            worker.call("infer", (batch,))
            session.run(None, {"input": batch})
        model_inside, model_here, compute_inside, compute_here = [], [], [], []
        for _ in range(repeat):
            model_inside.append(timed(lambda: [worker.call("infer", (batch,)) for _ in range(runs)]) // runs)
            model_here.append(
                timed(lambda: [session.run(None, {"input": batch}) for _ in range(runs)]) // runs
            )
            compute_inside.append(worker.call("infer_timed", (batch, runs)))
            compute_here.append(bench_work.timed_runs(session, batch, runs))
    finally:
        worker.stop()
    results = []
    figures = (
        ("polars", f"polars pipeline, {rows:,} rows", inside, here, True),
        (
            "onnxruntime",
            f"onnxruntime MLP, batch {BATCH}, timed where it runs",
            compute_inside,
            compute_here,
            True,
        ),
        (
            "onnxruntime_call",
            f"onnxruntime MLP, batch {BATCH}, per host call",
            model_inside,
            model_here,
            False,
        ),
    )
    for key, name, a, b, budgeted in figures:
        sa, sb = Stat.of_ns(a), Stat.of_ns(b)
        report.figure(f"work.{key}.worker", sa)
        report.figure(f"work.{key}.in_process", sb)
        report.figure(f"work.{key}.ratio", sa.median / sb.median)
        results.append((name, f"{sa} ms", f"{sb} ms", ratio(sa, sb)))
        if budgeted:
            report.budget(f"{key} inside the worker vs in-process (ratio)", sa.median / sb.median, 1.10, "x")
    report.table(
        "Work inside the sandbox vs in this process", ("work", "worker", "in-process", "ratio"), results
    )
    report.note(
        "  per host call adds the round trip and the batch crossing the pipe (128 KB in, 5 KB out) to the"
        " model's own time"
    )


if __name__ == "__main__":
    sys.exit(main())
