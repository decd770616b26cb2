"""Small ONNX models for the benchmarks and the cross-package tests, built with ``onnx.helper``.

The core never imports this (nor onnx, nor numpy): the benchmarks import it beside ``_common``, and
pytest finds it through ``pythonpath`` in ``pytest.ini``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
"""Every onnxruntime the kits support reads this IR version; onnx would otherwise write its newest."""


def write_mlp(path: Path, features: int, sizes: Sequence[int], *, seed: int = 0) -> int:
    """Write a ReLU MLP of Gemm layers (``features`` in, one layer per entry of ``sizes``, the last one
    the output) with seeded random weights and zero biases; return its parameter count.

    Its input is ``input`` and its output ``output``, both with a dynamic ``batch`` dimension."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    previous, width = "input", features
    for layer, out in enumerate(sizes):
        w = (rng.standard_normal((width, out)) / np.sqrt(width)).astype(np.float32)
        weights += [
            numpy_helper.from_array(w, f"w{layer}"),
            numpy_helper.from_array(np.zeros(out, np.float32), f"b{layer}"),
        ]
        last = layer == len(sizes) - 1
        name = "output" if last else f"g{layer}"
        nodes.append(helper.make_node("Gemm", [previous, f"w{layer}", f"b{layer}"], [name]))
        if not last:
            nodes.append(helper.make_node("Relu", [name], [f"r{layer}"]))
            previous = f"r{layer}"
        width = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", sizes[-1]])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=IR_VERSION)
    onnx.save(model, path)
    return int(sum(np.prod(w.dims) for w in weights))


def write_identity(path: Path, size: int = 2) -> None:
    """Write a model that returns its input ``x`` (``size`` floats) as ``y``: the smallest model a native
    runtime opens and runs."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=IR_VERSION), path
    )
