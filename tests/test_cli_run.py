"""``symphony run ID ...`` on the installed examples, each kind in its own language: an operator on data
files and standard input, an instrument on JSON and ``.npy`` input, a motif served to a browser.

Each command runs in a process of its own with a fresh ``SYMPHONY_HOME``, in the tier a host chooses
(the examples are not trusted, so isolated where this machine can).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.datasets import load_digits

FLIGHTS = pl.DataFrame(
    {
        "origin": ["JFK", "JFK", "EWR", "LGA"],
        "dest": ["LAX", "LAX", "SFO", "ORD"],
        "dep_delay": [1.5, 3.5, 0.0, -4.0],
        "arr_delay": [2.0, 4.0, 1.0, -6.0],
        "tail": ["N1", "N2", "N3", "N4"],
    }
)


def route_delays(frame: pl.DataFrame) -> pl.DataFrame:
    """What examples.route-delays computes, written by hand."""
    return (
        frame.group_by("origin", "dest", maintain_order=True)
        .agg(
            pl.len().alias("flights"),
            pl.col("dep_delay").mean().alias("mean_dep_delay"),
            pl.col("arr_delay").mean().alias("mean_arr_delay"),
        )
        .sort("origin", "dest")
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def symphony(home: Path, *args: str | Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    command = Path(sys.executable).with_name("symphony")
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run(
        [str(command), "--home", str(home), *map(str, args)],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".arrow"])
def test_an_operator_runs_on_a_file_and_prints_csv(home, tmp_path, suffix):
    source = tmp_path / f"flights{suffix}"
    {".csv": FLIGHTS.write_csv, ".parquet": FLIGHTS.write_parquet, ".arrow": FLIGHTS.write_ipc}[suffix](
        source
    )

    done = symphony(home, "run", "examples.route-delays", source)

    assert done.returncode == 0, done.stderr.decode()
    printed = pl.read_csv(io.BytesIO(done.stdout))
    assert_frame_equal(printed.sort("origin", "dest"), route_delays(FLIGHTS), check_dtypes=False)


def test_an_operator_reads_standard_input_and_writes_the_format_of_the_outputs_suffix(home, tmp_path):
    out = tmp_path / "routes.parquet"

    done = symphony(home, "run", "examples.route-delays", "-", "-o", out, stdin=FLIGHTS.write_csv().encode())

    assert done.returncode == 0, done.stderr.decode()
    assert_frame_equal(pl.read_parquet(out).sort("origin", "dest"), route_delays(FLIGHTS))


def test_an_operator_tells_parquet_on_standard_input_and_writes_the_format_asked(home):
    data = io.BytesIO()
    FLIGHTS.write_parquet(data)

    done = symphony(home, "run", "examples.route-delays", "--format", "ndjson", stdin=data.getvalue())

    assert done.returncode == 0, done.stderr.decode()
    printed = pl.read_ndjson(io.BytesIO(done.stdout))
    assert_frame_equal(printed.sort("origin", "dest"), route_delays(FLIGHTS), check_dtypes=False)


def test_input_of_the_wrong_schema_is_one_error_naming_each_column(home, tmp_path):
    source = tmp_path / "flights.parquet"
    FLIGHTS.drop("arr_delay").with_columns(pl.col("dep_delay") > 0).write_parquet(source)

    done = symphony(home, "run", "examples.route-delays", source)

    assert done.returncode == 1
    said = done.stderr.decode()
    assert said.count("error:") == 1, said
    assert "input column 'arr_delay' (Float64) is missing" in said
    assert "input column 'dep_delay' is Boolean, expected Float64" in said
    assert "Traceback" not in said
    assert done.stdout == b""


def test_an_operator_refuses_an_output_whose_format_it_cannot_tell(home, tmp_path):
    source = tmp_path / "flights.csv"
    FLIGHTS.write_csv(source)

    done = symphony(home, "run", "examples.route-delays", source, "-o", tmp_path / "routes.xlsx")

    assert done.returncode == 2
    assert "--format" in done.stderr.decode()


@pytest.fixture
def digits_input(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return (digits.data[:5] / 16.0), digits.target[:5]


def test_an_instrument_runs_on_json_input_and_prints_its_outputs_as_json(home, tmp_path, digits_input):
    pixels, labels = digits_input
    source = tmp_path / "pixels.json"
    source.write_text(json.dumps({"pixels": pixels.tolist()}))
    assert symphony(home, "grant", "examples.digits", "--yes").returncode == 0

    done = symphony(home, "run", "examples.digits", source)

    assert done.returncode == 0, done.stderr.decode()
    outputs = json.loads(done.stdout)
    assert outputs["label"] == labels.tolist()
    np.testing.assert_allclose(np.sum(outputs["probabilities"], axis=1), 1.0, rtol=1e-5)


def test_an_instrument_of_one_input_runs_on_an_npy_array_and_writes_npz(home, tmp_path, digits_input):
    pixels, labels = digits_input
    source, out = tmp_path / "pixels.npy", tmp_path / "outputs.npz"
    np.save(source, pixels)  # float64: made float32, as the manifest declares
    assert symphony(home, "grant", "examples.digits", "--yes").returncode == 0

    done = symphony(home, "run", "examples.digits", source, "-o", out)

    assert done.returncode == 0, done.stderr.decode()
    with np.load(out) as written:
        assert written["label"].tolist() == labels.tolist()
        assert written["probabilities"].shape == (5, 10)


def test_an_instrument_input_of_the_wrong_name_says_what_the_model_takes(home, tmp_path):
    source = tmp_path / "input.json"
    source.write_text(json.dumps({"image": [[0.0] * 64]}))
    assert symphony(home, "grant", "examples.digits", "--yes").returncode == 0

    done = symphony(home, "run", "examples.digits", source)

    assert done.returncode == 1
    said = done.stderr.decode()
    assert "no input 'image'" in said
    assert "input 'pixels' is missing" in said
    assert "pixels float32 [batch, 64]" in said


@pytest.mark.slow
def test_a_served_motif_prints_its_url_serves_its_page_and_stops_on_a_signal(home):
    assert symphony(home, "grant", "examples.dashboard", "--yes").returncode == 0
    command = Path(sys.executable).with_name("symphony")
    server = subprocess.Popen(
        [str(command), "--home", str(home), "run", "examples.dashboard", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200
        assert "_symphony/bridge.js" in page
    finally:
        server.send_signal(signal.SIGTERM)
        _, said = server.communicate(timeout=60)
    assert server.returncode == 0, said
    assert "Ctrl-C stops it" in said


def test_a_motif_without_a_display_says_to_serve_it(home):
    assert symphony(home, "grant", "examples.dashboard", "--yes").returncode == 0

    done = symphony(home, "run", "examples.dashboard")

    assert done.returncode == 1
    said = done.stderr.decode()
    assert "no display" in said
    assert "symphony run examples.dashboard --serve" in said
