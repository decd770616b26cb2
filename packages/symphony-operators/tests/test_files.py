"""Scans and sinks: every format, atomic writes, and the permission check on every concrete file."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_operators import (
    BadData,
    Operator,
    Pipeline,
    PipelineError,
    Target,
    expand,
    scan,
    scan_csv,
    scan_ipc,
    scan_ndjson,
    scan_parquet,
    sink,
    sink_all,
)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".ndjson", ".ipc"])
def test_each_format_is_written_and_read_back_unchanged(tmp_path: Path, weather: pl.DataFrame, suffix: str):
    frame = weather.select("origin", "year", "month", "day", "hour", "temp", "wind_speed")
    path = tmp_path / f"weather{suffix}"

    written = sink(frame.lazy(), path)

    assert written == path
    assert_frame_equal(scan(path).collect(), frame)


def test_the_format_specific_scans_read_globs_and_folders(tmp_path: Path, weather: pl.DataFrame):
    for origin, part in weather.partition_by("origin", as_dict=True).items():
        part.write_csv(tmp_path / f"weather-{origin[0]}.csv")
        part.write_parquet(tmp_path / f"weather-{origin[0]}.parquet")
        part.write_ndjson(tmp_path / f"weather-{origin[0]}.ndjson")
        part.write_ipc(tmp_path / f"weather-{origin[0]}.ipc")

    for reader, suffix in (
        (scan_csv, "csv"),
        (scan_parquet, "parquet"),
        (scan_ndjson, "ndjson"),
        (scan_ipc, "ipc"),
    ):
        assert reader(tmp_path / f"weather-*.{suffix}").select(pl.len()).collect().item() == weather.height
    assert [p.name for p in expand(tmp_path / "weather-[EJ]*.csv")] == ["weather-EWR.csv", "weather-JFK.csv"]


def test_expand_resolves_symlinks_and_lists_a_folder_without_hidden_files(tmp_path: Path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    (tmp_path / "data" / ".hidden.csv").write_text("x\n2\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "data" / "a.csv")

    assert expand(tmp_path / "data") == [tmp_path / "data" / "a.csv"]
    assert expand(tmp_path / "link.csv") == [tmp_path / "data" / "a.csv"]
    with pytest.raises(BadData, match="there is no file"):
        expand(tmp_path / "missing.csv")


def test_several_sinks_are_written_in_one_run(tmp_path: Path, flights: pl.DataFrame):
    late = flights.lazy().filter(pl.col("arr_delay") > 60)
    by_origin = late.group_by("origin").len().sort("origin")

    paths = sink_all(
        [
            (by_origin, Target.of(tmp_path / "origins.csv")),
            (late.select("flight"), Target.of(tmp_path / "f.ipc")),
        ]
    )

    assert [p.name for p in paths] == ["origins.csv", "f.ipc"]
    assert pl.read_csv(paths[0])["len"].sum() == pl.read_ipc(paths[1]).height


def test_a_run_that_fails_midway_leaves_the_old_output_and_no_partial_file(tmp_path: Path):
    output = tmp_path / "out.parquet"
    old = pl.DataFrame({"x": [1, 2, 3]})
    old.write_parquet(output)
    rows = 4_000_000
    partial_seen: list[int] = []

    def breaks_late(column: pl.Series) -> pl.Series:
        partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.parquet.")]
        partial_seen.extend(p.stat().st_size for p in partial)
        if column.max() >= rows - 10:  # type: ignore[operator]
            raise ValueError("corrupt block near the end of the input")
        return column

    class Fragile(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame.with_columns(
                pl.col("x").map_batches(breaks_late, return_dtype=pl.Int64, is_elementwise=True)
            )

    source = pl.LazyFrame({"x": pl.int_range(rows, eager=True)})
    pipeline = Pipeline.chain(source, Fragile.create(), engine="streaming").sink(output)

    with pytest.raises((PipelineError, ValueError, pl.exceptions.PolarsError)):
        pipeline.run()

    assert partial_seen, "the run should have been writing its temporary file when it failed"
    assert_frame_equal(pl.read_parquet(output), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_a_successful_run_replaces_the_old_output(tmp_path: Path):
    output = tmp_path / "out.csv"
    output.write_text("stale\n")

    Pipeline().source("s", pl.LazyFrame({"x": [1, 2]})).sink(output).run()

    assert output.read_text() == "x\n1\n2\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_an_unknown_suffix_asks_for_a_format(tmp_path: Path):
    with pytest.raises(ValueError, match=r"cannot tell the format of .*table\.dat.*give format"):
        sink(pl.LazyFrame({"x": [1]}), tmp_path / "table.dat")
    assert sink(pl.LazyFrame({"x": [1]}), tmp_path / "table.dat", format="csv").read_text() == "x\n1\n"
