"""Test an instrument in a real host: the pytest plugin's `Harness`, plus helpers for instruments.

The fixtures come with Symphony's pytest plugin, which pytest loads by itself: ``symphony_host`` (a
`Harness` in a temporary ``SYMPHONY_HOME``) and ``symphony_home``. Install the project under test first
(``pip install -e .``) so the host finds it through its entry point::

    from symphony_instruments.testing import Harness, infer, sample_inputs

    def test_it_scores(symphony_host: Harness) -> None:
        symphony_host.start("acme.scorer")
        outputs = infer(symphony_host, "acme.scorer", sample_inputs(symphony_host.inspect("acme.scorer").manifest))
        symphony_host.assert_within_permissions("acme.scorer")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from symphony_core import Harness

from ._contributions import Array, TensorSpec, read_contributions

__all__ = ["Harness", "infer", "sample_inputs"]


def infer(
    harness: Harness, extension: str, inputs: Mapping[str, Any], *, timeout: float | None = None
) -> dict[str, Array]:
    """Send one request to an active instrument through the host and return its outputs.

    The outputs are checked against the outputs the manifest declares (names, dtypes, fixed sizes):
    a mismatch fails with an `AssertionError` naming the tensor.
    """
    outputs: dict[str, Array] = harness.call(extension, "infer", inputs, timeout=timeout)
    manifest = harness.inspect(extension).manifest or {}
    declared = read_contributions(manifest, extension=extension).outputs
    problems = [problem for spec in declared for problem in _differences(spec, outputs)]
    if problems:
        raise AssertionError(
            f"{extension} answered outputs that differ from its manifest's [contributes]:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )
    return outputs


def sample_inputs(manifest: Mapping[str, Any] | None, items: int = 2, *, seed: int = 0) -> dict[str, Array]:
    """A request of ``items`` items made of random values that the manifest's declared inputs admit.

    Dynamic axes other than the batch axis get size 2; an input whose batch axis is fixed to 1 gets one
    item. Floats are drawn from [-1, 1), integers from [0, 10), strings are ``"item<n>"``.
    """
    if items < 1:
        raise ValueError(f"items must be at least 1, not {items}")
    contributions = read_contributions(manifest or {})
    random = np.random.default_rng(seed)
    request: dict[str, Array] = {}
    for spec in contributions.inputs:
        batch = 1 if spec.shape[0] == 1 else items
        shape = (batch, *(size if isinstance(size, int) else 2 for size in spec.shape[1:]))
        dtype = spec.numpy_dtype
        if dtype.kind == "O":
            values = np.array([f"item{n}" for n in range(int(np.prod(shape)))], dtype=object).reshape(shape)
        elif dtype.kind == "b":
            values = random.integers(0, 2, size=shape).astype(bool)
        elif dtype.kind in "iu":
            values = random.integers(0, 10, size=shape).astype(dtype)
        else:
            values = random.uniform(-1.0, 1.0, size=shape).astype(dtype)
        request[spec.name] = values
    return request


def _differences(spec: TensorSpec, outputs: Mapping[str, Any]) -> list[str]:
    if spec.name not in outputs:
        return [f"output '{spec.name}' is missing (it answered {sorted(outputs)})"]
    array = np.asarray(outputs[spec.name])
    problems = []
    if array.dtype != spec.numpy_dtype:
        problems.append(f"output '{spec.name}' is {array.dtype}, but the manifest declares {spec.dtype}")
    fixed = spec.shape[1:]
    found = array.shape[-len(fixed) :] if fixed else ()
    if len(array.shape) < len(fixed) or any(
        isinstance(size, int) and size != got for size, got in zip(fixed, found, strict=True)
    ):
        problems.append(
            f"output '{spec.name}' has shape {array.shape}, but the manifest declares "
            f"[{', '.join(map(str, spec.shape))}]"
        )
    return problems
