"""Real models for the instrument tests, made offline: an MLP built with ``onnx.helper`` from random
weights, scikit-learn models trained on its bundled datasets and converted with skl2onnx, and small test
instruments whose ``predict`` can be held, to drive the batcher into the states a test needs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from symphony_instruments import Batch, Context, Instrument, InstrumentConfig

MLP_INPUT = 256
MLP_OUTPUT = 10
MLP_MANIFEST = {
    "contributes": {
        "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", MLP_INPUT]}],
        "outputs": [{"name": "output", "dtype": "float32", "shape": ["batch", MLP_OUTPUT]}],
    }
}


def mlp_model(path: Path, *, hidden: int = 2048, layers: int = 2, seed: int = 0) -> int:
    """Write a ReLU MLP (256 -> hidden x layers -> 10) with random weights; return its parameter count."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    previous, width = "input", MLP_INPUT
    for layer, out in enumerate([hidden] * layers + [MLP_OUTPUT]):
        w = (rng.standard_normal((width, out)) / np.sqrt(width)).astype(np.float32)
        b = (rng.standard_normal(out) * 0.01).astype(np.float32)
        weights += [numpy_helper.from_array(w, f"w{layer}"), numpy_helper.from_array(b, f"b{layer}")]
        last = layer == layers
        nodes.append(
            helper.make_node(
                "Gemm", [previous, f"w{layer}", f"b{layer}"], ["output" if last else f"g{layer}"]
            )
        )
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{layer}"], [f"r{layer}"]))
            previous = f"r{layer}"
        width = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", MLP_INPUT])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", MLP_OUTPUT])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return int(sum(np.prod(w.dims) for w in weights))


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``mlp.onnx`` (4.7M parameters, compute-bound) and the scikit-learn models."""
    folder = tmp_path_factory.mktemp("models")
    parameters = mlp_model(folder / "mlp.onnx")
    assert 1_000_000 <= parameters <= 5_000_000
    return folder


@dataclass
class Sklearn:
    """A scikit-learn model, its ONNX conversion on disk, and the data to check one against the other."""

    estimator: Any
    path: Path
    features: np.ndarray[Any, Any]
    classes: int


def _convert(estimator: Any, features: int, path: Path) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = to_onnx(
        estimator,
        initial_types=[("input", FloatTensorType([None, features]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=17,
    )
    path.write_bytes(onnx_model.SerializeToString())


@pytest.fixture(scope="session")
def digits(models: Path) -> Sklearn:
    """Logistic regression on scikit-learn's bundled 8x8 digits."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    data = load_digits()
    features = (data.data / 16.0).astype(np.float32)
    estimator = LogisticRegression(max_iter=500).fit(features[:1500], data.target[:1500])
    _convert(estimator, 64, models / "digits.onnx")
    return Sklearn(estimator, models / "digits.onnx", features[1500:], 10)


@pytest.fixture(scope="session")
def iris(models: Path) -> Sklearn:
    """A random forest on scikit-learn's bundled iris flowers."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    data = load_iris()
    features = data.data.astype(np.float32)
    estimator = RandomForestClassifier(n_estimators=20, random_state=0).fit(features, data.target)
    _convert(estimator, 4, models / "iris.onnx")
    return Sklearn(estimator, models / "iris.onnx", features, 3)


def classifier_manifest(features: int, classes: int) -> dict[str, Any]:
    """The [contributes] table of a skl2onnx classifier without ZipMap."""
    return {
        "contributes": {
            "inputs": [{"name": "input", "dtype": "float32", "shape": ["batch", features]}],
            "outputs": [
                {"name": "label", "dtype": "int64", "shape": ["batch"]},
                {"name": "probabilities", "dtype": "float32", "shape": ["batch", classes]},
            ],
        }
    }


@pytest.fixture
def context(tmp_path: Path) -> Callable[..., Context]:
    """Make the `Context` a host would give an instrument: its manifest, config and own folders."""

    def make(manifest: Mapping[str, Any], config: Any = None, ext_id: str = "tests.model") -> Context:
        data, cache = tmp_path / "data", tmp_path / "cache"
        data.mkdir(exist_ok=True)
        cache.mkdir(exist_ok=True)
        return Context(
            id=ext_id,
            version="1.0.0",
            manifest=manifest,
            config=config,
            data_dir=data,
            cache_dir=cache,
            logger=logging.getLogger(f"symphony.ext.{ext_id}"),
        )

    return make


class Gate(Instrument[InstrumentConfig]):
    """A test instrument that doubles its input, records every batch, and can be held closed.

    While ``gate`` is clear, ``predict`` waits: the model is busy, so requests pile up in the queue.
    Items whose first value is negative make it raise, as a model does on input it cannot handle.
    """

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches: list[np.ndarray[Any, Any]] = []

    def predict(self, batch: Batch) -> Batch:
        self.entered.set()
        self.gate.wait(30)
        values = np.asarray(batch["x"])
        self.batches.append(values.copy())
        if (values[:, 0] < 0).any():
            raise ValueError("negative values are not supported")
        return {"y": values * 2}


GATE_MANIFEST = {
    "contributes": {
        "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 2]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 2]}],
    }
}


class Kit:
    """What test modules use from here (they cannot import conftest in importlib mode)."""

    Gate = Gate
    GATE_MANIFEST = GATE_MANIFEST
    MLP_MANIFEST = MLP_MANIFEST
    classifier_manifest = staticmethod(classifier_manifest)
    mlp_model = staticmethod(mlp_model)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    """Test instruments and manifests."""
    return Kit
