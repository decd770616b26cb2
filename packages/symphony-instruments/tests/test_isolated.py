"""An isolated instrument is batched by the host's own batcher, as an in-process one is.

Two instruments are installed into a site folder of their own, with their entry points and manifests:
a scikit-learn digits classifier served by `OnnxInstrument`, and ``acme.held``, whose ``predict``
takes as long as its input asks (to keep a worker busy), answers with a number drawn when it was
activated (to tell its workers apart) and when it ran, and ends its process when asked to (as a native
crash would). Each scenario runs through a real
`Host` in both tiers: in this process under the guard, and in kernel-restricted workers.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from symphony_core import Host, WorkerCrashed, write_distribution
from symphony_instruments import DeadlineExceeded, InvalidInput, Metrics, Overloaded

ISOLATED = pytest.mark.skipif(sys.platform != "linux", reason="the isolated tier needs Linux")
TIERS = ("guard", pytest.param("isolated", marks=ISOLATED))

NUMERALS = '''
"""Reads handwritten digits: a scikit-learn model served with no code of its own."""

from symphony_instruments import ModelConfig, OnnxInstrument


class NumeralsConfig(ModelConfig):
    path: str = "{data}/digits.onnx"


Numerals = OnnxInstrument
'''

NUMERALS_MANIFEST = """
id = "acme.numerals"
kind = "instrument"
name = "Numerals"
summary = "Reads handwritten digits from 8x8 images."
targets = "symphony-instruments>=0.1,<0.2"
config = "acme_numerals:NumeralsConfig"

[[permissions]]
type = "fs.read"
paths = ["{data}/*.onnx"]
reason = "Load the digit model from the extension's data folder."

[contributes]
inputs = [{name = "input", dtype = "float32", shape = ["batch", 64]}]
outputs = [
  {name = "label", dtype = "int64", shape = ["batch"]},
  {name = "probabilities", dtype = "float32", shape = ["batch", 10]},
]
"""

HELD = '''
"""Doubles its input; each batch takes as many seconds as its largest x[:, 1], and x[:, 0] < 0 ends the
process it runs in. ``drawn`` tells its instances apart (in a PID namespace of its own, each is pid 2)."""

import os
import time

import numpy as np

from symphony_instruments import Instrument, InstrumentConfig


class HeldConfig(InstrumentConfig):
    pass


class Held(Instrument[HeldConfig]):
    async def load(self):
        self.drawn = int.from_bytes(os.urandom(7), "little")

    def predict(self, batch):
        x = np.asarray(batch["x"])
        if (x[:, 0] < 0).any():
            os._exit(3)
        started = time.monotonic()  # the system's clock: the same in every process
        time.sleep(float(x[:, 1].max()))
        ran = np.array([[started, time.monotonic()]] * len(x))
        return {"y": x * 2, "drawn": np.full(len(x), self.drawn, dtype=np.int64), "ran": ran}
'''

HELD_MANIFEST = """
id = "acme.held"
kind = "instrument"
name = "Held"
summary = "Doubles its input, taking as long as the input asks."
targets = "symphony-instruments>=0.1,<0.2"
config = "acme_held:HeldConfig"

[contributes]
inputs = [{name = "x", dtype = "float32", shape = ["batch", 2]}]
outputs = [
  {name = "y", dtype = "float32", shape = ["batch", 2]},
  {name = "drawn", dtype = "int64", shape = ["batch"]},
  {name = "ran", dtype = "float64", shape = ["batch", 2]},
]
"""


def _install(site: Path, package: str, code: str, manifest: str, entry_point: str) -> None:
    """Lay out a distribution in ``site`` as an installer does: the package, its manifest, its dist-info."""
    name, _, value = (part.strip() for part in entry_point.partition("="))
    write_distribution(
        site,
        package.replace("_", "-"),
        files={
            f"{package}/__init__.py": textwrap.dedent(code).lstrip(),
            f"{package}/symphony.toml": textwrap.dedent(manifest).lstrip(),
        },
        entry_points={"symphony.instruments": {name: value}},
        requires=["symphony-instruments<0.2,>=0.1"],
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder holding ``acme-numerals`` and ``acme-held`` (and nothing else)."""
    site = tmp_path_factory.mktemp("site")
    _install(site, "acme_numerals", NUMERALS, NUMERALS_MANIFEST, "acme.numerals = acme_numerals:Numerals")
    _install(site, "acme_held", HELD, HELD_MANIFEST, "acme.held = acme_held:Held")
    return site


@pytest.fixture
def hosts(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Host]]:
    """Make a host of the given isolation, each in a home of its own; all are closed after the test."""
    monkeypatch.syspath_prepend(str(site))
    made: list[Host] = []

    def make(isolation: str) -> Host:
        host = Host(tmp_path / f"home-{isolation}", path=[str(site), *sys.path], isolation=isolation)
        made.append(host)
        host.discover()
        return host

    yield make
    for host in made:
        host.close()
    for name in [name for name in sys.modules if name.split(".")[0] in ("acme_numerals", "acme_held")]:
        del sys.modules[name]


def _numerals(host: Host, model: Path) -> None:
    data = host.home.data_dir("acme.numerals")
    data.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, data / "digits.onnx")
    host.grant("acme.numerals")
    host.start("acme.numerals")


async def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the batcher"
        await asyncio.sleep(0.005)


def _held(seconds: float, value: float = 1.0) -> dict[str, np.ndarray]:
    return {"x": np.array([value, seconds], dtype=np.float32)}


@ISOLATED
def test_concurrent_isolated_calls_are_batched_in_the_host_and_answer_what_in_process_calls_answer(
    hosts, digits
):
    rows = digits.features[:297]

    def serve(isolation: str) -> tuple[list[dict[str, np.ndarray]], Metrics, Exception]:
        host = hosts(isolation)
        _numerals(host, digits.path)

        async def callers() -> tuple[list[dict[str, np.ndarray]], Exception]:
            answers = await asyncio.gather(
                *(host.acall("acme.numerals", "infer", {"input": r}) for r in rows)
            )
            try:
                await host.acall("acme.numerals", "infer", {"input": rows[0].astype(np.float64)})
            except InvalidInput as refused:
                return answers, refused
            raise AssertionError("a float64 request was not refused")

        answers, refused = asyncio.run(callers())
        return answers, host.call("acme.numerals", "metrics"), refused

    isolated, isolated_metrics, isolated_refusal = serve("isolated")
    assert "acme_numerals" not in sys.modules, "the host never imports an isolated instrument"
    local, local_metrics, local_refusal = serve("guard")

    assert [int(a["label"]) for a in isolated] == [int(a["label"]) for a in local]
    assert [int(a["label"]) for a in isolated] == digits.estimator.predict(rows).tolist()
    np.testing.assert_allclose(
        np.stack([a["probabilities"] for a in isolated]),
        np.stack([a["probabilities"] for a in local]),
        rtol=1e-5,
        atol=1e-6,
    )
    for metrics in (isolated_metrics, local_metrics):
        assert isinstance(metrics, Metrics)
        assert (metrics.completed, metrics.invalid) == (297, 1)
        assert sum(size * count for size, count in metrics.batch_sizes.items()) == 297
    assert max(isolated_metrics.batch_sizes) > 1, "requests that arrive together share a worker call"
    assert isolated_metrics.batches < 297 / 2
    assert str(isolated_refusal) == str(local_refusal), "refused by the host's own checks in both tiers"


@pytest.mark.parametrize("isolation", TIERS)
def test_a_deadline_that_passes_while_the_model_is_busy_raises_deadline_exceeded_at_the_deadline(
    hosts, isolation
):
    host = hosts(isolation)
    host.start("acme.held")

    async def scenario() -> tuple[Any, Any, float, dict[str, np.ndarray]]:
        busy = asyncio.ensure_future(host.acall("acme.held", "infer", _held(0.8), timeout=5))
        await _until(lambda: host.call("acme.held", "metrics").running == 1)
        started = time.monotonic()
        late = await asyncio.gather(
            host.acall("acme.held", "infer", _held(0.0), timeout=0.05), return_exceptions=True
        )
        waited = time.monotonic() - started
        return await busy, late[0], waited, await host.acall("acme.held", "infer", _held(0.0, 7.0))

    busy, late, waited, after = asyncio.run(scenario())
    metrics = host.call("acme.held", "metrics")

    assert busy["y"][0] == 2.0
    assert isinstance(late, DeadlineExceeded)
    assert "deadline passed" in str(late)
    assert waited < 0.5, "the caller is answered at its deadline, not when the model is free"
    assert after["y"].tolist() == [14.0, 0.0]
    assert (metrics.completed, metrics.deadline_exceeded) == (2, 1)


@pytest.mark.parametrize("isolation", TIERS)
def test_a_full_queue_refuses_at_once_with_overloaded_and_every_queued_request_is_answered(hosts, isolation):
    host = hosts(isolation)
    host.set_config("acme.held", "batching.max_queue", "2")
    host.start("acme.held")

    async def scenario() -> tuple[list[Any], float, Metrics]:
        busy = asyncio.ensure_future(host.acall("acme.held", "infer", _held(0.5)))
        await _until(lambda: host.call("acme.held", "metrics").running == 1)
        queued = [asyncio.ensure_future(host.acall("acme.held", "infer", _held(0.0, n))) for n in (2.0, 3.0)]
        await _until(lambda: host.call("acme.held", "metrics").queue_depth == 2)
        started = time.monotonic()
        with pytest.raises(Overloaded, match=r"2 requests are already waiting \(batching.max_queue = 2\)"):
            await host.acall("acme.held", "infer", _held(0.0, 9.0))
        refused_in = time.monotonic() - started
        return await asyncio.gather(busy, *queued), refused_in, host.call("acme.held", "metrics")

    answers, refused_in, metrics = asyncio.run(scenario())

    assert refused_in < 0.3, "an overloaded batcher refuses at once"
    assert [answer["y"][0] for answer in answers] == [2.0, 4.0, 6.0]
    assert (metrics.completed, metrics.overloaded, metrics.queue_depth) == (3, 1, 0)
    assert metrics.batch_sizes == {1: 1, 2: 1}, "the two that waited ran together"


@pytest.mark.parametrize("isolation", TIERS)
def test_a_request_whose_caller_went_away_is_skipped_and_never_runs(hosts, isolation):
    host = hosts(isolation)
    host.start("acme.held")

    async def scenario() -> tuple[list[Any], Metrics]:
        busy = asyncio.ensure_future(host.acall("acme.held", "infer", _held(0.4)))
        await _until(lambda: host.call("acme.held", "metrics").running == 1)
        gone = asyncio.ensure_future(host.acall("acme.held", "infer", _held(0.0, 5.0)))
        kept = asyncio.ensure_future(host.acall("acme.held", "infer", _held(0.0, 6.0)))
        await _until(lambda: host.call("acme.held", "metrics").queue_depth == 2)
        gone.cancel()
        answers = await asyncio.gather(busy, kept)
        return answers, host.call("acme.held", "metrics")

    answers, metrics = asyncio.run(scenario())

    assert [answer["y"][0] for answer in answers] == [2.0, 12.0]
    assert (metrics.completed, metrics.cancelled) == (2, 1)
    assert metrics.batch_sizes == {1: 2}, "the cancelled request joined no batch"


@ISOLATED
def test_two_workers_of_an_isolated_instrument_each_run_a_batch_at_the_same_time(hosts):
    host = hosts("isolated")
    host.set_config("acme.held", "batching.in_flight", "2")
    host.set_config("acme.held", "batching.max_batch_size", "1")
    host.start("acme.held")

    async def pair() -> tuple[set[int], list[tuple[float, float]]]:
        answers = await asyncio.gather(*(host.acall("acme.held", "infer", _held(0.3)) for _ in range(2)))
        return {int(answer["drawn"]) for answer in answers}, [tuple(answer["ran"]) for answer in answers]

    deadline = time.monotonic() + 30
    while True:  # the second worker starts in the background once the host has read the config
        workers, ran = asyncio.run(pair())
        if len(workers) == 2 or time.monotonic() > deadline:
            break
    assert len(workers) == 2, "a second worker came up"

    # The pair that first met the second worker may have waited for it to come up; with both warm, a
    # new pair runs side by side.
    workers, ran = asyncio.run(pair())
    assert len(workers) == 2, "each batch ran in a worker of its own"
    assert max(start for start, _ in ran) < min(end for _, end in ran), "the two batches ran at the same time"


@ISOLATED
def test_a_worker_that_dies_under_a_batch_fails_that_batch_alone_and_its_replacement_runs_the_next(hosts):
    host = hosts("isolated")
    host.start("acme.held")

    async def scenario() -> tuple[list[Any], dict[str, np.ndarray]]:
        busy = asyncio.ensure_future(host.acall("acme.held", "infer", _held(0.3)))
        await _until(lambda: host.call("acme.held", "metrics").running == 1)
        doomed = [host.acall("acme.held", "infer", _held(0.0, value)) for value in (1.0, -1.0, 2.0)]
        outcomes = await asyncio.gather(busy, *doomed, return_exceptions=True)
        return outcomes, await host.acall("acme.held", "infer", _held(0.0, 4.0))

    outcomes, after = asyncio.run(scenario())
    metrics = host.call("acme.held", "metrics")

    assert outcomes[0]["y"][0] == 2.0
    assert all(isinstance(outcome, WorkerCrashed) for outcome in outcomes[1:])
    assert metrics.batch_sizes == {1: 2, 3: 1}
    assert metrics.failed == 3, "the batch ran once: its requests were not retried one by one"
    assert after["y"].tolist() == [8.0, 0.0]
    assert host.inspect("acme.held").state.value == "active"


@pytest.mark.parametrize("isolation", TIERS)
def test_a_request_larger_than_a_batch_runs_in_parts_and_is_answered_whole_in_order(hosts, isolation):
    host = hosts(isolation)
    host.set_config("acme.held", "batching.max_batch_size", "4")
    host.start("acme.held")
    x = np.stack([np.arange(10, dtype=np.float32), np.zeros(10, dtype=np.float32)], axis=1)

    answer = host.call("acme.held", "infer", {"x": x})
    with pytest.raises(InvalidInput):  # checked whole, before any part is queued
        host.call("acme.held", "infer", {"x": np.ones((9, 3), dtype=np.float32)})
    metrics = host.call("acme.held", "metrics")

    np.testing.assert_array_equal(answer["y"], x * 2)
    assert answer["drawn"].shape == (10,)
    assert metrics.batch_sizes == {4: 2, 2: 1}, "parts of at most max_batch_size items"
    assert (metrics.completed, metrics.invalid) == (3, 1)


@ISOLATED
def test_a_large_request_fails_whole_when_the_worker_under_one_of_its_parts_dies(hosts):
    host = hosts("isolated")
    host.set_config("acme.held", "batching.max_batch_size", "2")
    host.start("acme.held")
    x = np.array([[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [3.0, 0.0]], dtype=np.float32)

    with pytest.raises(WorkerCrashed):
        host.call("acme.held", "infer", {"x": x})
    after = host.call("acme.held", "infer", {"x": x[:2]})

    np.testing.assert_array_equal(after["y"], x[:2] * 2)
