"""Native code inside an isolated worker is held by the kernel: polars and onnxruntime escapes fail.

The in-process guard cannot stop polars or onnxruntime from opening files themselves
(``test_guard_native.py`` proves it). Here the same reads run inside an isolated worker, where Landlock
refuses them, while the granted file next to it still works. Bulk data (numpy arrays, polars frames)
crosses between host and worker through shared memory. Core-only escapes are in
``packages/symphony-core/tests/test_sandbox.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from _models import write_identity

from symphony_core import Host
from symphony_core._model._errors import RemoteError
from symphony_core._model._permissions import FileRead, Permission
from symphony_core._security._sandbox._probe import probe
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._store._home import Home
from symphony_operators._isolated import IsolatedOperator

CAPABILITIES = probe()
pytestmark = pytest.mark.skipif(
    not CAPABILITIES.has("landlock"),
    reason=f"the kernel cannot restrict files here: {CAPABILITIES.mechanisms.get('landlock')}",
)

NATIVE_EXTENSION = """
import numpy
import onnxruntime
import polars

from symphony_core import Extension


class Native(Extension):
    def read_csv(self, path):
        return polars.read_csv(path)

    def scan_sum(self, path):
        return polars.scan_csv(path).select(polars.col("b").sum()).collect().item()

    def lazy_scan(self, path):
        return polars.scan_csv(path)

    def streaming_total(self, rows):
        frame = polars.LazyFrame({"k": numpy.arange(rows) % 7, "v": numpy.ones(rows)})
        return frame.group_by("k").agg(polars.col("v").sum()).sort("k").collect(engine="streaming")

    def run_model(self, path, x):
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    def same(self, value):
        return value

    def doubled(self, frame):
        return frame.with_columns(polars.col("a") * 2)

    def total(self, array):
        return array.sum()

    def exchange_files(self, folder):
        return sorted(os.listdir(folder))
"""


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("code")
    (folder / "acme_native").mkdir()
    (folder / "acme_native" / "__init__.py").write_text("import os\n" + NATIVE_EXTENSION, encoding="utf-8")
    return folder


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """``forbidden/`` and ``granted/``, each with the same CSV table and the same ONNX model."""
    for name in ("forbidden", "granted"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "table.csv").write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
        write_identity(tmp_path / name / "identity.onnx")
    return tmp_path


@pytest.fixture
def worker(place: Path, code: Path) -> Iterator[WorkerProcess]:
    """A worker of the native test extension, granted ``granted/`` only."""
    started = start_worker(place, code, FileRead(paths=(str(place / "granted"),), reason="reads its inputs"))
    yield started
    started.stop()


def start_worker(place: Path, code: Path, *permissions: Permission, **options: Any) -> WorkerProcess:
    spec = WorkerSpec(
        extension="acme.native",
        entry_point="acme_native:Native",
        home=Home(place / "home"),
        permissions=permissions,
        path=(str(code),),
        **options,
    )
    return WorkerProcess.start(spec, timeout=120)


def refused(call: Callable[[], object]) -> RemoteError:
    with pytest.raises(RemoteError) as failure:
        call()
    return failure.value


# Escapes through native code


def test_polars_read_csv_of_a_forbidden_file_is_refused_by_the_kernel(worker, place) -> None:
    error = refused(lambda: worker.call("read_csv", (str(place / "forbidden" / "table.csv"),)))

    assert error.builtin == "PermissionError"
    assert "os error 13" in str(error)
    granted = worker.call("read_csv", (str(place / "granted" / "table.csv"),))
    assert granted.to_dicts() == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def test_polars_scan_csv_collect_of_a_forbidden_file_is_refused_by_the_kernel(worker, place) -> None:
    error = refused(lambda: worker.call("scan_sum", (str(place / "forbidden" / "table.csv"),)))

    assert error.builtin == "PermissionError"
    assert worker.call("scan_sum", (str(place / "granted" / "table.csv"),)) == 6


def test_a_lazy_query_an_extension_returns_runs_inside_the_sandbox_not_in_the_host(worker, place) -> None:
    error = refused(lambda: worker.call("lazy_scan", (str(place / "forbidden" / "table.csv"),)))

    assert error.builtin == "PermissionError"
    returned = worker.call("lazy_scan", (str(place / "granted" / "table.csv"),))
    assert isinstance(returned, pl.LazyFrame)
    assert returned.collect().to_dicts() == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def test_onnxruntime_cannot_load_a_forbidden_model_and_runs_a_granted_one(worker, place) -> None:
    x = np.array([1.0, 2.0], dtype=np.float32)

    error = refused(lambda: worker.call("run_model", (str(place / "forbidden" / "identity.onnx"), x)))

    assert "system error number 13" in str(error)
    assert worker.call("run_model", (str(place / "granted" / "identity.onnx"), x)).tolist() == [1.0, 2.0]


def test_a_polars_streaming_query_runs_under_the_sandbox(worker) -> None:
    result = worker.call("streaming_total", (200_000,))

    assert result["v"].sum() == 200_000
    assert result.height == 7


# Bulk data through shared memory


def test_a_large_array_crosses_both_ways_through_shared_memory_and_comes_back_equal(worker) -> None:
    array = np.arange(4_000_000, dtype=np.float64).reshape(2000, 2000)

    back = worker.call("same", (array,))

    assert back.shape == array.shape
    assert np.array_equal(back, array)
    assert back.flags.writeable
    assert worker.call("total", (array,)) == array.sum()
    assert worker.call("exchange_files", (worker._exchange,)) == [], "the worker deleted the host's file"


def test_a_large_frame_and_a_lazy_frame_cross_through_shared_memory(worker) -> None:
    frame = pl.DataFrame({"a": np.arange(1_000_000), "b": np.arange(1_000_000) * 0.5})

    doubled = worker.call("doubled", (frame,))
    lazily = worker.call("doubled", (frame.lazy(),))

    assert doubled["a"].to_list()[:3] == [0, 2, 4]
    assert isinstance(lazily, pl.LazyFrame)
    assert lazily.collect().equals(doubled)


def test_small_values_and_series_travel_inline(worker) -> None:
    series = pl.Series("s", [1, 2, 3])

    assert worker.call("same", (series,)).to_list() == [1, 2, 3]
    assert worker.call("same", (np.float32(1.5),)) == 1.5
    assert worker.call("same", (np.array([1, 2], dtype=np.int8),)).tolist() == [1, 2]
    assert worker.call("same", (np.arange(6.0).reshape(2, 3).T,)).tolist() == [
        [0.0, 3.0],
        [1.0, 4.0],
        [2.0, 5.0],
    ]
    assert worker.call("same", (np.array(["a", "bc"]),)).tolist() == ["a", "bc"]
    assert worker.call("same", (np.float64(2.5),)) == 2.5


def test_everything_also_works_when_bulk_data_goes_through_the_pipe(place, code) -> None:
    piped = start_worker(place, code, inline_limit=1 << 40)
    try:
        frame = pl.DataFrame({"a": np.arange(500_000)})
        assert piped.call("doubled", (frame,))["a"].sum() == 2 * frame["a"].sum()
    finally:
        piped.stop()


def test_arrays_of_python_objects_or_structured_types_are_refused_before_they_are_sent(worker) -> None:
    with pytest.raises(TypeError, match="Python objects"):
        worker.call("same", (np.array([object()], dtype=object),))
    with pytest.raises(TypeError, match="structured"):
        worker.call("same", (np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),))

    assert os.listdir(worker._exchange) == []


# Through the host


def test_the_route_delays_example_runs_isolated_with_its_frames_crossing_both_ways(
    tmp_path, monkeypatch
) -> None:
    for name in [name for name in sys.modules if name.startswith("symphony_example_route_delays")]:
        monkeypatch.delitem(sys.modules, name)  # another test may have run it in this process
    flights = pl.LazyFrame(
        {
            "origin": ["JFK", "JFK", "LGA", "EWR"],
            "dest": ["LAX", "LAX", "ORD", "LAX"],
            "dep_delay": [10.0, 30.0, -5.0, None],
            "arr_delay": [5.0, 25.0, -10.0, 40.0],
        }
    )
    with Host(tmp_path, isolation="isolated") as host:
        host.discover()
        running = host.start("examples.route-delays")
        result = host.call("examples.route-delays", "apply", flights)
        assert isinstance(result, pl.LazyFrame)  # its rows are made in its worker when collected
        jfk = result.filter(pl.col("origin") == "JFK").collect()
        assert "symphony_example_route_delays" not in sys.modules, "the host never imports it"

    assert isinstance(running, IsolatedOperator)  # the operators kit's stand-in, kit code only
    assert jfk["mean_dep_delay"].item() == 20.0
