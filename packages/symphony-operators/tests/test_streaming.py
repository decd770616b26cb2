"""Streaming a pipeline's result to a file in this process: what is written, and what is refused."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_operators import BadData, Operator, Pipeline, PipelineError


class Gain(Operator):
    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.with_columns((pl.col("arr") - pl.col("dep")).alias("gained")).filter(
            pl.col("gained") > 0
        )


class Busiest(Operator):
    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return (
            frame.group_by("carrier").agg(pl.len().alias("flights"), pl.col("gained").mean()).sort("carrier")
        )


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    """Two Parquet files of flights through two operators: rows kept, then one row per carrier."""
    for k in range(2):
        n = pl.int_range(k * 50_000, (k + 1) * 50_000, dtype=pl.Int64)
        pl.select(n.alias("id")).with_columns(
            (pl.col("id") % 7).cast(pl.String).alias("carrier"),
            (pl.col("id") * 31 % 100).cast(pl.Float64).alias("dep"),
            (pl.col("id") * 17 % 120).cast(pl.Float64).alias("arr"),
        ).write_parquet(tmp_path / f"flights-{k}.parquet")
    return (
        Pipeline(name="delays")
        .source("flights", tmp_path / "flights-*.parquet")
        .step(Gain.create(manifest={"id": "test.gain"}), name="kept")
        .step(Busiest.create(manifest={"id": "test.busiest"}), name="carriers")
    )


def test_each_node_streams_to_parquet_or_ipc_with_the_rows_of_the_in_memory_run(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    plan = pipeline.build()

    carriers = plan.sink_parquet(tmp_path / "out" / "carriers.parquet", compression="zstd")
    kept = plan.sink_ipc(tmp_path / "out" / "kept.arrow", node="kept")

    assert carriers == tmp_path / "out" / "carriers.parquet"
    assert_frame_equal(pl.read_parquet(carriers), plan.collect(engine="in-memory"))
    assert_frame_equal(pl.read_ipc(kept), plan.collect("kept", engine="in-memory"))
    assert pl.read_parquet_metadata(carriers) is not None
    assert sorted(os.listdir(tmp_path / "out")) == ["carriers.parquet", "kept.arrow"]


def test_an_existing_file_is_replaced_or_kept_as_asked(pipeline: Pipeline, tmp_path: Path) -> None:
    out = tmp_path / "carriers.parquet"
    out.write_bytes(b"yesterday")

    with pytest.raises(PipelineError) as caught:
        pipeline.sink_parquet(out, if_exists="fail")

    assert "pipeline 'delays'" in str(caught.value)
    assert str(out) in str(caught.value)
    assert "exists" in str(caught.value)
    assert "if_exists='replace'" in (caught.value.hint or "")
    assert out.read_bytes() == b"yesterday"

    pipeline.sink_parquet(out)  # replace, the default
    assert pl.read_parquet(out).height == 7
    assert sorted(os.listdir(tmp_path)) == ["carriers.parquet", "flights-0.parquet", "flights-1.parquet"]


def test_an_unknown_existing_file_policy_is_refused_before_anything_runs(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    with pytest.raises(PipelineError) as caught:
        pipeline.sink_ipc(tmp_path / "out.arrow", if_exists="append")  # type: ignore[arg-type]

    assert "unknown if_exists 'append'" in str(caught.value)
    assert "replace, fail" in (caught.value.hint or "")
    assert not (tmp_path / "out.arrow").exists()


def test_a_path_that_cannot_be_written_is_named_with_what_to_do(pipeline: Pipeline, tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    out = blocker / "carriers.parquet"

    with pytest.raises(PipelineError) as caught:
        pipeline.sink_parquet(out)

    assert f"pipeline 'delays': cannot stream 'carriers' to {out}" in str(caught.value)
    assert "folder this process can create and write" in (caught.value.hint or "")
    assert blocker.read_text(encoding="utf-8") == "a file, not a folder"


def test_an_unknown_node_or_format_is_refused_naming_the_pipeline(pipeline: Pipeline, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="pipeline 'delays' has no source or step named 'routes'"):
        pipeline.sink_parquet(tmp_path / "out.parquet", node="routes")
    with pytest.raises(PipelineError, match=r"pipeline 'delays'.*out\.xlsx.*unknown format 'xlsx'"):
        pipeline.sink(tmp_path / "out.xlsx", format="xlsx")
    with pytest.raises(PipelineError, match=r"pipeline 'delays'.*cannot tell the format of .*out\.data"):
        pipeline.sink(tmp_path / "out.data")


def test_a_bad_value_stops_the_stream_and_leaves_no_file(tmp_path: Path) -> None:
    (tmp_path / "flights.csv").write_text("carrier,dep,arr\nAA,1,2\nUA,n/a,3\n", encoding="utf-8")
    gain = Gain.create(
        manifest={
            "id": "test.gain",
            "contributes": {
                "input": [{"name": "dep", "dtype": "Float64"}, {"name": "arr", "dtype": "Float64"}]
            },
        }
    )
    pipeline = Pipeline(name="delays").source("flights", tmp_path / "flights.csv").step(gain)

    with pytest.raises(BadData) as caught:
        pipeline.sink_parquet(tmp_path / "out" / "gained.parquet")

    assert "row 2, column 'dep' holds 'n/a'" in str(caught.value)
    assert os.listdir(tmp_path / "out") == []
