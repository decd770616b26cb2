"""The digits example, installed in the workspace, answers the same in both tiers and is batched in both.

Isolated, the host's own pipeline gathers concurrent ``host.acall(id, "infer", ...)`` requests into
batches and sends each batch to the example's worker as one call; in-process, the same pipeline runs the
model itself. Callers see the same answers, the same errors and the same `Metrics`.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from symphony_core import Host
from symphony_core._security._sandbox._probe import probe
from symphony_instruments import InvalidInput, Metrics

DIGITS = "examples.digits"

pytestmark = pytest.mark.skipif(not probe().supported, reason="the isolated tier needs Linux")


def _read(
    home: Path, isolation: str, pixels: np.ndarray[Any, Any]
) -> tuple[list[dict[str, Any]], Metrics, str]:
    with Host(home, isolation=isolation) as host:
        host.discover()
        host.grant(DIGITS)
        host.start(DIGITS)

        async def callers() -> tuple[list[dict[str, Any]], str]:
            answers = await asyncio.gather(*(host.acall(DIGITS, "infer", {"pixels": p}) for p in pixels))
            with pytest.raises(InvalidInput) as refused:
                await host.acall(DIGITS, "infer", {"pixels": pixels[0].astype(np.float64)})
            return answers, str(refused.value)

        answers, refusal = asyncio.run(callers())
        metrics = host.call(DIGITS, "metrics")
    with warnings.catch_warnings():  # the host's loops are closed, not yet collected
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    return answers, metrics, refusal


def test_the_digits_example_isolated_is_batched_by_the_host_and_reads_what_it_reads_in_process(
    tmp_path, monkeypatch
):
    for name in [name for name in sys.modules if name.startswith("symphony_example_digits")]:
        monkeypatch.delitem(sys.modules, name)  # another test may have run it in this process
    digits = load_digits()
    pixels = (digits.data[::5] / 16.0).astype(np.float32)

    isolated, isolated_metrics, isolated_refusal = _read(tmp_path / "isolated", "isolated", pixels)
    assert "symphony_example_digits" not in sys.modules, "the host never imports an isolated instrument"
    local, local_metrics, local_refusal = _read(tmp_path / "guard", "guard", pixels)

    labels = [int(answer["label"]) for answer in isolated]
    assert labels == [int(answer["label"]) for answer in local]
    assert (np.array(labels) == digits.target[::5]).mean() > 0.9
    np.testing.assert_allclose(
        np.stack([answer["probabilities"] for answer in isolated]),
        np.stack([answer["probabilities"] for answer in local]),
        rtol=1e-5,
        atol=1e-6,
    )
    assert isolated_refusal == local_refusal
    for metrics in (isolated_metrics, local_metrics):
        assert isinstance(metrics, Metrics)
        assert (metrics.completed, metrics.invalid) == (len(pixels), 1)
    assert max(isolated_metrics.batch_sizes) > 1, "requests sent together share one call to the worker"
    assert isolated_metrics.batches < len(pixels) / 2
