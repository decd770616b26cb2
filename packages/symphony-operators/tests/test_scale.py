"""Pipelines on generated frames of millions of rows, made at test time (nothing large is committed)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_operators import Operator, Pipeline


def generated_flights(rows: int, seed: int = 7) -> pl.LazyFrame:
    """Flight-like rows: deterministic, varied, with nulls for cancelled flights."""
    i = pl.int_range(rows, dtype=pl.Int64)
    hashed = (i * 2_654_435_761 + seed) % 4_294_967_291
    return pl.LazyFrame().select(
        i.alias("id"),
        (hashed % 16).cast(pl.Int32).alias("carrier_code"),
        (hashed % 3).replace_strict({0: "EWR", 1: "JFK", 2: "LGA"}, return_dtype=pl.String).alias("origin"),
        ((hashed // 7) % 1_000).alias("distance"),
        pl.when(hashed % 50 == 0)
        .then(None)
        .otherwise((hashed % 181 - 30).cast(pl.Float64))
        .alias("dep_delay"),
        pl.when(hashed % 50 == 0)
        .then(None)
        .otherwise((hashed % 197 - 40).cast(pl.Float64))
        .alias("arr_delay"),
    )


TRANSFORMS = [
    lambda f: f.filter(pl.col("dep_delay").is_not_null()),
    lambda f: f.with_columns((pl.col("arr_delay") - pl.col("dep_delay")).alias("gained")),
    lambda f: f.with_columns((pl.col("distance") / 100).alias("hundreds")),
    lambda f: f.filter(pl.col("distance") > 50),
    lambda f: f.with_columns(pl.col("origin").str.to_lowercase()),
    lambda f: f.with_columns((pl.col("arr_delay") > 15).alias("late")),
    lambda f: f.group_by("carrier_code", "origin").agg(
        pl.len().alias("flights"), pl.col("gained").mean(), pl.col("late").mean().alias("late_share")
    ),
    lambda f: f.sort("carrier_code", "origin"),
]


def hand_written(frame: pl.LazyFrame) -> pl.LazyFrame:
    for transform in TRANSFORMS:
        frame = transform(frame)
    return frame


def operators() -> list[Operator]:
    """The transforms as eight operator classes, as eight authors would have published them."""
    result = []
    for n, transform in enumerate(TRANSFORMS):
        cls = type(f"Step{n}", (Operator,), {"apply": lambda self, frame, t=transform: t(frame)})
        result.append(cls.create(manifest={"id": f"test.step-{n}"}))
    return result


def test_eight_operators_over_a_million_generated_rows_match_the_hand_written_query(tmp_path: Path):
    source = tmp_path / "flights.parquet"
    generated_flights(1_000_000).sink_parquet(source)

    result = Pipeline.chain(source, *operators(), engine="streaming").collect()

    assert_frame_equal(result, hand_written(pl.scan_parquet(source)).collect())
    assert result.height == 16 * 3


@pytest.mark.slow
def test_eight_operators_over_eight_million_rows_write_what_the_hand_written_query_writes(tmp_path: Path):
    source = tmp_path / "flights.parquet"
    generated_flights(8_000_000).sink_parquet(source)

    run = Pipeline.chain(source, *operators(), engine="streaming").sink(tmp_path / "out.parquet").run()

    assert_frame_equal(pl.read_parquet(run.outputs[0]), hand_written(pl.scan_parquet(source)).collect())


@pytest.mark.slow
def test_quarantine_over_two_million_csv_rows_sets_aside_exactly_the_bad_ones(tmp_path: Path):
    class Delays(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame.group_by("origin").agg(pl.col("dep_delay").sum())

    declared = {"input": [{"name": "dep_delay", "dtype": "Float64"}, {"name": "origin", "dtype": "String"}]}
    rows = 2_000_000
    text = generated_flights(rows).with_columns(
        pl.when(pl.col("id") % 100_000 == 99_999)
        .then(pl.lit("unknown"))
        .otherwise(pl.col("dep_delay").cast(pl.String))
        .alias("dep_delay")
    )
    text.sink_csv(tmp_path / "flights.csv")

    run = (
        Pipeline(on_bad_rows="quarantine", quarantine=tmp_path / "rejected.parquet", engine="streaming")
        .source("flights", tmp_path / "flights.csv")
        .step(Delays.create(manifest={"id": "test.delays", "contributes": declared}))
        .sink(tmp_path / "out.parquet")
        .run()
    )

    rejected = pl.read_parquet(run.quarantine)  # type: ignore[arg-type]
    assert rejected.height == rows // 100_000
    assert set(rejected["reason"]) == {"dep_delay: 'unknown' is not Float64"}
    good = text.filter(pl.col("dep_delay") != "unknown").with_columns(pl.col("dep_delay").cast(pl.Float64))
    expected = good.group_by("origin").agg(pl.col("dep_delay").sum()).sort("origin").collect()
    assert_frame_equal(pl.read_parquet(run.outputs[0]).sort("origin"), expected)
