"""Instruments on Ray Serve: per-request overhead and throughput against the in-process batcher, scaling
from one replica to two, and RemoteInstrument against a bare httpx client, on a real single-node Ray
cluster on 127.0.0.1 (2 CPUs).

One MLP (16 features, four hidden layers of 1,024, 10 outputs: about 3.2M multiply-adds an item, CPU-bound
in onnxruntime with one intra-op thread per replica; its 13 MB of weights fit, for two replicas, in this
machine's L3 cache, so two replicas do not compete for memory bandwidth). The cluster runs with Ray Serve's request-path
settings for throughput (``SERVE_TUNING``: user code on the replica's own loop, buffered request logs),
as the scaling-out guide recommends. Two loads, each figure beside its baseline from the
same run:

- **one item per call** (one caller, then CLIENTS concurrent callers): the in-process batcher, then ``symphony serve``
  with 1 replica (and 2 in a full run) called over HTTP by as many httpx callers: what a request's trip through Ray
  Serve costs (p50, p99, throughput);
- **batches** (BATCH_CLIENTS callers sending BATCH items per request): 1 replica, then 2, each with one
  CPU: the model's run dominates, so 2 replicas should give at least 1.6x one replica's items per second;
- `RemoteInstrument` in a host against the 1-replica deployment, right after the bare client, at the
  first load with its batcher set to one item per request (what it adds to a bare client: at least 0.9x its throughput), and with its
  batcher on (up to BATCH items per request: what batching across callers gives).

Needs the instruments kit's `ray` extra: ``hatch run bench-scale:run [--quick]``. The cluster is stopped
with ``ray stop --force`` at the end.
"""

from __future__ import annotations

import asyncio
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
BATCH_CLIENTS, BATCH = 4, 256
BIN = Path(sys.executable).parent
SERVE_TUNING = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_LOG_TO_STDERR": "0",
}
"""Ray Serve's request-path settings for throughput, given to the cluster when it starts."""
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


async def load(call: Any, seconds: float, clients: int = CLIENTS, items: int = 1) -> tuple[float, Stat]:
    """``clients`` callers sending ``items`` items each, back to back, after a shorter warm-up: items
    per second and the latencies of the calls."""
    item = np.random.default_rng(0).standard_normal((items, FEATURES)).astype(np.float32)
    latencies: list[int] = []

    async def client(stop: float) -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter_ns()
            await call(item)
            latencies.append(time.perf_counter_ns() - started)

    for span in (seconds / 2, seconds):  # a warm-up round, then the measured one
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(client(began + span) for _ in range(clients)))
    return items * len(latencies) / (time.perf_counter() - began), Stat.of_ns(latencies)


def p99(stat: Stat) -> float:
    return float(np.percentile(stat.samples, 99))


async def over_http(url: str, seconds: float, clients: int = CLIENTS, items: int = 1) -> tuple[float, Stat]:
    """The deployment called by a bare httpx client: what any client of the protocol does (post the
    inputs, read the outputs)."""
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_connections=clients)
    ) as client:

        async def call(item: np.ndarray[Any, Any]) -> None:
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "shape": list(item.shape),
                        "datatype": "FP32",
                        "data": item.ravel().tolist(),
                    }
                ]
            }
            answer = await client.post(f"/v2/models/{MODEL}/infer", json=body)
            answer.raise_for_status()
            for tensor in answer.json()["outputs"]:  # what any client does with the answer
                np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])

        return await load(call, seconds, clients, items)


def main() -> int:
    parser = options(__doc__.splitlines()[0])
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
    (home / "config" / f"{MODEL}.toml").write_text(
        f'path = "{model}"\nintra_op_threads = 1\n[batching]\nmax_batch_size = 32\n'
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
                if replicas == 1:  # the bare client and RemoteInstrument, back to back on one deployment
                    served_alone = asyncio.run(over_http(url, seconds, 1))
                    single[1] = asyncio.run(over_http(url, seconds))
                    for ident in (REMOTE, BATCHED):
                        host.start(ident)
                        remote[ident] = asyncio.run(
                            load(
                                lambda item, ident=ident: host.acall(ident, "infer", {"input": item}), seconds
                            )
                        )
                elif not args.quick:
                    single[2] = asyncio.run(over_http(url, seconds))
                batched[replicas] = asyncio.run(over_http(url, seconds, BATCH_CLIENTS, BATCH))
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
    report.table(
        f"{BATCH_CLIENTS} clients, {BATCH} items per request, over HTTP",
        ("replicas", "items/s", "p50 ms", "p99 ms", "vs 1 replica"),
        [
            (n, f"{rate:,.0f}", f"{stat.median:.2f}", f"{p99(stat):.2f}", f"{rate / batched[1][0]:.2f}x")
            for n, (rate, stat) in batched.items()
        ],
    )
    for key, (rate, stat) in {
        "in_process": local,
        **{f"serve_{n}": figures for n, figures in single.items()},
        "serve_1_batches": batched[1],
        "serve_2_batches": batched[2],
        "remote_1": remote[REMOTE],
        "remote_1_batched": remote[BATCHED],
    }.items():
        report.figure(f"{key}.items_per_s", rate)
        report.figure(f"{key}.latency_ms", stat)
        report.figure(f"{key}.p99_ms", p99(stat))
    report.budget(
        f"2 replicas / 1 replica, items/s, {BATCH} items a request",
        batched[2][0] / batched[1][0],
        1.6,
        "x",
        at_least=True,
    )
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
    return report.finish()


if __name__ == "__main__":
    raise SystemExit(main())
