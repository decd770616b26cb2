"""Pipelines of isolated operators: lazy in the host, each step's rows made in its own extension's workers.

Operators installed here into a folder of their own, run through a real `Host` in both tiers with the
same assertions: ``acme.widen`` (derives a column, and notes which columns its worker is sent),
``acme.scale`` (a config model, set per step), ``acme.trim`` (filters on a column it then drops),
``acme.peek`` (reads a table from its own data folder, granted) and ``acme.snoop`` (tries to read that same table, not granted), and, isolated only,
``acme.liar``, whose worker answers with other columns than its query was built to make, ``acme.bomb``,
whose plan asks for more memory than its runner has, and ``acme.smuggler``, whose plan reads a file.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_core import Host, SymphonyError
from symphony_core._security._sandbox._probe import probe
from symphony_operators import Pipeline, PipelineError

MANIFEST = """
id = "acme.{name}"
kind = "operator"
name = "{name}"
summary = "A pipeline step of the isolated-pipeline tests."
targets = "symphony-operators>=0.1,<0.2"
{extra}
"""
CODE = """
import json

import polars as pl

from symphony_operators import Config, Operator, scan_csv


class ScaleConfig(Config):
    factor: float = 1.0


class Widen(Operator):
    def apply(self, frame):
        return frame.with_columns((pl.col("arr") - pl.col("dep")).alias("gained"))

    def query_run(self, frame, *args):  # what an isolated step's worker is sent
        (self.context.data_dir / "given.json").write_text(json.dumps(frame.columns))
        return super().query_run(frame, *args)


class Scale(Operator):
    def apply(self, frame):
        return frame.with_columns(pl.col("gained") * self.config.factor)


class Peek(Operator):
    def apply(self, frame):
        table = scan_csv(self.context.data_dir / "codes.csv")
        return frame.join(table, on="carrier", how="left", maintain_order="left")


class Snoop(Operator):
    def apply(self, frame):
        table = scan_csv(self.context.data_dir.parent.parent / "acme.peek" / "data" / "codes.csv")
        return frame.join(table, on="carrier", how="left", maintain_order="left")


class Trim(Operator):
    def apply(self, frame):
        return frame.filter(pl.col("notes") != "c").drop("notes")


class Liar(Operator):
    def apply(self, frame):
        return frame

    def query_plan(self, frame, config=None, schema=False):  # fused: its plan makes another type than it said
        plan = pl.LazyFrame(schema=frame.schema).with_columns(pl.col("dep").cast(pl.String))
        return [self.query_schema(frame, config), plan.serialize(format="json"), pl.__version__]

    def query_run(self, frame, config=None, columns=None, schema=None):  # step by step
        return frame.with_columns(pl.lit("forged").alias("forged"))


class Elder(Widen):
    def query_plan(self, frame, config=None, schema=False):  # as from a managed environment's older polars
        answer = super().query_plan(frame, config, schema)
        return [*answer[:2], "0.20.31"] if schema else answer


class Mapper(Operator):
    def apply(self, frame):  # a Python function in its query: not fused, its rows made in its worker
        return frame.with_columns(pl.col("dep").map_batches(lambda dep: dep * 2, return_dtype=pl.Float64))


class Bomb(Operator):
    def apply(self, frame):
        return frame

    def query_plan(self, frame, config=None, schema=False):  # 60M rows, GBs: over the runner's memory
        given = pl.LazyFrame(schema=frame.schema)
        rows = given.select(pl.int_range(0, 10_000_000).alias("n"))
        plan = given.join(rows, how="cross").drop("n")
        return [self.query_schema(frame, config), plan.serialize(format="json"), pl.__version__]


class Smuggler(Operator):
    def apply(self, frame):
        return frame

    def query_plan(self, frame, config=None, schema=False):  # the runner may read the sources only
        secret = str(self.context.data_dir.parent.parent / "acme.peek" / "data" / "codes.csv")
        plan = pl.LazyFrame(schema=frame.schema).join(pl.scan_csv(secret), on="carrier", how="left")
        return [self.query_schema(frame, config), plan.serialize(format="json"), pl.__version__]
"""
OPERATORS = {
    "widen": (
        "Widen",
        '[[permissions]]\ntype = "fs.write"\npaths = ["{data}"]\nreason = "Notes what it was given."',
    ),
    "scale": ("Scale", 'config = "acme_steps:ScaleConfig"'),
    "peek": (
        "Peek",
        '[[permissions]]\ntype = "fs.read"\npaths = ["{data}/codes.csv"]\nreason = "Its carrier table."',
    ),
    "snoop": ("Snoop", ""),
    "trim": ("Trim", ""),
    "liar": ("Liar", ""),
    "mapper": ("Mapper", ""),
    "elder": (
        "Elder",
        '[[permissions]]\ntype = "fs.write"\npaths = ["{data}"]\nreason = "Notes what it was given."',
    ),
    "bomb": ("Bomb", ""),
    "smuggler": ("Smuggler", ""),
}
FLIGHTS = pl.DataFrame(
    {
        "carrier": ["AA", "UA", "AA", "DL", "UA", "AA"],
        "dep": [1.0, 5.0, -2.0, 0.0, 12.0, 3.0],
        "arr": [4.0, 2.0, -6.0, 1.0, 30.0, 3.0],
        "tail": ["N1", "N2", "N3", "N4", "N5", "N6"],
        "notes": ["a", "b", "c", "d", "e", "f"],
    }
)

UNSUPPORTED = (
    "the isolated tier needs Linux with Landlock and namespaces (`symphony doctor` says what is missing)"
)
ISOLATED = pytest.mark.skipif(  # under CI it runs, and fails: these are security tests too
    not probe().supported and not os.environ.get("CI"), reason=UNSUPPORTED
)


@pytest.fixture(params=["guard", pytest.param("isolated", marks=ISOLATED)])
def isolation(request: pytest.FixtureRequest) -> str:
    """Each test that takes a ``host`` runs in both tiers, with the same assertions."""
    return str(request.param)


@pytest.fixture
def host(
    tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> Iterator[Host]:
    """A host of the given tier with the ``acme`` operators discovered and granted what they ask."""
    yield from _host(tmp_path, site, installed, monkeypatch, isolation)


@pytest.fixture
def isolated(tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """An isolated host, for what happens only there: workers that answer, plans fused in a runner."""
    if not probe().supported:
        if os.environ.get("CI"):
            pytest.fail(UNSUPPORTED, pytrace=False)
        pytest.skip(UNSUPPORTED)
    yield from _host(tmp_path, site, installed, monkeypatch, "isolated")


def _host(
    tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> Iterator[Host]:
    files = {"acme_steps/__init__.py": CODE}
    points = {}
    for name, (cls, extra) in OPERATORS.items():  # each entry point's module, its manifest beside it
        files[f"acme_steps/{name}/__init__.py"] = f"from acme_steps import {cls}\n"
        files[f"acme_steps/{name}/symphony.toml"] = MANIFEST.format(name=name, extra=extra)
        points[f"acme.{name}"] = f"acme_steps.{name}:{cls}"
    installed("acme-steps", files, {"symphony.operators": points})
    monkeypatch.syspath_prepend(str(site))
    with Host(tmp_path / "home", isolation=isolation, path=[str(site), *sys.path]) as running:
        running.discover()
        for name in OPERATORS:
            running.grant(f"acme.{name}")
        yield running
    for name in [name for name in sys.modules if name.startswith("acme_steps")]:
        del sys.modules[name]
    with warnings.catch_warnings():  # the in-process extensions' event loops, closed by the host
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_a_chain_of_operators_gives_the_frame_of_the_same_query_written_by_hand(host: Host) -> None:
    widen, scale = host.start("acme.widen"), host.start("acme.scale")
    pipeline = (
        Pipeline.chain(FLIGHTS)
        .step(widen, host=host)
        .step(scale, host=host, config={"factor": 10.0})
        .step(scale, name="again", host=host, config={"factor": 0.5})
    )

    result = pipeline.build().frame().filter(pl.col("gained") > 0).select("carrier", "gained").collect()

    expected = FLIGHTS.filter((pl.col("arr") - pl.col("dep")) > 0).select(
        "carrier", ((pl.col("arr") - pl.col("dep")) * 5.0).alias("gained")
    )
    assert_frame_equal(result, expected)


@pytest.fixture
def flights_file(tmp_path: Path) -> str:
    """FLIGHTS as a Parquet file: what fuses (a frame made in code crosses as rows, step by step)."""
    path = tmp_path / "flights.parquet"
    FLIGHTS.write_parquet(path)
    return str(path)


def test_a_step_is_given_only_the_columns_the_rest_of_the_pipeline_needs(
    host: Host, isolation: str, flights_file: str
) -> None:
    widen = host.start("acme.widen")
    plan = Pipeline.chain(flights_file).step(widen, host=host).build()

    assert plan.schema().names() == ["carrier", "dep", "arr", "tail", "notes", "gained"]
    result = plan.frame().select("carrier", "gained").collect()

    assert result.columns == ["carrier", "gained"]
    # In this process the optimizer prunes the columns inside one query and nothing crosses; isolated,
    # the step's plan crosses and runs fused with the scan of its source: its worker is sent no rows.
    assert not (host.home.data_dir("acme.widen") / "given.json").exists()
    # from a frame made in code, the rows cross instead: only the columns its query reads
    Pipeline.chain(FLIGHTS).step(widen, host=host).build().frame().select("carrier", "gained").collect()
    sent = host.home.data_dir("acme.widen") / "given.json"
    if isolation == "guard":
        assert not sent.exists()
    else:
        assert json.loads(sent.read_text(encoding="utf-8")) == ["carrier", "dep", "arr"]


def test_a_step_run_step_by_step_is_given_only_the_columns_it_reads(host: Host, isolation: str) -> None:
    codes = host.home.data_dir("acme.peek") / "codes.csv"
    codes.parent.mkdir(parents=True, exist_ok=True)
    codes.write_text("carrier,airline\nAA,American\nUA,United\nDL,Delta\n", encoding="utf-8")
    peek, widen = host.start("acme.peek"), host.start("acme.widen")
    # peek reads a file of its own: its plan is not fused, nor is widen's, which reads peek's rows
    plan = Pipeline.chain(FLIGHTS).step(peek, host=host).step(widen, host=host).build()

    result = plan.frame().select("carrier", "gained").collect()

    assert result["gained"].to_list() == [3.0, -3.0, -4.0, 1.0, 18.0, 0.0]
    sent = host.home.data_dir("acme.widen") / "given.json"
    if isolation == "guard":
        assert not sent.exists()
    else:
        assert json.loads(sent.read_text(encoding="utf-8")) == ["carrier", "dep", "arr"]


def test_a_step_with_a_python_function_in_its_query_runs_with_the_steps_around_it(
    host: Host, flights_file: str
) -> None:
    mapper, widen = host.start("acme.mapper"), host.start("acme.widen")

    result = (
        Pipeline.chain(flights_file)
        .step(widen, host=host)
        .step(mapper, host=host)
        .step(widen, host=host)
        .collect()
    )

    assert result["dep"].to_list() == [2.0, 10.0, -4.0, 0.0, 24.0, 6.0]
    assert result["gained"].to_list() == [2.0, -8.0, -2.0, 1.0, 6.0, -3.0]


def test_a_step_is_given_the_columns_its_filters_read_even_when_it_drops_them(host: Host) -> None:
    trim = host.start("acme.trim")

    result = Pipeline.chain(FLIGHTS).step(trim, host=host).build().frame().select("carrier").collect()

    assert result["carrier"].to_list() == ["AA", "UA", "DL", "UA", "AA"]


def test_each_step_reads_files_only_under_its_own_extensions_grant(host: Host) -> None:
    codes = host.home.data_dir("acme.peek") / "codes.csv"
    codes.parent.mkdir(parents=True, exist_ok=True)
    codes.write_text("carrier,airline\nAA,American\nUA,United\nDL,Delta\n", encoding="utf-8")
    peek, snoop = host.start("acme.peek"), host.start("acme.snoop")

    named = Pipeline.chain(FLIGHTS).step(peek, host=host).collect()
    assert named["airline"].to_list() == ["American", "United", "American", "Delta", "United", "American"]

    with pytest.raises(SymphonyError) as caught:
        Pipeline.chain(FLIGHTS).step(peek, host=host).step(snoop, host=host).collect()
    assert caught.value.extension == "acme.snoop"
    assert "codes.csv" in str(caught.value)


def test_a_worker_answering_other_columns_than_its_query_makes_is_refused(
    isolated: Host, flights_file: str
) -> None:
    host = isolated  # in this process the host runs the operator's query itself: no worker answers
    liar = host.start("acme.liar")

    with pytest.raises(PipelineError) as fused:  # its plan runs with the scan of its source
        Pipeline.chain(flights_file).step(liar, host=host).collect()
    assert fused.value.extension == "acme.liar"
    assert "dep: String" in str(fused.value)
    assert "dep: Float64" in str(fused.value)
    assert "query_plan" in str(fused.value)

    with pytest.raises(PipelineError) as alone:  # from a frame made in code, it runs on its own
        Pipeline.chain(FLIGHTS).step(liar, host=host).collect()
    assert alone.value.extension == "acme.liar"
    assert "forged" in str(alone.value)


def test_a_plan_from_another_polars_than_the_hosts_is_not_fused(isolated: Host, flights_file: str) -> None:
    elder = isolated.start("acme.elder")

    result = (
        Pipeline.chain(flights_file).step(elder, host=isolated).build().frame().select("gained").collect()
    )

    assert result["gained"].to_list() == [3.0, -3.0, -4.0, 1.0, 18.0, 0.0]
    sent = isolated.home.data_dir("acme.elder") / "given.json"  # its rows were made in its worker
    assert json.loads(sent.read_text(encoding="utf-8")) == ["dep", "arr"]


def test_a_plan_that_exhausts_its_runner_fails_its_pipeline_and_nothing_else(
    isolated: Host, flights_file: str
) -> None:
    host = isolated  # plans are fused in the isolated tier only
    bomb, widen = host.start("acme.bomb"), host.start("acme.widen")

    with pytest.raises(PipelineError) as caught:
        Pipeline.chain(flights_file).step(bomb, host=host).collect()

    assert caught.value.extension == "acme.bomb"
    assert "fused steps acme.bomb" in str(caught.value)
    # the host and the other operators go on; a new runner serves the next pipeline
    assert Pipeline.chain(flights_file).step(widen, host=host).collect()["gained"].to_list()[:2] == [
        3.0,
        -3.0,
    ]


def test_a_runner_killed_from_outside_is_audited_and_the_next_run_gets_a_new_one(
    isolated: Host, flights_file: str
) -> None:
    host = isolated  # plans are fused in the isolated tier only
    widen = host.start("acme.widen")
    plan = Pipeline.chain(flights_file).step(widen, host=host).build()  # building starts its runner
    (runner,) = widen._runners.values()
    os.kill(runner.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while runner.alive:  # the host notices, and reports it the first time it looks
        assert time.monotonic() < deadline, "the killed runner still counts as alive"
        time.sleep(0.05)

    assert plan.collect()["gained"].to_list()[:2] == [3.0, -3.0], "the run gets a new runner"
    (replacement,) = widen._runners.values()
    assert replacement is not runner
    died = [r.detail["reason"] for r in host.state.audit_log("acme.widen") if r.event == "worker_crashed"]
    assert len(died) == 1, "the runner's death is audited like a worker's, once"
    assert died[0].startswith("its runner: ")
    assert host.inspect("acme.widen").state.value == "active", "a runner runs no extension code: not blamed"


def test_a_plan_that_reads_a_file_is_not_fused_and_its_worker_is_held_to_its_grant(
    isolated: Host, flights_file: str
) -> None:
    host = isolated  # plans are fused in the isolated tier only
    codes = host.home.data_dir("acme.peek") / "codes.csv"
    codes.parent.mkdir(parents=True, exist_ok=True)
    codes.write_text("carrier,airline\nAA,American\n", encoding="utf-8")
    smuggler = host.start("acme.smuggler")

    result = Pipeline.chain(flights_file).step(smuggler, host=host).collect()

    # its plan's scan was refused, so it ran step by step: its worker ran its own query (apply), which
    # reads nothing, and the file it named was never read
    assert result.columns == FLIGHTS.columns
    assert "airline" not in result.columns
