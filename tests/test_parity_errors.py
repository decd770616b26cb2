"""What an extension raises and returns has the same types in both tiers: in the host's process under the
guard, and in kernel-restricted workers.

Every test runs twice, once per tier, with the same assertions, through a real `Host` and real installed
extensions: the workspace's examples (the digits instrument, the flight-weather operator, the dashboard
motif) and one operator installed here into a folder of its own (``acme.checked``, which raises the
operators' data and schema errors). Code that writes ``except Overloaded`` or reads ``error.problems``
works wherever the extension runs.
"""

from __future__ import annotations

import gc
import hashlib
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from symphony_core import ConfigError, ErrorDetail, Host, SymphonyError
from symphony_core._security._sandbox._probe import probe
from symphony_instruments import DeadlineExceeded, InvalidInput, Metrics, ModelHashMismatch, Overloaded
from symphony_motifs import CallRefused, InvalidArguments, MotifError
from symphony_operators import BadData, Mismatch, SchemaMismatch

DIGITS = "examples.digits"
WEATHER = "examples.flight-weather"
DASHBOARD = "examples.dashboard"
CHECKED = "acme.checked"
PIXELS = np.full(64, 0.5, dtype=np.float32)

CHECKED_MANIFEST = """
id = "acme.checked"
kind = "operator"
name = "Checked"
summary = "Passes a frame of delays through, once it has checked the frame."
targets = "symphony-operators>=0.1,<0.2"
"""
CHECKED_CODE = """
import polars as pl

from symphony_operators import BadData, Mismatch, Operator, SchemaMismatch


class Checked(Operator):
    def apply(self, frame):
        schema = frame.collect_schema()
        if "delay" not in schema:
            raise BadData(
                "the frame has no column 'delay'",
                column="delay",
                operator=self.id,
                hint="add the column, or rename the one that holds the delays",
            )
        if schema["delay"] != pl.Float64:
            found = Mismatch(self.id, "input", "delay", "Float64", str(schema["delay"]), "the caller's frame")
            raise SchemaMismatch([found], pipeline="checked")
        return frame
"""

pytestmark = pytest.mark.parametrize(
    "isolation",
    [
        "guard",
        pytest.param(
            "isolated",
            marks=pytest.mark.skipif(not probe().supported, reason="the isolated tier needs Linux"),
        ),
    ],
)


@pytest.fixture
def host(
    tmp_path: Path, site: Path, installed: Any, monkeypatch: pytest.MonkeyPatch, isolation: str
) -> Iterator[Host]:
    """A host of the given tier, with the examples and ``acme.checked`` discovered and granted."""
    installed(
        "acme-checked",
        {"acme_checked/__init__.py": CHECKED_CODE, "acme_checked/symphony.toml": CHECKED_MANIFEST},
        {"symphony.operators": {CHECKED: "acme_checked:Checked"}},
    )
    monkeypatch.syspath_prepend(str(site))
    with Host(tmp_path / "home", isolation=isolation, path=[str(site), *sys.path]) as running:
        running.discover()
        for extension in (DIGITS, WEATHER, DASHBOARD):
            running.grant(extension)
        yield running
    sys.modules.pop("acme_checked", None)
    with warnings.catch_warnings():  # the in-process extensions' event loops, closed by the host
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def raised(kind: type[SymphonyError], call: Callable[[], object]) -> Any:
    """What ``call`` raised, which must be exactly a ``kind``, blamed on the extension it concerns."""
    with pytest.raises(kind) as caught:
        call()
    assert type(caught.value) is kind
    return caught.value


# The instrument: request errors, model errors and results


def test_inputs_that_do_not_match_the_declared_ones_raise_invalid_input(host: Host) -> None:
    host.start(DIGITS)

    error = raised(InvalidInput, lambda: host.call(DIGITS, "infer", {"pixels": np.zeros(63, np.float32)}))

    assert isinstance(error, ValueError)
    assert (error.extension, error.input) == (DIGITS, "pixels")
    assert "input 'pixels' has shape (63,)" in error.message


def test_a_request_that_cannot_finish_in_time_is_refused_as_overloaded(host: Host) -> None:
    host.start(DIGITS)
    host.call(DIGITS, "infer", {"pixels": PIXELS})  # the pipeline learns what one request takes

    error = raised(Overloaded, lambda: host.call(DIGITS, "infer", {"pixels": PIXELS}, timeout=1e-7))

    assert (error.extension, error.queue_depth, error.max_queue) == (DIGITS, 0, 1024)
    assert error.retry_after > 0
    assert error.hint.endswith("retry later with backoff, or give the request a longer deadline")


def test_a_request_past_its_deadline_raises_deadline_exceeded(host: Host) -> None:
    host.start(DIGITS)

    error = raised(DeadlineExceeded, lambda: host.call(DIGITS, "infer", {"pixels": PIXELS}, timeout=0))

    assert isinstance(error, TimeoutError)
    assert (error.extension, error.deadline) == (DIGITS, 0)
    assert error.waited >= 0


def test_a_model_other_than_the_pinned_one_raises_model_hash_mismatch(host: Host) -> None:
    from symphony_example_digits import MODEL

    data = host.home.data_dir(DIGITS)
    data.mkdir(parents=True)
    (data / "digits.onnx").write_bytes(MODEL.read_bytes() + b"\0")
    host.set_config(DIGITS, "path", "{data}/digits.onnx")

    error = raised(ModelHashMismatch, lambda: host.start(DIGITS))

    assert error.extension == DIGITS
    assert (Path(error.file).name, error.expected) == (
        "digits.onnx",
        hashlib.sha256(MODEL.read_bytes()).hexdigest(),
    )
    assert error.actual == hashlib.sha256(MODEL.read_bytes() + b"\0").hexdigest()
    assert host.inspect(DIGITS).state.value == "failed"


def test_results_have_the_same_types(host: Host) -> None:
    host.start(DIGITS)

    answer = host.call(DIGITS, "infer", {"pixels": PIXELS})
    metrics = host.call(DIGITS, "metrics")
    card = host.call(DIGITS, "model_card")

    assert isinstance(answer["label"], np.integer)
    assert answer["label"].dtype == np.int64
    assert type(answer["probabilities"]) is np.ndarray
    assert type(metrics) is Metrics
    assert (metrics.completed, metrics.dropped) == (1, 0)
    assert type(card) is dict


def test_an_invalid_config_value_raises_config_error_naming_the_field(host: Host) -> None:
    error = raised(ConfigError, lambda: host.set_config(DIGITS, "batching.max_queue", "0"))

    assert error.extension == DIGITS
    (problem,) = error.problems
    assert (problem.location, problem.code) == ("batching.max_queue", "greater_than_equal")
    assert problem.message.startswith("Input should be greater than or equal to 1")


# Operators


def test_operator_config_values_that_do_not_validate_raise_config_error_with_problems(host: Host) -> None:
    host.start(WEATHER)
    frame = pl.LazyFrame({"origin": ["JFK"]})

    error = raised(ConfigError, lambda: host.call(WEATHER, "query", frame, {"weather": 5}))

    assert error.extension == WEATHER
    assert error.problems == (ErrorDetail("weather", "Input should be a valid string", "string_type"),)


def test_an_operators_data_and_schema_errors_keep_their_fields(host: Host) -> None:
    host.start(CHECKED)

    missing = raised(BadData, lambda: host.call(CHECKED, "query", pl.LazyFrame({"late": [1.0]})))
    wrong = raised(SchemaMismatch, lambda: host.call(CHECKED, "query", pl.LazyFrame({"delay": [1]})))

    assert (missing.extension, missing.column, missing.operator) == (CHECKED, "delay", CHECKED)
    assert missing.file is None
    assert wrong.mismatches == (
        Mismatch(CHECKED, "input", "delay", "Float64", "Int64", "the caller's frame"),
    )
    assert [problem.code for problem in wrong.problems] == ["dtype_mismatch"]
    assert "input column 'delay' is Int64, expected Float64 (from the caller's frame)" in wrong.message


# The motif


def test_a_motifs_errors_keep_their_class_and_problems(host: Host) -> None:
    results = host.home.data_dir(DASHBOARD) / "results.json"
    results.parent.mkdir(parents=True)
    results.write_text("{half a file", encoding="utf-8")
    host.start(DASHBOARD)

    broken = raised(MotifError, lambda: host.call(DASHBOARD, "invoke", "results", {}))
    invalid = raised(InvalidArguments, lambda: host.call(DASHBOARD, "invoke", "results", {"since": 3}))
    refused = raised(CallRefused, lambda: host.call(DASHBOARD, "invoke", "activate", {}))

    assert "results.json is not valid JSON" in broken.message
    assert invalid.problems == (ErrorDetail("since", "unexpected argument", "unexpected_argument"),)
    assert refused.summary == "'activate' is not exposed to the page"
    assert {broken.extension, invalid.extension, refused.extension} == {DASHBOARD}
