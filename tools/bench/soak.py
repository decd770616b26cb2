"""Soak: a host serving mixed calls to ten extensions for a bounded time while a chaos thread breaks them.

Ten generated distributions are installed into a temporary site in the installed layout, one extension
each: four operators (polars), three instruments (``OnnxInstrument`` on a small ReLU MLP, 32 -> 64 ->
64 -> 4, built with ``onnx.helper``) and three motifs. A ``Host(isolation="auto")`` with no trust list
runs every one of them in isolated workers, with a call budget (``--budget``). Every extension also
defines ``crash`` (``os._exit``) and ``hang`` (sleeps past the call budget).

While the soak runs (``--duration`` seconds, the first ``--warmup`` of them a warm-up):

    callers      ``--threads`` threads, each calling a random extension in turn: an operator's ``query``
                 collected (its rows made in a worker) or its ``total`` (a frame to a worker and back),
                 an instrument's ``infer`` (one row, through the host's batcher) or ``metrics``,
                 a motif's ``invoke("echo", ...)`` or ``echo``
    async        one thread running an event loop with ``--tasks`` tasks, each awaiting
                 ``host.acall(instrument, "infer", row)`` in turn
    chaos        every ``--chaos`` seconds on average, one of: call ``crash`` of a random extension; kill
                 one of its workers with SIGKILL from the host's side; call ``hang``; disable it and
                 enable it again; "upgrade" it (its distribution rewritten in the site with a new
                 version and an edited manifest, then ``host.discover(rescan=True)``); or rescan alone.
                 After each, every extension that is not active is started again (a quarantine lifted
                 with ``enable``, a grant given again when consent is asked)

A call is answered when it returns or raises a ``SymphonyError``; anything else it raises is counted
with its traceback, and a call still running when the soak ends (after a grace period) is hung. Worker
failures and restarts are read from the host's audit log. The host's RSS is sampled every half second:
the figure judged is the median of its samples over the last 5 s of the soak against the median of the
5 s after the warm-up. Before the host is made and after ``host.close()``, the benchmark counts its open
file descriptors, its descendant processes and its exchange folders in /dev/shm.

Targets (issue 18): every call answered, no leaked process or file descriptor, host RSS growth <= 10 %
after warm-up.

    python tools/bench/soak.py [--quick] [--json FILE] [--check] [--duration S] [--warmup S]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from _common import Report, options, write_distribution
from _models import write_mlp
from polars.io.plugins import register_io_source

import symphony_instruments  # noqa: F401 - imported before the first count of file descriptors
import symphony_motifs  # noqa: F401
import symphony_operators  # noqa: F401
from symphony_core import Host, State, SymphonyError

FEATURES = 32
OPERATORS, INSTRUMENTS, MOTIFS = 4, 3, 3
RSS_GROWTH = 1.10
WINDOW_S = 5.0
SAMPLE = 20_000

OPERATOR_CODE = '''
"""A soak operator: adds a column; also crashes and hangs on request."""
import os
import time

import polars as pl
from symphony_operators import Operator


class Step(Operator):
    def apply(self, frame):
        return frame.with_columns((pl.col("x") * {n} + 1).alias("y{n}"))

    def total(self, frame):
        return frame.select(pl.col("x").sum().alias("total"), pl.len().alias("rows"))

    def crash(self):
        os._exit(3)

    def hang(self, seconds):
        time.sleep(seconds)
'''
OPERATOR_MANIFEST = """
id = "{id}"
kind = "operator"
name = "Soak operator {n}"
summary = "{summary}"
targets = "symphony-operators>=0.1,<0.2"

[[contributes.input]]
name = "x"
dtype = "Int64"
"""
INSTRUMENT_CODE = '''
"""A soak instrument: the small MLP in its data folder; also crashes and hangs on request."""
import os
import time

from symphony_instruments import ModelConfig, OnnxInstrument


class MlpConfig(ModelConfig):
    path: str = "{{data}}/mlp.onnx"


class Mlp(OnnxInstrument):
    def crash(self):
        os._exit(3)

    def hang(self, seconds):
        time.sleep(seconds)
'''
INSTRUMENT_MANIFEST = f"""
id = "{{id}}"
kind = "instrument"
name = "Soak instrument {{n}}"
summary = "{{summary}}"
targets = "symphony-instruments>=0.1,<0.2"
config = "{{module}}:MlpConfig"

[[permissions]]
type = "fs.read"
paths = ["{{{{data}}}}/*.onnx"]
reason = "Load the soak model."

[contributes]
inputs = [{{{{name = "input", dtype = "float32", shape = ["batch", {FEATURES}]}}}}]
outputs = [{{{{name = "output", dtype = "float32", shape = ["batch", 4]}}}}]
"""
MOTIF_CODE = '''
"""A soak motif: echoes text; also crashes and hangs on request."""
import os
import time

from symphony_motifs import Motif


class Echo(Motif):
    def echo(self, text: str) -> str:
        return text

    def crash(self):
        os._exit(3)

    def hang(self, seconds):
        time.sleep(seconds)
'''
MOTIF_MANIFEST = """
id = "{id}"
kind = "motif"
name = "Soak motif {n}"
summary = "{summary}"
targets = "symphony-motifs>=0.1,<0.2"

[contributes]
page = "web/index.html"
exposed = ["echo"]
"""
KINDS = {
    "operator": ("symphony.operators", OPERATOR_CODE, OPERATOR_MANIFEST, "Step", "symphony-operators"),
    "instrument": (
        "symphony.instruments",
        INSTRUMENT_CODE,
        INSTRUMENT_MANIFEST,
        "Mlp",
        "symphony-instruments",
    ),
    "motif": ("symphony.motifs", MOTIF_CODE, MOTIF_MANIFEST, "Echo", "symphony-motifs"),
}


class Site:
    """The temporary site the soak's ten distributions are installed into, and their versions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.extensions: dict[str, str] = {}  # id -> kind
        self.versions: dict[str, int] = {}

    def install_all(self) -> None:
        for kind, count in (("operator", OPERATORS), ("instrument", INSTRUMENTS), ("motif", MOTIFS)):
            for n in range(count):
                extension = f"soak.{kind}-{n}"
                self.extensions[extension] = kind
                self.versions[extension] = 0
                self.install(extension)

    def install(self, extension: str) -> None:
        """Write the extension's distribution at its current version (the one before it removed)."""
        kind = self.extensions[extension]
        n = int(extension.rsplit("-", 1)[1])
        module = extension.replace(".", "_").replace("-", "_")
        distribution = module.replace("_", "-")
        group, code, manifest, cls, kit = KINDS[kind]
        version = f"1.0.{self.versions[extension]}"
        summary = f"A soak {kind}, release {version}."
        files = {
            f"{module}/__init__.py": code.format(n=n + 2),
            f"{module}/symphony.toml": manifest.format(id=extension, n=n, summary=summary, module=module),
        }
        if kind == "motif":
            files[f"{module}/web/index.html"] = "<!doctype html><title>soak</title><p>soak</p>\n"
        for old in self.folder.glob(f"{module}-*.dist-info"):
            shutil.rmtree(old)
        write_distribution(
            self.folder,
            distribution,
            version,
            files=files,
            entry_points={group: {extension: f"{module}:{cls}"}},
            requires=(f"{kit}>=0.1,<0.2",),
        )

    def upgrade(self, extension: str) -> str:
        """Install the next release of the extension over the current one; return its version."""
        self.versions[extension] += 1
        self.install(extension)
        return f"1.0.{self.versions[extension]}"


def descendants() -> list[int]:
    """The processes below this one (from /proc)."""
    children: dict[int, list[int]] = {}
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


def rss_kib(pid: int | str = "self") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what each one is."""
    found = {}
    for entry in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the descriptor listdir itself used is gone
            found[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
    return found


def prime() -> None:
    """Make what polars makes once per process on the first plan with a Python source (its async runtime:
    two epoll and one eventfd descriptors), so that the counts before and after compare like with like."""
    frame = pl.DataFrame({"x": [1]})

    def source(*_: Any) -> Any:
        yield frame

    register_io_source(io_source=source, schema=frame.schema).collect()


def exchange_folders() -> int:
    """This process's exchange folders for bulk values in /dev/shm."""
    return len(list(Path("/dev/shm").glob(f"symphony-{os.getpid()}-*")))


class Tally:
    """What the calls of one side got back, shared by its threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made = 0
        self.ok = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.other: collections.Counter[str] = collections.Counter()
        self.tracebacks: dict[str, str] = {}
        self.by_method: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []  # a uniform sample of at most SAMPLE, so that it does not grow
        self.rng = random.Random(0)

    def start(self, method: str) -> None:
        with self.lock:
            self.made += 1
            self.by_method[method] += 1

    def done(self, started: float, exc: BaseException | None = None) -> None:
        with self.lock:
            if exc is None:
                self.ok += 1
                latency = time.perf_counter() - started
                if len(self.latencies) < SAMPLE:
                    self.latencies.append(latency)
                elif (slot := self.rng.randrange(self.ok)) < SAMPLE:
                    self.latencies[slot] = latency
            elif isinstance(exc, SymphonyError):
                self.errors[type(exc).__name__] += 1
            else:
                name = f"{type(exc).__module__}.{type(exc).__name__}"
                self.other[name] += 1
                self.tracebacks.setdefault(name, "".join(traceback.format_exception(exc)))

    @property
    def answered(self) -> int:
        return self.ok + sum(self.errors.values())


class Soak:
    def __init__(self, host: Host, site: Site, args: Any, model: Path) -> None:
        self.host = host
        self.site = site
        self.args = args
        self.model = model
        self.stop = threading.Event()
        self.calls = Tally()
        self.chaos = Tally()
        self.actions: collections.Counter[str] = collections.Counter()
        self.extra_threads: list[str] = []
        self.inflight: dict[int, float] = {}  # thread id -> when its current call started
        self.ids = sorted(site.extensions)
        self.rows = np.random.default_rng(1).standard_normal((256, FEATURES)).astype(np.float32)
        self.frame = pl.DataFrame({"x": np.arange(2_000, dtype=np.int64)})

    # Setting up

    def prepare(self, extension: str) -> None:
        """Put an instrument's model in its data folder and grant what the extension asks for."""
        if self.site.extensions[extension] == "instrument":
            data = self.host.home.data_dir(extension)
            data.mkdir(parents=True, exist_ok=True)
            if not (data / "mlp.onnx").exists():
                shutil.copy(self.model, data / "mlp.onnx")
            self.host.grant(extension)

    def start(self, extension: str) -> None:
        try:
            self.host.start(extension)
        except SymphonyError as exc:
            if type(exc).__name__ != "ConsentRequired":
                raise
            self.host.grant(extension)
            self.host.start(extension)

    # The callers

    def one_call(self, rng: random.Random) -> None:
        extension = rng.choice(self.ids)
        kind = self.site.extensions[extension]
        row = self.rows[rng.randrange(len(self.rows))]
        if kind == "operator":
            method = rng.choice(("query", "total"))
        elif kind == "instrument":
            method = rng.choice(("infer", "infer", "metrics"))
        else:
            method = rng.choice(("invoke", "echo"))
        self.calls.start(f"{kind}.{method}")
        me = threading.get_ident()
        started = self.inflight[me] = time.perf_counter()
        try:
            if method == "query":  # the rows are made in a worker when the plan is collected
                result = self.host.call(extension, "query", self.frame.lazy()).collect()
                assert result.height == self.frame.height
            elif method == "total":
                assert self.host.call(extension, "total", self.frame)["rows"][0] == self.frame.height
            elif method == "infer":
                assert self.host.call(extension, "infer", {"input": row})["output"].shape == (4,)
            elif method == "metrics":
                self.host.call(extension, "metrics")
            elif method == "invoke":
                assert self.host.call(extension, "invoke", "echo", {"text": "soak"}) == "soak"
            else:
                assert self.host.call(extension, "echo", "soak") == "soak"
        except BaseException as exc:
            self.calls.done(started, exc)
        else:
            self.calls.done(started)
        finally:
            self.inflight.pop(me, None)

    def caller(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            self.one_call(rng)

    def async_callers(self, seed: int) -> None:
        instruments = [e for e in self.ids if self.site.extensions[e] == "instrument"]
        pending: list[asyncio.Task[None]] = []

        async def client(rng: random.Random) -> None:
            while not self.stop.is_set():
                extension = rng.choice(instruments)
                row = self.rows[rng.randrange(len(self.rows))]
                self.calls.start("instrument.acall infer")
                started = time.perf_counter()
                try:
                    answer = await self.host.acall(extension, "infer", {"input": row})
                    assert answer["output"].shape == (4,)
                except BaseException as exc:
                    self.calls.done(started, exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                else:
                    self.calls.done(started)
                await asyncio.sleep(0)

        async def main() -> None:
            pending.extend(
                asyncio.create_task(client(random.Random(seed + n))) for n in range(self.args.tasks)
            )
            while not self.stop.is_set():
                await asyncio.sleep(0.1)
            _, hung = await asyncio.wait(pending, timeout=self.grace())
            for task in hung:  # counted as unanswered
                task.cancel()

        asyncio.run(main())

    def grace(self) -> float:
        """How long a call may still take once the soak ends before it counts as hung."""
        return 2 * self.args.budget + 30

    # Chaos

    def chaos_loop(self, seed: int) -> None:
        rng = random.Random(seed)
        deck: list[str] = []
        extension = None
        while not self.stop.wait(rng.expovariate(1 / self.args.chaos)):
            if not deck:  # every action once per round, in a random order
                deck = ["crash", "kill", "hang", "disable", "upgrade", "rescan"]
                rng.shuffle(deck)
            action = deck.pop()
            if extension is None or rng.random() >= 1 / 3:  # else the last one again: some reach quarantine
                extension = rng.choice(self.ids)
            self.actions[action] += 1
            self.chaos.start(action)
            started = time.perf_counter()
            try:
                self.act(action, extension)
            except BaseException as exc:
                self.chaos.done(started, exc)
            else:
                self.chaos.done(started)
            self.heal()
            couriers = [t.name for t in threading.enumerate() if t.name.endswith("-courier")]
            if len(couriers) > INSTRUMENTS and len(self.extra_threads) < 5:  # a hint of what leaves one
                self.extra_threads.append(f"after {action} of {extension}: {len(couriers)} batcher couriers")
            if action == "upgrade":
                running = self.host.inspect(extension)
                wanted = f"1.0.{self.site.versions[extension]}"
                if running.state is State.ACTIVE and running.version == wanted:
                    self.actions["upgrade: new release running"] += 1

    def act(self, action: str, extension: str) -> None:
        host = self.host
        if action == "crash":
            host.call(extension, "crash")
        elif action == "hang":
            host.call(extension, "hang", self.args.budget + 2)
        elif action == "kill":
            pids = self.worker_pids(extension)
            if pids:
                os.kill(random.choice(pids), signal.SIGKILL)
                self.actions["kill: a worker killed"] += 1
        elif action == "disable":
            host.disable(extension)
            time.sleep(0.2)
            host.enable(extension)
        elif action == "upgrade":
            self.site.upgrade(extension)
            host.discover(rescan=True)
        else:
            host.discover(rescan=True)

    def worker_pids(self, extension: str) -> list[int]:
        """The processes of the extension's workers, from its pool's status (the host keeps no public list)."""
        pool = getattr(self.host._slots.get(extension), "pool", None)
        return [] if pool is None else list(pool.status().pids)

    def heal(self) -> None:
        """Start every extension that is not active again, lifting a quarantine first."""
        for info in self.host.extensions():
            if info.state is State.ACTIVE or info.id not in self.site.extensions:
                continue
            self.chaos.start("restart")
            started = time.perf_counter()
            try:
                if (info.state is State.FAILED or not info.enabled) and self.host.enable(info.id):
                    self.actions["restart: quarantine lifted"] += 1
                if self.host.inspect(info.id).state is State.FAILED:  # a failed slot is made again
                    self.host.discover()
                self.start(info.id)
            except BaseException as exc:
                self.chaos.done(started, exc)
            else:
                self.chaos.done(started)


def run(args: Any, report: Report, folder: Path) -> None:
    site = Site(folder / "site")
    site.install_all()
    model = folder / "mlp.onnx"
    write_mlp(model, FEATURES, [64, 64, 4])
    home = folder / "home"

    prime()
    fds_before, processes_before, shm_before = open_fds(), len(descendants()), exchange_folders()
    threads_before = {thread.ident for thread in threading.enumerate()}
    made = time.perf_counter()
    host = Host(home, path=[str(site.folder), *sys.path], isolation="auto", call_budget=args.budget)
    host.discover()
    soak = Soak(host, site, args, model)
    for extension in soak.ids:
        soak.prepare(extension)
        soak.start(extension)
    tiers = collections.Counter(host.tier(e) for e in soak.ids)
    started_s = time.perf_counter() - made
    audit_from = max((r.seq for r in host.state.audit_log()), default=0)
    report.note(
        f"{len(soak.ids)} extensions ({OPERATORS} operators, {INSTRUMENTS} instruments, {MOTIFS} motifs) started"
        f" in {started_s:.1f} s, tiers {dict(tiers)}; {len(descendants())} processes below the host"
    )

    threads = [
        threading.Thread(target=soak.caller, args=(n,), name=f"caller-{n}") for n in range(args.threads)
    ]
    threads.append(threading.Thread(target=soak.async_callers, args=(100,), name="async-callers"))
    chaos = threading.Thread(target=soak.chaos_loop, args=(7,), name="chaos")
    samples: list[tuple[float, int, int, int]] = []  # seconds, host RSS KiB, workers' RSS KiB, host threads
    begin = time.perf_counter()
    for thread in [*threads, chaos]:
        thread.start()
    oldest_call = 0.0
    while (elapsed := time.perf_counter() - begin) < args.duration:
        workers = sum(rss_kib(pid) for pid in descendants())
        samples.append((elapsed, rss_kib(), workers, threading.active_count()))
        now = time.perf_counter()
        oldest_call = max([oldest_call, *(now - t for t in list(soak.inflight.values()))])
        time.sleep(0.5)
    soak.stop.set()
    stopping = time.perf_counter()
    for thread in [*threads, chaos]:
        thread.join(max(1.0, soak.grace() - (time.perf_counter() - stopping)))
    stuck = [thread.name for thread in [*threads, chaos] if thread.is_alive()]
    if stuck:
        frames = sys._current_frames()
        for thread in [*threads, chaos]:
            if thread.is_alive() and thread.ident in frames:
                report.note(
                    f"thread {thread.name} still running:\n"
                    + "".join(traceback.format_stack(frames[thread.ident]))
                )
    ran_s = time.perf_counter() - begin

    states = collections.Counter(str(info.state) for info in host.extensions() if info.id in site.extensions)
    audit = collections.Counter(r.event for r in host.state.audit_log(since_seq=audit_from))
    closing = threading.Thread(target=host.close, name="close")
    closed_at = time.perf_counter()
    closing.start()
    closing.join(120)
    close_s = time.perf_counter() - closed_at
    close_hung = closing.is_alive()
    left_at_close = descendants()
    waited = time.perf_counter()
    while descendants() and time.perf_counter() - waited < 10:
        time.sleep(0.1)
    left = descendants()
    fds_after, shm_after = open_fds(), exchange_folders()
    waited = time.perf_counter()  # the disk-quota thread ends on its next round once no worker is left
    while time.perf_counter() - waited < 5 and any(
        t.ident not in threads_before and not t.name.startswith("symphony-spawner")
        for t in threading.enumerate()
    ):
        time.sleep(0.1)
    threads_after = [thread for thread in threading.enumerate() if thread.ident not in threads_before]
    new_fds = sorted(set(fds_after.items()) - set(fds_before.items()))

    # Figures
    calls, chaos_tally = soak.calls, soak.chaos
    unanswered = calls.made - calls.answered - sum(calls.other.values())
    other = sum(calls.other.values()) + sum(chaos_tally.other.values())
    window = [s for s in samples if args.warmup <= s[0] < args.warmup + WINDOW_S]
    tail = [s for s in samples if s[0] >= samples[-1][0] - WINDOW_S]
    rss_warm = statistics.median(s[1] for s in window) / 1024
    rss_end = statistics.median(s[1] for s in tail) / 1024
    rss_peak = max(s[1] for s in samples if s[0] >= args.warmup) / 1024
    workers_end = statistics.median(s[2] for s in tail) / 1024
    threads_warm, threads_end = max(s[3] for s in window), max(s[3] for s in tail)
    p50 = statistics.median(calls.latencies) * 1000 if calls.latencies else float("nan")
    p99 = float(np.percentile(calls.latencies, 99) * 1000) if calls.latencies else float("nan")

    report.table(
        f"Calls: {args.threads} caller threads and {args.tasks} async tasks for {ran_s:.0f} s"
        f" (call budget {args.budget:g} s)",
        ("figure", "value"),
        [
            ("calls made", f"{calls.made:,}"),
            ("answered: result", f"{calls.ok:,}"),
            ("answered: SymphonyError", f"{sum(calls.errors.values()):,}"),
            ("raised something else", f"{sum(calls.other.values()):,}"),
            ("unanswered (hung)", f"{unanswered:,}"),
            ("calls per second", f"{calls.made / ran_s:,.0f}"),
            ("latency of results p50 / p99 (ms)", f"{p50:.2f} / {p99:.1f}"),
            ("longest call seen in flight (s)", f"{oldest_call:.1f}"),
        ],
    )
    report.table(
        "Errors by class (callers)",
        ("error", "count"),
        sorted(calls.errors.items(), key=lambda item: -item[1]) + sorted(calls.other.items()),
    )
    report.table(
        "Calls by method",
        ("method", "count"),
        sorted(calls.by_method.items()),
    )
    report.table(
        "Chaos: actions, and what the host answered the chaos thread",
        ("what", "count"),
        [
            *sorted(soak.actions.items()),
            ("host answered", chaos_tally.ok),
            *((f"raised {name}", count) for name, count in sorted(chaos_tally.errors.items())),
            *(
                (f"raised {name} (not a SymphonyError)", count)
                for name, count in sorted(chaos_tally.other.items())
            ),
        ],
    )
    report.table(
        "Workers and extensions (audit log of the soak)",
        ("what", "count"),
        [
            ("worker failures (crashed, timed out)", audit.get("worker_crashed", 0)),
            ("worker restarts", audit.get("worker_restarted", 0)),
            ("pools quarantined", audit.get("worker_quarantined", 0)),
            ("quarantines lifted (pool reset)", audit.get("worker_released", 0)),
            ("lifecycle moves", audit.get("lifecycle", 0)),
            ("extension states at the end", ", ".join(f"{k} {v}" for k, v in sorted(states.items()))),
        ],
    )
    report.table(
        f"Host RSS (MiB), sampled every 0.5 s; warm-up {args.warmup:g} s, medians over {WINDOW_S:g} s windows",
        ("figure", "value"),
        [
            ("after warm-up", f"{rss_warm:.1f}"),
            ("at the end", f"{rss_end:.1f}"),
            ("end / after warm-up", f"{rss_end / rss_warm:.3f}x"),
            ("peak after warm-up", f"{rss_peak:.1f}"),
            ("workers' RSS at the end (sum)", f"{workers_end:.0f}"),
            ("host threads after warm-up / at the end (most)", f"{threads_warm} / {threads_end}"),
        ],
    )
    report.table(
        "Leaks: before the host was made / after host.close()",
        ("figure", "before", "after", "leaked"),
        [
            ("open file descriptors", len(fds_before), len(fds_after), len(fds_after) - len(fds_before)),
            (
                "descendant processes (right after close)",
                processes_before,
                len(left_at_close),
                len(left_at_close),
            ),
            (
                "descendant processes (after up to 10 s)",
                processes_before,
                len(left),
                len(left) - processes_before,
            ),
            ("exchange folders in /dev/shm", shm_before, shm_after, shm_after - shm_before),
            ("threads", len(threads_before), len(threads_before) + len(threads_after), len(threads_after)),
            ("host.close() (s)", "", f"{close_s:.2f}", "hung" if close_hung else ""),
        ],
    )
    if new_fds or threads_after:
        report.note(
            "\nleft after close: "
            + ", ".join(
                [f"fd {fd} -> {what}" for fd, what in new_fds]
                + [f"thread {t.name} (daemon {t.daemon})" for t in threads_after]
            )
        )
    for name, text in {**calls.tracebacks, **chaos_tally.tracebacks}.items():
        report.note(f"\nfirst {name} raised:\n{text}")
    if soak.extra_threads:
        report.note("\nmore instrument batcher threads than instruments: " + "; ".join(soak.extra_threads))
    if stuck:
        report.note(f"threads still running after the grace period: {', '.join(stuck)}")

    report.figure("duration_s", ran_s)
    report.figure("start_s", started_s)
    report.figure(
        "calls",
        {
            "made": calls.made,
            "ok": calls.ok,
            "errors": dict(calls.errors),
            "other": dict(calls.other),
            "unanswered": unanswered,
            "by_method": dict(calls.by_method),
            "p50_ms": p50,
            "p99_ms": p99,
        },
    )
    report.figure(
        "chaos",
        {
            "actions": dict(soak.actions),
            "ok": chaos_tally.ok,
            "errors": dict(chaos_tally.errors),
            "other": dict(chaos_tally.other),
        },
    )
    report.figure("tracebacks", {**calls.tracebacks, **chaos_tally.tracebacks})
    report.figure("audit", dict(audit))
    report.figure("states_at_end", dict(states))
    report.figure(
        "rss_mib",
        {
            "after_warmup": rss_warm,
            "end": rss_end,
            "peak": rss_peak,
            "workers_end": workers_end,
            "samples_kib": [(round(t, 2), h, w) for t, h, w, _ in samples],
            "threads": [n for *_, n in samples],
        },
    )
    report.figure(
        "fds",
        {
            "before": len(fds_before),
            "after": len(fds_after),
            "new": [f"{fd} -> {what}" for fd, what in new_fds],
        },
    )
    report.figure(
        "descendants", {"before": processes_before, "at_close": len(left_at_close), "after": len(left)}
    )
    report.figure("exchange_folders", {"before": shm_before, "after": shm_after})
    report.figure(
        "threads", {"before": len(threads_before), "new": [t.name for t in threads_after], "stuck": stuck}
    )
    report.figure("close_s", close_s)

    report.budget("calls unanswered", unanswered + len(stuck), 0, "calls")
    report.budget("raised something other than a SymphonyError", other, 0, "calls")
    report.budget("descendant processes left after close", len(left) - processes_before, 0, "processes")
    report.budget("file descriptors left after close", len(fds_after) - len(fds_before), 0, "fds")
    report.budget("host RSS end / after warm-up", rss_end / rss_warm, RSS_GROWTH, "x")


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds of load (quick 20, full 200)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up within them (quick 6, full 40)")
    parser.add_argument("--threads", type=int, default=4, help="caller threads (default 4)")
    parser.add_argument("--tasks", type=int, default=8, help="async tasks calling acall (default 8)")
    parser.add_argument("--chaos", type=float, default=0.5, help="mean seconds between chaos actions")
    parser.add_argument("--budget", type=float, default=3.0, help="the host's call budget in seconds")
    args = parser.parse_args()
    args.duration = args.duration or (20.0 if args.quick else 200.0)
    args.warmup = args.warmup if args.warmup is not None else (6.0 if args.quick else 40.0)
    report = Report("soak", args)
    with tempfile.TemporaryDirectory() as temporary:
        run(args, report, Path(temporary))
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
