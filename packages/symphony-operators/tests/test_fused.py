"""The host's checks on a step's plan before it is fused: an allow-list of what polars writes for native
expressions, read as JSON and never deserialized in the host.

Each refused plan here is what a hostile or careless worker could answer to ``query_plan``: a Python
function (pickled by polars, or bytes placed by hand), a plugin library, a scan or a sink, SQL, a frame
of its own, a plan nested to exhaust the host's stack, a plan that does not read its input. A plan the
checks pass is stitched onto what feeds it and gives what composing the queries in one process gives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_operators._fused import (
    MAX_DEPTH,
    MAX_PLAN_BYTES,
    MAX_STREAMS,
    NotFusable,
    PlanRunner,
    check_source,
    check_step,
    deserialize,
    parse,
    placeholder,
    runner_reads,
    serialize,
    vocabulary,
)

SCHEMA = pl.Schema({"carrier": pl.String, "dep": pl.Float64, "arr": pl.Float64})
FLIGHTS = pl.DataFrame(
    {"carrier": ["AA", "UA", "AA"], "dep": [1.0, 5.0, -2.0], "arr": [4.0, 2.0, -6.0]}, schema=SCHEMA
)


def step_plan(query: Any) -> Any:
    """What a worker answers: the query built on an empty frame of the input's schema, as JSON data."""
    return json.loads(serialize(query(pl.LazyFrame(schema=SCHEMA))))


def source(tmp_path: Path) -> Any:
    path = tmp_path / "flights.parquet"
    FLIGHTS.write_parquet(path)
    return check_source(json.loads(serialize(pl.scan_parquet(path))))


def test_native_steps_are_fused_onto_their_source_and_give_what_one_process_gives(tmp_path: Path) -> None:
    first = source(tmp_path)
    widen = lambda frame: frame.with_columns((pl.col("arr") - pl.col("dep")).alias("gained"))  # noqa: E731
    late = lambda frame: frame.filter(pl.col("gained") > 0).group_by("carrier").agg(pl.len())  # noqa: E731

    one = check_step(step_plan(widen), SCHEMA, first, "acme.widen")
    widened = SCHEMA | {"gained": pl.Float64}
    two = check_step(json.loads(serialize(late(pl.LazyFrame(schema=widened)))), widened, one, "acme.late")

    assert two.steps == ("acme.widen", "acme.late")
    assert two.reads == {str(tmp_path / "flights.parquet")}
    expected = late(widen(FLIGHTS.lazy())).sort("carrier").collect()
    assert_frame_equal(deserialize(two.text).sort("carrier").collect(), expected)


@pytest.mark.parametrize(
    ("query", "why"),
    [
        (lambda f: f.with_columns(pl.col("dep").map_batches(lambda s: s * 2)), "not a native expression"),
        (lambda f: f.map_batches(lambda frame: frame), "not a native expression"),
        (lambda f: f.join(pl.scan_csv("/etc/passwd"), on="carrier"), "'Scan'"),
        (
            lambda f: f.join(pl.LazyFrame({"carrier": ["AA"], "name": ["x"]}), on="carrier"),
            "a frame of its own",
        ),
        (lambda f: pl.LazyFrame({"carrier": ["AA"]}), "a frame of its own"),
        (lambda f: pl.LazyFrame(schema=SCHEMA), None),  # its input, kept as it is: fused
    ],
)
def test_a_step_plan_is_refused_unless_it_is_native_expressions_on_its_input(
    tmp_path: Path, query: Any, why: str | None
) -> None:
    upstream = source(tmp_path)
    try:
        plan = step_plan(query)
    except pl.exceptions.ComputeError:  # without cloudpickle polars cannot write the function: no plan
        with pytest.raises(NotFusable, match="not a plan"):  # what the worker's query_plan then answers
            parse(None, "its plan")
        return
    if why is None:
        assert check_step(plan, SCHEMA, upstream, "acme.same").steps == ("acme.same",)
        return
    with pytest.raises(NotFusable, match=why):
        check_step(plan, SCHEMA, upstream, "acme.step")


def hand_made(node: Any) -> Any:
    """A plan written by hand around the step's input: what a worker need not get from polars at all."""
    return {"Select": {"expr": [node], "input": {"DataFrameScan": placeholder(SCHEMA)}, "options": {}}}


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        (hand_made({"PythonUdf": list(range(256)) * 4}), "'PythonUdf'"),
        (hand_made({"AnonymousFunction": {"input": [], "function": [1, 2, 3]}}), "'AnonymousFunction'"),
        (
            hand_made({"Function": {"input": [], "function": {"FfiPlugin": {"lib": "/tmp/evil.so"}}}}),
            "'FfiPlugin'",
        ),
        (hand_made({"Column": "dep", "function": list(range(200))}), "200 bytes"),
        (hand_made([[*range(100)]]), "100 bytes"),
        (
            {"GroupBy": {"input": {"DataFrameScan": placeholder(SCHEMA)}, "apply": [[1, 2], {}]}},
            "calls Python",
        ),
        ({"SQL": {"query": "SELECT * FROM read_csv('/etc/passwd')"}}, "'SQL'"),
        ({"Sink": {"input": {"DataFrameScan": placeholder(SCHEMA)}, "payload": "/tmp/out"}}, "'Sink'"),
        ({"Select": {"expr": [], "input": {"Scan": {"sources": {"Paths": ["/etc/shadow"]}}}}}, "'Scan'"),
        ({"Select": {"expr": [{"Column": "dep"}], "options": {}}}, "does not read its input"),
    ],
)
def test_a_hand_made_plan_is_refused_for_what_it_holds(tmp_path: Path, plan: Any, why: str) -> None:
    with pytest.raises(NotFusable, match=why):
        check_step(plan, SCHEMA, source(tmp_path), "acme.hostile")


def test_a_plan_too_deep_or_too_long_is_refused_without_exhausting_the_host(tmp_path: Path) -> None:
    deep: Any = {"DataFrameScan": placeholder(SCHEMA)}
    for _ in range(MAX_DEPTH * 3):
        deep = {"Filter": {"input": deep, "predicate": {"Column": "dep"}}}
    with pytest.raises(NotFusable, match="nests deeper"):
        check_step(deep, SCHEMA, source(tmp_path), "acme.deep")

    with pytest.raises(NotFusable, match="bytes long"):
        parse("[" * (MAX_PLAN_BYTES + 1), "its plan")
    with pytest.raises(NotFusable, match="not JSON"):
        parse("[" * 100_000 + "]" * 100_000, "its plan")  # within the size, beyond the JSON reader's depth
    with pytest.raises(NotFusable, match="not a plan"):
        parse({"Select": {}}, "its plan")


def test_the_sources_plan_may_scan_local_files_only(tmp_path: Path) -> None:
    assert source(tmp_path).reads == {str(tmp_path / "flights.parquet")}
    csv = tmp_path / "flights.csv"
    FLIGHTS.write_csv(csv)
    both = pl.concat([pl.scan_parquet(tmp_path / "flights.parquet"), pl.scan_csv(csv)])
    assert check_source(json.loads(serialize(both))).reads == {str(tmp_path / "flights.parquet"), str(csv)}

    remote = json.loads(serialize(pl.scan_parquet(tmp_path / "flights.parquet")))
    remote["Scan"]["sources"]["Paths"] = [{"inner": "s3://bucket/flights.parquet"}]
    with pytest.raises(NotFusable, match="not a local file"):
        check_source(remote)
    relative = json.loads(serialize(pl.scan_parquet(tmp_path / "flights.parquet")))
    relative["Scan"]["sources"]["Paths"] = [{"inner": "flights.parquet"}]
    with pytest.raises(NotFusable, match="not a local file"):
        check_source(relative)


def test_a_runner_is_granted_the_files_or_their_folders_when_they_are_many() -> None:
    few = frozenset(f"/data/a/{n}.parquet" for n in range(3))
    assert runner_reads(few) == sorted(few)
    many = frozenset(f"/data/{n % 4}/{n}.parquet" for n in range(100))
    assert runner_reads(many) == [f"/data/{n}" for n in range(4)]
    with pytest.raises(NotFusable, match="folders"):
        runner_reads(frozenset(f"/data/{n}/x.parquet" for n in range(100)))


def test_the_allow_list_holds_polars_expressions_and_nothing_that_reads_writes_or_calls_python() -> None:
    allowed = vocabulary()
    assert {
        "Select",
        "Filter",
        "HStack",
        "GroupBy",
        "Join",
        "Sort",
        "BinaryExpr",
        "Column",
        "Literal",
    } <= allowed
    assert not allowed & {
        "Scan",
        "Sink",
        "PythonScan",
        "SQL",
        "OpaquePython",
        "AnonymousFunction",
        "FfiPlugin",
    }
    assert not {key for key in allowed if "python" in key.lower() or "plugin" in key.lower()}


def test_plans_that_read_their_input_many_times_cannot_grow_the_fused_plan_without_end(
    tmp_path: Path,
) -> None:
    copies = {"Union": {"inputs": [{"DataFrameScan": placeholder(SCHEMA)}] * 300, "args": {}}}
    once = check_step(copies, SCHEMA, source(tmp_path), "acme.copies")  # 300 times the source's plan
    assert once.size > 300 * source(tmp_path).size

    with pytest.raises(NotFusable, match="bytes long"):  # 300 times that again
        check_step(copies, SCHEMA, once, "acme.copies")


def test_a_runner_streams_a_plan_in_batches_and_keeps_no_stream_past_its_end(tmp_path: Path) -> None:
    source = tmp_path / "rows.parquet"
    pl.DataFrame({"i": range(10_000), "s": [f"x{n % 7}" for n in range(10_000)]}).write_parquet(source)
    frame = pl.scan_parquet(source).filter(pl.col("i") % 3 == 0).with_columns(j=pl.col("i") * 2)
    runner = PlanRunner()

    stream = runner.batches(serialize(frame), ["j", "s"], None, 1_000)
    batches = []
    while (batch := runner.batch(stream)) is not None:
        batches.append(batch)

    assert len(batches) > 1
    assert_frame_equal(pl.concat(batches), frame.select("j", "s").collect())
    with pytest.raises(ValueError, match="no open stream"):  # read to its end: closed
        runner.batch(stream)

    limited = runner.batches(serialize(frame), None, 5, 1_000)
    assert_frame_equal(runner.batch(limited), frame.head(5).collect())
    opened = [runner.batches(serialize(frame)) for _ in range(MAX_STREAMS - 1)]
    with pytest.raises(ValueError, match="already open"):
        runner.batches(serialize(frame))
    for each in [limited, *opened]:
        runner.drop(each)
    failing = runner.batches(serialize(frame.select(pl.col("s").cast(pl.Int8))))
    with pytest.raises(pl.exceptions.InvalidOperationError):
        runner.batch(failing)
    with pytest.raises(ValueError, match="no open stream"):  # a failed query is closed too
        runner.batch(failing)
    assert runner.batches(serialize(frame)) > failing  # numbers are never given twice
