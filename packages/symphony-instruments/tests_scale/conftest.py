"""A real single-node Ray cluster on 127.0.0.1 for the whole session, and the digits example served on it.

The cluster is started with Ray's own CLI (bounded CPUs and memory, no dashboard, no usage stats, free
ports) and always stopped with ``ray stop --force``. Test-only instruments are installed into a folder
on the cluster's ``PYTHONPATH`` before it starts, so its replicas find them through their entry points as
they find the installed digits example.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from symphony_core import write_distribution

BIN = Path(sys.executable).parent
DIGITS = "examples.digits"
CRASHER = "tests.crasher"
DIGITS_CONTRIBUTES = """
[contributes]
inputs = [{ name = "pixels", dtype = "float32", shape = ["batch", 64] }]
outputs = [
  { name = "label", dtype = "int64", shape = ["batch"] },
  { name = "probabilities", dtype = "float32", shape = ["batch", 10] },
]
"""


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every probe stays bound until all are chosen, so the kernel cannot
    hand the same port out twice (Ray refuses to start when two of its components share one)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@dataclass
class Cluster:
    """A running Ray cluster: its address, the environment its commands run with, and its test site."""

    address: str
    env: dict[str, str]
    site: Path
    http_port: int
    """Ray Serve's HTTP proxy, shared by every deployment on the cluster."""

    def symphony(
        self, *args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``symphony`` command against this cluster, as a person would (``env`` added)."""
        env = {**self.env, **(env or {}), "SYMPHONY_HOME": str(home), "RAY_ADDRESS": self.address}
        return subprocess.run(
            [str(BIN / "symphony"), *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def stop(self) -> None:
        """Stop every process of the cluster, as ``ray stop --force`` does (the session's end does it again)."""
        stopped = subprocess.run(
            [str(BIN / "ray"), "stop", "--force"], env=self.env, capture_output=True, timeout=120
        )
        assert stopped.returncode == 0, stopped.stderr

    def serve(self, extension: str, *args: str, home: Path, env: dict[str, str] | None = None) -> str:
        """Grant ``extension`` what stays in its own folders, deploy it; return its server's URL."""
        granted = self.symphony("grant", extension, "--yes", home=home)
        assert granted.returncode == 0, granted.stderr
        deployed = self.symphony("serve", extension, "--port", str(self.http_port), *args, home=home, env=env)
        assert deployed.returncode == 0, deployed.stderr + deployed.stdout
        url = deployed.stdout.strip().splitlines()[-1]
        assert url == f"http://127.0.0.1:{self.http_port}"
        wait_ready(url, extension)
        return url


CRASHER_MODULE = '''
"""Doubles its input, and ends its own process on an input of -1: a replica that dies mid-request."""

import os

import numpy as np

from symphony_instruments import Instrument, InstrumentConfig


class Crasher(Instrument[InstrumentConfig]):
    def predict(self, batch):
        values = batch["x"]
        if (values == -1).any():
            os._exit(3)
        return {"y": (values * 2).astype(np.float32)}
'''

CRASHER_MANIFEST = """
id = "tests.crasher"
kind = "instrument"
name = "Crasher"
summary = "Doubles its input; exits its process on -1."
targets = "symphony-instruments>=0.1,<0.2"
config = "symphony_instruments:InstrumentConfig"  # batching and serving, as every instrument's

[contributes]
inputs = [{ name = "x", dtype = "float32", shape = ["batch", 2] }]
outputs = [{ name = "y", dtype = "float32", shape = ["batch", 2] }]
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stops_cluster: stops the session's Ray cluster (runs last)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that stop the session's cluster run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("stops_cluster") is not None)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A single-node Ray cluster on 127.0.0.1: 2 CPUs, bounded memory, stopped whatever happens."""
    root = Path(tempfile.mkdtemp(prefix="sy-ray-"))  # Ray's socket paths must stay short
    site = root / "site"
    site.mkdir()
    write_distribution(
        site,
        "symphony-tests-crasher",
        files={
            "symphony_tests_crasher/__init__.py": textwrap.dedent(CRASHER_MODULE).lstrip(),
            "symphony_tests_crasher/symphony.toml": textwrap.dedent(CRASHER_MANIFEST).lstrip(),
        },
        entry_points={"symphony.instruments": {CRASHER: "symphony_tests_crasher:Crasher"}},
        requires=["symphony-instruments>=0.1,<0.2"],
    )
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_DEDUP_LOGS": "0",
    }
    env.pop("RAY_ADDRESS", None)
    port, dashboard, client, node, objects, agent, agent_grpc, metrics, runtime_env, http = free_ports(10)
    start = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        f"--memory={3 * 2**30}",
        f"--object-store-memory={256 * 2**20}",
        "--disable-usage-stats",
        "--include-dashboard=false",
        f"--dashboard-port={dashboard}",
        f"--ray-client-server-port={client}",
        f"--node-manager-port={node}",
        f"--object-manager-port={objects}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--temp-dir={root / 'ray'}",
    ]
    try:
        started = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
        assert started.returncode == 0, f"ray start failed:\n{started.stdout}\n{started.stderr}"
        yield Cluster(address=f"127.0.0.1:{port}", env=env, site=site, http_port=http)
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``SYMPHONY_HOME`` of the person who deploys the digits example."""
    return tmp_path_factory.mktemp("deployer")


@pytest.fixture(scope="session")
def digits_url(cluster: Cluster, served_home: Path) -> str:
    """The digits example served by ``symphony serve`` on the cluster: 2 replicas of half a CPU each (its
    config, from an environment variable), so other deployments fit on the 2 CPUs beside it."""
    cpus = {"SYMPHONY_EXAMPLES_DIGITS__SERVING__CPUS": "0.5"}
    return cluster.serve(DIGITS, "--replicas", "2", home=served_home, env=cpus)


def wait_ready(url: str, model: str, timeout: float = 120) -> None:
    """Wait until the model's server answers that it is ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/v2/models/{model}/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{model} at {url} was not ready within {timeout} s")
        time.sleep(0.5)
