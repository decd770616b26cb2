"""Build hook: train the digits classifier and convert it to ONNX, into the package's ``model/`` folder.

scikit-learn ships the 1,797 8x8 digit images, so nothing is downloaded. Every fifth image (index 0, 5,
10, ...) is held out of training, so whoever serves the model can measure it on images it never saw.
``model/model.toml`` records the model's sha256 (the instrument's config checks the file against it
at activation), the split and the accuracy measured here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

HELD_OUT_EVERY = 5
SCALE = 16.0  # pixel values are 0..16; the model takes them divided by this


class DigitsModelHook(BuildHookInterface):  # type: ignore[type-arg]
    """Writes ``model/digits.onnx`` and ``model/model.toml`` before the wheel (or editable wheel) is built."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        folder = Path(self.root) / "src" / "symphony_example_digits" / "model"
        folder.mkdir(parents=True, exist_ok=True)
        model, card = build_model()
        _write(folder / "digits.onnx", model)
        _write(folder / "model.toml", card.encode())


def build_model() -> tuple[bytes, str]:
    """The ONNX model's bytes and its card (TOML)."""
    import numpy as np
    import skl2onnx
    import sklearn
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    pixels = (digits.data / SCALE).astype(np.float32)
    held_out = np.arange(len(pixels)) % HELD_OUT_EVERY == 0
    estimator = LogisticRegression(max_iter=2000, C=0.5)
    estimator.fit(pixels[~held_out], digits.target[~held_out])
    accuracy = float(estimator.score(pixels[held_out], digits.target[held_out]))
    onnx_model = to_onnx(
        estimator,
        initial_types=[("pixels", FloatTensorType([None, 64]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=17,
    )
    data: bytes = onnx_model.SerializeToString()
    card = (
        "# Written by hatch_build.py when this distribution was built.\n"
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"\n'
        'estimator = "LogisticRegression"\n'
        f"scale = {SCALE}\n"
        f"held_out_every = {HELD_OUT_EVERY}\n"
        f"trained_on = {int((~held_out).sum())}\n"
        f"held_out = {int(held_out.sum())}\n"
        f"held_out_accuracy = {accuracy:.4f}\n"
        f'scikit_learn = "{sklearn.__version__}"\n'
        f'skl2onnx = "{skl2onnx.__version__}"\n'
    )
    return data, card


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` at once, so a process reading the model never sees half a file."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=path.suffix)
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.chmod(temp, 0o644)
    os.replace(temp, path)
