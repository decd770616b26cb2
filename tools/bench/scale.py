"""Instruments on Ray Serve: per-request overhead and throughput against the in-process batcher, scaling
from one replica to two, and RemoteInstrument against a bare httpx client, on a real single-node Ray
cluster on 127.0.0.1 (2 CPUs).

One MLP (16 features, four hidden layers of 1,024, 10 outputs: about 3.2M multiply-adds an item, CPU-bound
in onnxruntime with one intra-op thread per replica; its 13 MB of weights fit, for two replicas, in this
machine's L3 cache, so two replicas do not compete for memory bandwidth), batched up to LARGE items a
run. The cluster runs with Ray Serve's request-path settings for throughput (``SERVE_TUNING``: user code
on the replica's own loop, buffered request logs), as the scaling-out guide recommends. Every bare client
sends and reads tensors as the protocol's binary tensor data, as `RemoteInstrument` does with a server
that speaks it. The loads, each figure beside its baseline from the same run:

- **one item per call** (one caller, then CLIENTS concurrent callers): the in-process batcher, then ``symphony serve``
  with 1 replica (and 2 in a full run) called over HTTP by as many httpx callers: what a request's trip through Ray
  Serve costs (p50, p99, throughput);
- **batches** (BATCH_CLIENTS callers sending BATCH items per request, then twice as many sending LARGE,
  over a window four times as long, as each request takes about a second): 1 replica, then 2, each
  with one CPU. On two cores the client, Ray Serve's proxy and the replicas share the same cores, and at
  BATCH items Ray Serve's fixed cost per request (about 12 ms of proxy and replica CPU) and the client's
  are about the model's own (reported); at LARGE items the model's run dominates, as in a deployment
  sized for its model, so 2 replicas should give at least 1.6x one replica's items per second (budget);
- `RemoteInstrument` in a host against the 1-replica deployment, in turns with the bare client (four
  each with --quick's short windows, else two), at the first load with its batcher set to one item per
  request (what it adds to a bare client: at least 0.9x its throughput), and with its batcher on (up to
  BATCH items per request: what batching across callers gives).

Needs the instruments kit's `ray` extra: ``hatch run bench-scale:run [--quick]``. The cluster is stopped
with ``ray stop --force`` at the end. ``--profile-cpu`` (Linux) also prints, for each batches load, the
CPU time every process on the machine spent in it (client, proxy, replicas and their busiest threads, Ray's
own processes, any other work), per request and in cores: where the two cores go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _common import Report, Stat, options
from _models import write_mlp

from symphony_core import Host, write_distribution

FEATURES, LAYERS = 16, (1024, 1024, 1024, 1024, 10)
MODEL = "bench.scale-mlp"
REMOTE = "bench.scale-remote"
BATCHED = "bench.scale-remote-batched"
CLIENTS = 16
BATCH_CLIENTS, BATCH, LARGE = 4, 256, 4096
BIN = Path(sys.executable).parent
SERVE_TUNING = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_LOG_TO_STDERR": "0",
}
"""Ray Serve's request-path settings for throughput, given to the cluster when it starts."""
HEADER = "Inference-Header-Content-Length"
"""The binary tensor data extension's header: the length of the JSON before the tensors' bytes."""
MANIFEST = """
id = "{id}"
kind = "instrument"
name = "Scale benchmark"
summary = "An MLP for the scale benchmark."
targets = "symphony-instruments>=0.1,<0.2"
config = "{config}"
{permissions}
[contributes]
inputs = [{{ name = "input", dtype = "float32", shape = ["batch", {features}] }}]
outputs = [{{ name = "output", dtype = "float32", shape = ["batch", 10] }}]
"""


def _port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def install(site: Path, model: Path, serve_port: int) -> None:
    net = f'[[permissions]]\ntype = "net.connect"\nhosts = ["127.0.0.1:{serve_port}"]\nreason = "its model"\n'
    read = f'[[permissions]]\ntype = "fs.read"\npaths = ["{model}"]\nreason = "its model"\n'
    for ident, config, permissions, point in (
        (MODEL, "symphony_instruments:ModelConfig", read, "symphony_instruments:OnnxInstrument"),
        (REMOTE, "symphony_instruments:RemoteConfig", net, "symphony_instruments:RemoteInstrument"),
        (BATCHED, "symphony_instruments:RemoteConfig", net, "symphony_instruments:RemoteInstrument"),
    ):
        package = ident.replace(".", "_").replace("-", "_")
        text = MANIFEST.format(id=ident, config=config, permissions=permissions, features=FEATURES)
        write_distribution(
            site,
            ident.replace(".", "-"),
            files={
                f"{package}/__init__.py": f"from {point.split(':')[0]} import {point.split(':')[1]} as Entry\n",
                f"{package}/symphony.toml": textwrap.dedent(text).lstrip(),
            },
            entry_points={"symphony.instruments": {ident: f"{package}:Entry"}},
            requires=["symphony-instruments>=0.1,<0.2"],
        )


class CpuProfile:
    """``--profile-cpu``: the CPU time every process on this machine spends during each measured window
    (utime + stime of all its threads, ``/proc/PID/stat``), grouped by what the process is, with the
    time its threads waited for a core (``schedstat``) and the busiest threads of the request path.

    A process is the benchmark's when its environment holds this run's ``SYMPHONY_HOME`` (Ray's processes
    inherit it from ``ray start``), its command line names this run's directory, or its parent is the
    benchmark's; the others are other work on the machine, sharing its cores with the benchmark.
    Processes that start and end inside a window are seen only in the machine's total (``/proc/stat``)."""

    TICK = os.sysconf("SC_CLK_TCK")
    PATH = ("ray::ServeReplica", "ray::ProxyActor", "bench client", "symphony")
    """The processes whose busiest threads are listed."""

    def __init__(self, home: Path) -> None:
        self.marker, self.root = f"SYMPHONY_HOME={home}\0".encode(), str(home.parent)
        self.windows: dict[str, tuple[float, dict[int, Any], dict[int, Any], dict[str, float]]] = {}

    @staticmethod
    def _name(pid: int, cmdline: list[str]) -> str:
        if pid == os.getpid():
            return "bench client (this process)"
        if not cmdline:
            return "kernel threads"
        head = cmdline[0].split()[0]
        if head.startswith("ray::"):
            return f"{head} [{pid}]" if head.startswith("ray::ServeReplica") else head
        base = Path(head).name
        words = [Path(arg).name for arg in cmdline[1:] if not arg.startswith("-") and "\n" not in arg]
        if "symphony" in " ".join(cmdline):
            return f"symphony: {base} {' '.join(words[:1])}".strip()
        if base.startswith("python"):
            return f"python {' '.join(words[:1])}".strip()
        return base

    @staticmethod
    def _stat(path: Path) -> tuple[float, int, int]:
        """CPU seconds (user and system), nice value and parent of a process or thread."""
        text = (path / "stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CpuProfile.TICK, int(fields[16]), int(fields[1])

    @classmethod
    def _threads(cls, pid: int) -> dict[int, tuple[str, float, float]]:
        """Each thread: its name, CPU seconds and seconds spent waiting for a core."""
        threads = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                comm = (task / "comm").read_text().strip()
                wait = int((task / "schedstat").read_text().split()[1]) / 1e9
                threads[int(task.name)] = (comm, cls._stat(task)[0], wait)
            except (OSError, ValueError, IndexError):
                continue
        return threads

    def sample(self) -> dict[int, tuple[str, bool, tuple[float, int], dict[int, tuple[str, float, float]]]]:
        """Each process: its name, whether it is the benchmark's (or a descendant of one), its CPU seconds
        and nice value, its threads."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                cmdline = [
                    arg
                    for arg in (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                    if arg
                ]
                marked = (
                    pid == os.getpid()
                    or self.marker in (entry / "environ").read_bytes()
                    or any(self.root in arg for arg in cmdline)
                )
                cpu, nice, parent = self._stat(entry)
                found[pid] = (self._name(pid, cmdline), marked, (cpu, nice), self._threads(pid), parent)
            except OSError:
                continue

        def ours(pid: int, depth: int = 0) -> bool:
            process = found.get(pid)
            return process is not None and (process[1] or (depth < 8 and ours(process[4], depth + 1)))

        return {pid: (name, ours(pid), cpu, threads) for pid, (name, _, cpu, threads, _) in found.items()}

    @staticmethod
    def _machine() -> dict[str, float]:
        """CPU seconds of the whole machine, all cores, by kind (``/proc/stat``)."""
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        kinds = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        return {kind: value / CpuProfile.TICK for kind, value in zip(kinds, values, strict=True)}

    @contextlib.contextmanager
    def window(self, label: str) -> Any:
        machine, before = self._machine(), self.sample()
        began = time.perf_counter()
        yield
        wall = time.perf_counter() - began
        after, machine_after = self.sample(), self._machine()
        self.windows[label] = (wall, before, after, {k: machine_after[k] - machine[k] for k in machine})

    def tables(self, report: Report, label: str, requests: int, items: int) -> None:
        wall, before, after, machine = self.windows[label]
        idle = machine["idle"] + machine["iowait"]
        busy = sum(machine.values()) - idle
        groups: dict[str, list[Any]] = {}
        threads: list[tuple[float, float, str, str]] = []
        totals = {True: 0.0, False: 0.0}
        for pid, (name, ours, (cpu, nice), tasks) in after.items():
            old = before.get(pid)
            old_tasks = old[3] if old else {}
            used = cpu - (old[2][0] if old else 0.0)
            waited = sum(t[2] - old_tasks.get(tid, ("", 0.0, 0.0))[2] for tid, t in tasks.items())
            totals[ours] += used
            group = groups.setdefault(
                name if ours else f"(not the benchmark) {name}", [0.0, 0.0, 0, 0, set()]
            )
            group[0] += used
            group[1] += waited
            group[2] += 1
            group[3] += len(tasks)
            group[4].add(nice)
            if ours and name.startswith(self.PATH):
                rest = [0.0, 0.0, 0]
                for tid, (comm, tcpu, twait) in tasks.items():
                    prior = old_tasks.get(tid, ("", 0.0, 0.0))
                    if tcpu - prior[1] >= 0.02 * wall:
                        threads.append((tcpu - prior[1], twait - prior[2], name, f"{comm} [{tid}]"))
                    else:
                        rest[0] += tcpu - prior[1]
                        rest[1] += twait - prior[2]
                        rest[2] += 1
                threads.append((rest[0], rest[1], name, f"{rest[2]} other threads"))

        def row(name: str, used: float, waited: str = "", count: str = "", nice: str = "") -> tuple[str, ...]:
            cores, per_request = f"{used / wall:.2f}", f"{1000 * used / requests:.1f}"
            return (name, count, nice, f"{used:.2f}", cores, per_request, waited)

        rows = [
            row(name, used, f"{waited:.2f}", f"{count}/{tasks}", ",".join(map(str, sorted(nices))))
            for name, (used, waited, count, tasks, nices) in sorted(groups.items(), key=lambda kv: -kv[1][0])
            if used >= 0.005 * wall or waited >= 0.05 * wall
        ]
        rows += [
            row("= the benchmark's processes", totals[True]),
            row("= other processes", totals[False]),
            row("= processes that came and went (machine - both)", busy - totals[True] - totals[False]),
            row("machine busy (/proc/stat)", busy),
            *(
                row(f"  of which {kind}", machine[kind])
                for kind in ("user", "nice", "system", "softirq", "steal")
            ),
            row("machine idle (/proc/stat)", idle),
        ]
        report.table(
            f"CPU during '{label}': {wall:.2f} s wall, {requests} requests of {items} items, "
            f"{os.cpu_count()} cores ('cores': CPU s / wall s)",
            ("process", "procs/threads", "nice", "CPU s", "cores", "CPU ms/request", "waited for a core s"),
            rows,
        )
        report.table(
            f"Busiest threads of the request path during '{label}'",
            ("process", "thread", "CPU s", "cores", "CPU ms/request", "waited for a core s"),
            [
                (name, thread, *row("", used, f"{waited:.2f}")[3:])
                for used, waited, name, thread in sorted(threads, key=lambda t: (t[2], -t[0]))
            ],
        )


async def load(
    call: Any,
    seconds: float,
    clients: int = CLIENTS,
    items: int = 1,
    window: Any = contextlib.nullcontext,
) -> tuple[float, Stat]:
    """``clients`` callers sending ``items`` items each, back to back, after a shorter warm-up: items
    per second and the latencies of the calls; ``window`` wraps the measured round (``--profile-cpu``)."""
    item = np.random.default_rng(0).standard_normal((items, FEATURES)).astype(np.float32)
    latencies: list[int] = []

    async def client(stop: float) -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter_ns()
            await call(item)
            latencies.append(time.perf_counter_ns() - started)

    # a warm-up round, then the measured one
    for span, measured in ((seconds / 2, contextlib.nullcontext), (seconds, window)):
        latencies.clear()
        with measured():
            began = time.perf_counter()
            await asyncio.gather(*(client(began + span) for _ in range(clients)))
            elapsed = time.perf_counter() - began
    return items * len(latencies) / elapsed, Stat.of_ns(latencies)


def _mean_rate(turns: list[tuple[float, Stat]]) -> tuple[float, Stat]:
    """The mean rate of several turns of one load, and their latencies together."""
    samples = tuple(sample for _, stat in turns for sample in stat.samples)
    return sum(rate for rate, _ in turns) / len(turns), Stat(samples)


def p99(stat: Stat) -> float:
    return float(np.percentile(stat.samples, 99))


async def over_http(
    url: str, seconds: float, clients: int = CLIENTS, items: int = 1, window: Any = contextlib.nullcontext
) -> tuple[float, Stat]:
    """The deployment called by a bare httpx client: what any client of the protocol does (post the
    inputs, read the outputs), with the protocol's binary tensor data, as Triton's clients send it."""
    async with httpx.AsyncClient(
        base_url=url, timeout=120, limits=httpx.Limits(max_connections=clients)
    ) as client:

        async def call(item: np.ndarray[Any, Any]) -> None:
            data = np.ascontiguousarray(item, "<f4").tobytes()
            tensor = {"name": "input", "shape": list(item.shape), "datatype": "FP32"}
            head = json.dumps(
                {
                    "inputs": [{**tensor, "parameters": {"binary_data_size": len(data)}}],
                    "parameters": {"binary_data_output": True},
                }
            ).encode()
            answer = await client.post(
                f"/v2/models/{MODEL}/infer",
                content=head + data,
                headers={"content-type": "application/octet-stream", HEADER: str(len(head))},
            )
            answer.raise_for_status()
            split = int(answer.headers[HEADER])  # what any client does with the answer: read its outputs
            at = split
            for output in json.loads(answer.content[:split])["outputs"]:
                size = output["parameters"]["binary_data_size"]
                np.frombuffer(answer.content[at : at + size], "<f4").reshape(output["shape"])
                at += size

        return await load(call, seconds, clients, items, window)


def main() -> int:
    parser = options(__doc__.splitlines()[0])
    parser.add_argument(
        "--profile-cpu",
        action="store_true",
        help="print the CPU time of every process on this machine during each batches load (Linux /proc)",
    )
    args = parser.parse_args()
    report = Report("scale", args)
    seconds = 2.0 if args.quick else 6.0
    root = Path(tempfile.mkdtemp(prefix="sy-bench-"))
    site, home = root / "site", root / "home"
    model = root / "mlp.onnx"
    report.figure("model_parameters", write_mlp(model, FEATURES, LAYERS))
    serve_port = _port()
    install(site, model, serve_port)
    home.mkdir()
    (home / "config").mkdir()
    profile = CpuProfile(home) if args.profile_cpu else None
    (home / "config" / f"{MODEL}.toml").write_text(
        f'path = "{model}"\nintra_op_threads = 1\n[batching]\nmax_batch_size = {LARGE}\n'
    )
    for ident, batch in ((REMOTE, 1), (BATCHED, BATCH)):  # as many requests in flight as the bare client
        (home / "config" / f"{ident}.toml").write_text(
            f'url = "http://127.0.0.1:{serve_port}"\nmodel = "{MODEL}"\n'
            f"[batching]\nmax_batch_size = {batch}\nin_flight = {CLIENTS}\n"
        )
    (home / "policy.toml").write_text('[[trust]]\ndistribution = "bench-scale-mlp"\n')
    env = {
        **os.environ,
        **SERVE_TUNING,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "SYMPHONY_HOME": str(home),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    sys.path.insert(0, str(site))
    ray_port = _port()
    address = f"127.0.0.1:{ray_port}"
    env["RAY_ADDRESS"] = address
    subprocess.run(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={ray_port}",
            "--num-cpus=2",
            f"--memory={3 * 2**30}",
            f"--object-store-memory={256 * 2**20}",
            "--disable-usage-stats",
            "--include-dashboard=false",
            f"--temp-dir={root / 'ray'}",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    try:
        symphony = [str(BIN / "symphony")]
        subprocess.run(
            [*symphony, "grant", MODEL, "--all", "--yes"], env=env, check=True, capture_output=True
        )
        with Host(home, isolation="none") as host:
            host.discover()
            host.start(MODEL)
            local = asyncio.run(load(lambda item: host.acall(MODEL, "infer", {"input": item}), seconds))
            alone = asyncio.run(load(lambda item: host.acall(MODEL, "infer", {"input": item}), seconds, 1))
        single: dict[int, tuple[float, Stat]] = {}
        batched: dict[int, tuple[float, Stat]] = {}
        large: dict[int, tuple[float, Stat]] = {}
        remote: dict[str, tuple[float, Stat]] = {}
        url = f"http://127.0.0.1:{serve_port}"
        with Host(home, isolation="guard") as host:
            host.discover()
            for ident in (REMOTE, BATCHED):
                host.grant(ident)
            for replicas in (1, 2):
                subprocess.run(
                    [*symphony, "serve", MODEL, "--replicas", str(replicas), "--port", str(serve_port)],
                    env=env,
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
                if replicas == 1:  # the bare client and RemoteInstrument, in turns on one deployment
                    served_alone = asyncio.run(over_http(url, seconds, 1))
                    for ident in (REMOTE, BATCHED):
                        host.start(ident)
                    turns: dict[str, list[tuple[float, Stat]]] = {"bare": [], REMOTE: [], BATCHED: []}
                    for _ in range(4 if args.quick else 2):  # turns: one noisy window weighs little
                        turns["bare"].append(asyncio.run(over_http(url, seconds)))
                        for ident in (REMOTE, BATCHED):
                            turns[ident].append(
                                asyncio.run(
                                    load(
                                        lambda item, ident=ident: host.acall(ident, "infer", {"input": item}),
                                        seconds,
                                    )
                                )
                            )
                    single[1] = _mean_rate(turns["bare"])
                    remote = {ident: _mean_rate(turns[ident]) for ident in (REMOTE, BATCHED)}
                elif not args.quick:
                    single[2] = asyncio.run(over_http(url, seconds))
                batched[replicas] = asyncio.run(over_http(url, seconds, BATCH_CLIENTS, BATCH))
                label = f"{replicas} replica{'s' * (replicas > 1)}, {LARGE} items a request"
                window = (
                    contextlib.nullcontext if profile is None else lambda label=label: profile.window(label)
                )
                large[replicas] = asyncio.run(over_http(url, 4 * seconds, 2 * BATCH_CLIENTS, LARGE, window))
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
    local_rate = local[0]
    rows = [
        ("in-process batcher (baseline)", *local, "1.00x"),
        *(
            (f"Ray Serve, {n} replica{'s' * (n > 1)}", *single[n], f"{single[n][0] / local_rate:.2f}x")
            for n in sorted(single)
        ),
        (
            "RemoteInstrument, one item a request -> 1",
            *remote[REMOTE],
            f"{remote[REMOTE][0] / local_rate:.2f}x",
        ),
        (
            f"RemoteInstrument, batches of up to {BATCH} -> 1",
            *remote[BATCHED],
            f"{remote[BATCHED][0] / local_rate:.2f}x",
        ),
    ]
    report.table(
        f"{CLIENTS} clients, one item per call, MLP {'-'.join(map(str, (FEATURES, *LAYERS)))}, 1 intra-op thread",
        ("path", "items/s", "p50 ms", "p99 ms", "vs in-process"),
        [
            (name, f"{rate:,.0f}", f"{stat.median:.2f}", f"{p99(stat):.2f}", vs)
            for name, rate, stat, vs in rows
        ],
    )
    for clients, size, figures in ((BATCH_CLIENTS, BATCH, batched), (2 * BATCH_CLIENTS, LARGE, large)):
        report.table(
            f"{clients} clients, {size} items per request, over HTTP",
            ("replicas", "items/s", "p50 ms", "p99 ms", "vs 1 replica"),
            [
                (n, f"{rate:,.0f}", f"{stat.median:.2f}", f"{p99(stat):.2f}", f"{rate / figures[1][0]:.2f}x")
                for n, (rate, stat) in figures.items()
            ],
        )
    for key, (rate, stat) in {
        "in_process": local,
        **{f"serve_{n}": figures for n, figures in single.items()},
        "serve_1_batches": batched[1],
        "serve_2_batches": batched[2],
        "serve_1_large": large[1],
        "serve_2_large": large[2],
        "remote_1": remote[REMOTE],
        "remote_1_batched": remote[BATCHED],
    }.items():
        report.figure(f"{key}.items_per_s", rate)
        report.figure(f"{key}.latency_ms", stat)
        report.figure(f"{key}.p99_ms", p99(stat))
    report.budget(
        f"2 replicas / 1 replica, items/s, {LARGE} items a request",
        large[2][0] / large[1][0],
        1.6,
        "x",
        at_least=True,
    )
    report.figure("scaling_at_batch", batched[2][0] / batched[1][0])
    report.budget(
        "RemoteInstrument / bare httpx, items/s, one item a request",
        remote[REMOTE][0] / single[1][0],
        0.9,
        "x",
        at_least=True,
    )
    report.table(
        "One caller, one item per call: what a request's trip through Ray Serve adds",
        ("path", "p50 ms", "p99 ms"),
        [
            ("in-process batcher (baseline)", f"{alone[1].median:.2f}", f"{p99(alone[1]):.2f}"),
            (
                "Ray Serve, 1 replica, bare httpx",
                f"{served_alone[1].median:.2f}",
                f"{p99(served_alone[1]):.2f}",
            ),
            ("added by Ray Serve and HTTP", f"{served_alone[1].median - alone[1].median:+.2f}", ""),
        ],
    )
    report.figure("one_caller.in_process_ms", alone[1])
    report.figure("one_caller.serve_1_ms", served_alone[1])
    report.figure("one_caller.added_p50_ms", served_alone[1].median - alone[1].median)
    if profile is not None:
        for n, label in zip(large, profile.windows, strict=True):
            profile.tables(report, label, len(large[n][1].samples), LARGE)
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
