"""Pipelines streamed to files: larger than the memory of the process that runs them, in both tiers.

Operators installed here into a folder of their own and run through a real `Host`: ``acme.gain`` (derives
a column and keeps the rows where it is positive), ``acme.pace`` (a config model, set per step) and
``acme.doubler``, whose query holds a Python function (never fused: it runs step by step), and, isolated
only, ``acme.forger``, whose plan makes another type than its worker said.

The heavy test writes about 1.6 GB of Parquet (48 million rows, about 1.5 GB in memory) and streams it
through an isolated pipeline whose runner's cgroup allows 384 MiB (polars' own code, mapped from its
library, is counted there too: far less thrashes it).
"""

from __future__ import annotations

import gc
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from symphony_core import Host
from symphony_core._security._sandbox._probe import probe
from symphony_operators import Pipeline, PipelineError

MANIFEST = """
id = "acme.{name}"
kind = "operator"
name = "{name}"
summary = "A step of the streaming tests."
targets = "symphony-operators>=0.1,<0.2"
{extra}
"""
CODE = """
import polars as pl

from symphony_operators import Config, Operator


class PaceConfig(Config):
    factor: float = 1.0


class Gain(Operator):
    def apply(self, frame):
        gained = (pl.col("arr") - pl.col("dep")).alias("gained")
        return frame.with_columns(gained).filter(pl.col("gained") > 0)


class Pace(Operator):
    def apply(self, frame):
        return frame.with_columns((pl.col("gained") * self.config.factor).alias("pace"))


class Doubler(Operator):
    def apply(self, frame):
        return frame.with_columns(pl.col("dep").map_batches(lambda dep: dep * 2, return_dtype=pl.Float64))


class Forger(Operator):
    def apply(self, frame):
        return frame

    def query_plan(self, frame, config=None, schema=False):  # its plan makes dep a String
        plan = pl.LazyFrame(schema=frame.schema).with_columns(pl.col("dep").cast(pl.String))
        return [self.query_schema(frame, config), plan.serialize(format="json"), pl.__version__]
"""
OPERATORS = {
    "gain": ("Gain", ""),
    "pace": ("Pace", 'config = "acme_streams:PaceConfig"'),
    "doubler": ("Doubler", ""),
    "forger": ("Forger", ""),
}
ROWS_PER_FILE = 4_000_000
FILES = 12
MEMORY = 384 << 20

UNSUPPORTED = (
    "the isolated tier needs Linux with Landlock and namespaces (`symphony doctor` says what is missing)"
)
ISOLATED = pytest.mark.skipif(  # under CI it runs, and fails: these are security tests too
    not probe().supported and not os.environ.get("CI"), reason=UNSUPPORTED
)


def flights(first: int, rows: int) -> pl.DataFrame:
    """Rows ``first`` to ``first + rows`` of a deterministic table of flights (the same rows each time)."""
    n = pl.int_range(first, first + rows, dtype=pl.Int64)
    return pl.select(n.alias("id")).with_columns(
        (pl.col("id") * 7919 % 13).cast(pl.String).alias("carrier"),
        ((pl.col("id") * 2_654_435_761) % 1000).cast(pl.Float64).truediv(10).sub(20).alias("dep"),
        ((pl.col("id") * 40_503) % 1200).cast(pl.Float64).truediv(10).sub(20).alias("arr"),
        pl.format("N{}", pl.col("id") % 100_000).alias("tail"),
    )


def write_flights(folder: Path, files: int, rows: int) -> list[Path]:
    """``files`` Parquet files of ``rows`` rows each, one in memory at a time, in row groups of 100,000
    rows (the unit polars' streaming reader decodes at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(files):
        path = folder / f"part-{k:03d}.parquet"
        flights(k * rows, rows).write_parquet(
            path, compression="uncompressed", statistics=False, row_group_size=100_000
        )
        written.append(path)
    return written


@pytest.fixture(params=["guard", pytest.param("isolated", marks=ISOLATED)])
def isolation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _host(
    tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch, isolation: str, policy: str
) -> Iterator[Host]:
    files = {"acme_streams/__init__.py": CODE}
    points = {}
    for name, (cls, extra) in OPERATORS.items():
        files[f"acme_streams/{name}/__init__.py"] = f"from acme_streams import {cls}\n"
        files[f"acme_streams/{name}/symphony.toml"] = MANIFEST.format(name=name, extra=extra)
        points[f"acme.{name}"] = f"acme_streams.{name}:{cls}"
    installed("acme-streams", files, {"symphony.operators": points})
    monkeypatch.syspath_prepend(str(site))
    home = tmp_path / "home"
    home.mkdir()
    (home / "policy.toml").write_text(policy, encoding="utf-8")
    with Host(home, isolation=isolation, path=[str(site), *sys.path]) as running:
        running.discover()
        for name in OPERATORS:
            running.grant(f"acme.{name}")
        yield running
    for name in [name for name in sys.modules if name.startswith("acme_streams")]:
        del sys.modules[name]
    with warnings.catch_warnings():  # the in-process extensions' event loops, closed by the host
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def host(
    tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> Iterator[Host]:
    yield from _host(tmp_path, site, installed, monkeypatch, isolation, "")


@pytest.fixture
def isolated(tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """An isolated host, for what happens only there: plans fused in a runner."""
    _needs_isolation()
    yield from _host(tmp_path, site, installed, monkeypatch, "isolated", "")


@pytest.fixture
def limited(tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Host]:
    """An isolated host whose workers, and the runners of their fused steps, have `MEMORY` each."""
    _needs_isolation()
    policy = f"[limits]\nmemory = {MEMORY}\nfile_size = false\n"
    yield from _host(tmp_path, site, installed, monkeypatch, "isolated", policy)


def _needs_isolation() -> None:
    if not probe().supported:
        if os.environ.get("CI"):
            pytest.fail(UNSUPPORTED, pytrace=False)
        pytest.skip(UNSUPPORTED)


@pytest.fixture
def small(tmp_path: Path) -> list[Path]:
    return write_flights(tmp_path / "small", 3, 1_000)


def routes(host: Host, source: str | os.PathLike[str]) -> Pipeline:
    gain, pace = host.start("acme.gain"), host.start("acme.pace")
    return (
        Pipeline(name="routes")
        .source("flights", source)
        .step(gain, host=host)
        .step(pace, host=host, config={"factor": 0.5})
    )


def test_a_streamed_output_holds_what_the_in_memory_run_gives(
    host: Host, small: list[Path], tmp_path: Path
) -> None:
    pipeline = routes(host, tmp_path / "small" / "*.parquet")
    expected = pipeline.collect(engine="in-memory")

    parquet = pipeline.sink_parquet(tmp_path / "out" / "routes.parquet")
    arrow = pipeline.sink_ipc(tmp_path / "out" / "routes.arrow", node="acme.gain")

    assert_frame_equal(pl.read_parquet(parquet), expected)
    assert_frame_equal(pl.read_ipc(arrow), expected.drop("pace"))
    assert sorted(os.listdir(tmp_path / "out")) == ["routes.arrow", "routes.parquet"]  # nothing left over


def test_a_step_that_cannot_stream_is_named_before_anything_runs(
    host: Host, isolation: str, small: list[Path], tmp_path: Path
) -> None:
    doubler = host.start("acme.doubler")
    pipeline = routes(host, tmp_path / "small" / "*.parquet").step(doubler, host=host)
    out = tmp_path / "out" / "doubled.parquet"

    if isolation == "guard":  # in this process polars runs the Python function in its streaming engine
        assert pl.read_parquet(pipeline.sink_parquet(out)).height == pipeline.collect().height
        return
    with pytest.raises(PipelineError) as caught:
        pipeline.sink_parquet(out)

    message = str(caught.value)
    assert caught.value.extension == "acme.doubler"
    assert "step 'acme.doubler'" in message
    assert "step by step" in message
    assert "calls Python" in message or "not a native expression" in message
    assert "run() or collect()" in (caught.value.hint or "")
    assert not out.parent.exists() or not os.listdir(out.parent)


def test_an_isolated_output_streams_from_the_runner_its_plan_started_and_that_runner_writes_nothing(
    isolated: Host, small: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = routes(isolated, tmp_path / "small" / "*.parquet")
    pace = isolated.start("acme.pace")
    helpers: list[dict[str, Any]] = []
    start_helper = pace.workers.helper
    monkeypatch.setattr(pace.workers, "helper", lambda *a, **kw: helpers.append(kw) or start_helper(*a, **kw))
    plan = pipeline.build()  # starts the runner of the fused steps, as a plan does
    started = {reads: runner.pid for reads, runner in pace._runners.items()}
    expected = plan.collect(engine="in-memory")

    first = plan.sink_parquet(tmp_path / "out" / "first.parquet")
    again = plan.sink_ipc(tmp_path / "out" / "again.arrow", if_exists="fail")

    assert len(started) == len(helpers) == 1
    assert not helpers[0].get("write")  # it may read the sources and write nothing: this process writes
    assert {reads: runner.pid for reads, runner in pace._runners.items()} == started  # no other one
    assert all(runner.alive for runner in pace._runners.values())
    assert_frame_equal(pl.read_parquet(first), expected)
    assert_frame_equal(pl.read_ipc(again), expected)
    assert sorted(os.listdir(tmp_path / "out")) == ["again.arrow", "first.parquet"]
    # over a file there with if_exists="fail": refused, and nothing is left behind
    with pytest.raises(PipelineError):
        plan.sink_ipc(tmp_path / "out" / "again.arrow", if_exists="fail")
    assert sorted(os.listdir(tmp_path / "out")) == ["again.arrow", "first.parquet"]


def test_a_written_file_whose_columns_differ_from_the_built_schema_is_refused(
    isolated: Host, small: list[Path], tmp_path: Path
) -> None:
    forger = isolated.start("acme.forger")
    out = tmp_path / "out" / "forged.parquet"

    with pytest.raises(PipelineError) as caught:
        Pipeline.chain(small[0]).step(forger, host=isolated).sink_parquet(out)

    assert caught.value.extension == "acme.forger"
    assert "dep: String" in str(caught.value)
    assert "dep: Float64" in str(caught.value)
    assert not out.exists()
    assert os.listdir(out.parent) == []


@pytest.mark.slow
def test_an_isolated_pipeline_streams_data_several_times_larger_than_its_memory(
    limited: Host, tmp_path: Path
) -> None:
    host = limited
    files = write_flights(tmp_path / "big", FILES, ROWS_PER_FILE)
    assert sum(file.stat().st_size for file in files) > 4 * MEMORY  # on disk
    assert flights(0, ROWS_PER_FILE).estimated_size() * FILES > 3.5 * MEMORY  # in memory
    pipeline = routes(host, tmp_path / "big" / "*.parquet")
    out = tmp_path / "out" / "routes.parquet"

    pipeline.sink_parquet(out)

    # the whole output: as many rows as the query written by hand keeps, counted by polars streaming here
    kept = pl.scan_parquet(files).filter(pl.col("arr") > pl.col("dep")).select(pl.len())
    assert pl.scan_parquet(out).select(pl.len()).collect().item() == kept.collect(engine="streaming").item()
    # a sample, one file's rows: as the same pipeline run in memory on a file of those rows alone
    first, rows = 5 * ROWS_PER_FILE + 1_000_000, 200_000
    sample = tmp_path / "sample.parquet"
    flights(first, rows).write_parquet(sample)
    expected = routes(host, sample).collect(engine="in-memory")
    written = pl.scan_parquet(out).filter(pl.col("id").is_between(first, first + rows - 1)).collect()
    assert expected.height > rows // 3
    assert_frame_equal(written, expected)

    # in memory, the same pipeline is over the limit: its runner is killed, and the pipeline says so
    with pytest.raises(PipelineError) as caught:
        pipeline.collect(engine="in-memory")
    assert "fused steps acme.gain, acme.pace" in str(caught.value)
    assert f"over its memory limit ({MEMORY:,} bytes)" in str(caught.value)
