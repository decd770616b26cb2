"""Bad input data: values that do not parse, files whose schemas drift apart, missing and empty inputs.

Each is either a clear error naming file, column and operator, or (``on_bad_rows = "quarantine"``) rows
set aside in a quarantine file while the rest of the pipeline runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_operators import BadData, Operator, Pipeline, PipelineError, SchemaMismatch


class MeanDelay(Operator):
    """Mean departure delay per origin airport."""

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.group_by("origin").agg(pl.col("dep_delay").mean().alias("mean_dep_delay")).sort("origin")


MANIFEST = {
    "id": "test.mean-delay",
    "contributes": {
        "input": [{"name": "origin", "dtype": "String"}, {"name": "dep_delay", "dtype": "Float64"}],
        "output": [{"name": "mean_dep_delay", "dtype": "Float64"}],
    },
}


def mean_delay() -> MeanDelay:
    return MeanDelay.create(manifest=MANIFEST)


@pytest.fixture
def real_csv(tmp_path: Path, flights: pl.DataFrame) -> Path:
    """The first 5,000 real flights as CSV, with one value broken on the 4,321st data row."""
    sample = flights.head(5_000).select("origin", "dest", "dep_delay", "carrier")
    path = tmp_path / "flights.csv"
    sample.with_columns(pl.col("dep_delay").cast(pl.String)).with_row_index().with_columns(
        pl.when(pl.col("index") == 4_320)
        .then(pl.lit("n/a"))
        .otherwise(pl.col("dep_delay"))
        .alias("dep_delay")
    ).drop("index").write_csv(path)
    return path


def test_a_value_that_does_not_parse_names_file_row_column_and_operator(tmp_path: Path, real_csv: Path):
    output = tmp_path / "out.parquet"
    pipeline = Pipeline.chain(real_csv, mean_delay()).sink(output)

    with pytest.raises(BadData) as caught:
        pipeline.run()

    error = caught.value
    assert (error.file, error.column, error.operator) == (str(real_csv), "dep_delay", "test.mean-delay")
    assert "row 4321, column 'dep_delay' holds 'n/a', which is not Float64" in str(error)
    assert "on_bad_rows = 'quarantine'" in str(error)
    assert not output.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flights.csv"]  # no partial file left


def test_quarantine_sets_bad_rows_aside_and_the_rest_runs(
    tmp_path: Path, real_csv: Path, flights: pl.DataFrame
):
    pipeline = Pipeline(on_bad_rows="quarantine", quarantine=tmp_path / "rejected.csv").source(
        "flights", real_csv
    )
    run = pipeline.step(mean_delay()).sink(tmp_path / "out.parquet").run()

    rejected = pl.read_csv(run.quarantine)  # type: ignore[arg-type]
    assert rejected.columns == ["source", "file", "reason", "record"]
    assert rejected.height == 1
    row = rejected.row(0, named=True)
    assert row["source"] == "flights"
    assert row["file"] == str(real_csv)
    assert row["reason"] == "dep_delay: 'n/a' is not Float64"
    assert json.loads(row["record"])["dep_delay"] == "n/a"

    kept = flights.head(5_000).with_row_index().filter(pl.col("index") != 4_320)
    expected = kept.group_by("origin").agg(pl.col("dep_delay").mean().alias("mean_dep_delay")).sort("origin")
    assert_frame_equal(pl.read_parquet(run.outputs[0]).select(expected.columns), expected)


def test_quarantine_of_clean_data_writes_an_empty_quarantine_file(tmp_path: Path, flights: pl.DataFrame):
    source = tmp_path / "flights.ndjson"
    flights.head(1_000).select("origin", "dep_delay").write_ndjson(source)

    run = (
        Pipeline(on_bad_rows="quarantine", quarantine=tmp_path / "rejected.parquet")
        .source("flights", source)
        .step(mean_delay())
        .sink(tmp_path / "out.csv")
        .run()
    )

    assert pl.read_parquet(run.quarantine).height == 0  # type: ignore[arg-type]
    assert pl.read_csv(run.outputs[0]).height == 3  # EWR, JFK, LGA


def test_quarantine_needs_somewhere_to_put_the_rows():
    with pytest.raises(PipelineError, match="has nowhere to put them"):
        Pipeline(on_bad_rows="quarantine")


def test_schema_drift_between_files_of_one_source_names_the_file_and_column(
    tmp_path: Path, flights: pl.DataFrame
):
    folder = tmp_path / "months"
    folder.mkdir()
    for month in (1, 2, 3):
        part = flights.filter(pl.col("month") == month).select("origin", "dep_delay", "distance")
        if month == 3:  # a later export wrote distance as text
            part = part.with_columns(pl.col("distance").cast(pl.String))
        part.write_parquet(folder / f"2013-{month:02}.parquet")

    with pytest.raises(BadData) as caught:
        Pipeline.chain(folder / "*.parquet", mean_delay()).build()

    error = caught.value
    assert error.file == str(folder / "2013-03.parquet")
    assert error.column == "distance"
    assert "column 'distance' is String in" in str(error)
    assert "but Int64 in" in str(error)


def test_a_file_missing_a_column_the_operator_reads_names_the_operator(tmp_path: Path, flights: pl.DataFrame):
    flights.head(10).select("origin", "dep_delay").write_csv(tmp_path / "a.csv")
    flights.head(10).select("origin").write_csv(tmp_path / "b.csv")

    with pytest.raises(BadData) as caught:
        Pipeline.chain(tmp_path / "*.csv", mean_delay()).build()

    assert (caught.value.column, caught.value.operator) == ("dep_delay", "test.mean-delay")
    assert f"{tmp_path / 'b.csv'} has no column 'dep_delay'" in str(caught.value)


def test_a_source_without_the_declared_column_fails_the_build_naming_operator_and_file(
    tmp_path: Path, flights
):
    path = tmp_path / "no-delays.parquet"
    flights.head(10).select("origin", "arr_delay").write_parquet(path)

    with pytest.raises(SchemaMismatch) as caught:
        Pipeline.chain(path, mean_delay()).build()

    assert (
        f"test.mean-delay: input column 'dep_delay' (Float64) is missing (from source 'input' ({path}))"
        in str(caught.value)
    )


def test_a_glob_that_matches_nothing_is_a_clear_error(tmp_path: Path):
    with pytest.raises(BadData, match=r"no file matches .*/none-\*\.csv"):
        Pipeline.chain(tmp_path / "none-*.csv", mean_delay()).build()


def test_an_empty_file_is_named(tmp_path: Path):
    (tmp_path / "empty.csv").write_text("")

    with pytest.raises(BadData) as caught:
        Pipeline.chain(tmp_path / "empty.csv", mean_delay()).build()

    assert caught.value.file == str(tmp_path / "empty.csv")
    assert "cannot read" in str(caught.value)


def test_a_file_with_a_header_and_no_rows_gives_an_empty_result_with_the_declared_dtypes(tmp_path: Path):
    (tmp_path / "header.csv").write_text("origin,dep_delay\n")

    result = Pipeline.chain(tmp_path / "header.csv", mean_delay()).collect()

    assert result.height == 0
    assert result.schema == pl.Schema({"origin": pl.String, "mean_dep_delay": pl.Float64})


def test_text_columns_are_parsed_to_the_declared_dtypes(tmp_path: Path):
    class Keep(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame

    declared = [
        {"name": "day", "dtype": "Date"},
        {"name": "at", "dtype": "Datetime(time_unit='us')"},
        {"name": "cancelled", "dtype": "Boolean"},
        {"name": "seats", "dtype": "Int32"},
    ]
    keep = Keep.create(manifest={"id": "test.keep", "contributes": {"input": declared, "output": declared}})
    (tmp_path / "t.csv").write_text("day,at,cancelled,seats\n2013-01-01,2013-01-01 05:15:00,false,180\n")

    result = Pipeline.chain(tmp_path / "t.csv", keep).collect()

    assert result.schema == pl.Schema(
        {"day": pl.Date, "at": pl.Datetime("us"), "cancelled": pl.Boolean, "seats": pl.Int32}
    )
    assert result.row(0)[2:] == (False, 180)


def test_a_text_column_declared_as_string_stays_text_even_if_it_looks_numeric(tmp_path: Path):
    (tmp_path / "codes.csv").write_text("origin,dep_delay\n007,1.5\n010,2.5\n007,0.5\n")

    result = Pipeline.chain(tmp_path / "codes.csv", mean_delay()).collect()

    assert result.to_dict(as_series=False) == {"origin": ["007", "010"], "mean_dep_delay": [1.0, 2.5]}
