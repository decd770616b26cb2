"""The digits instrument as its build left it: the model file, its card, and the config that pins it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from symphony_example_digits import CARD, MODEL, MODEL_CARD, Digits, DigitsConfig

from symphony_instruments import Context, ModelHashMismatch

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MANIFEST = tomllib.loads((MODEL.parent.parent / "symphony.toml").read_text(encoding="utf-8"))


async def _activated(tmp_path: Path, config: DigitsConfig) -> Digits:
    instrument = Digits()
    context = Context(
        id="examples.digits",
        version="0.1.0",
        manifest=MANIFEST,
        config=config,
        data_dir=tmp_path,
        cache_dir=tmp_path,
        logger=logging.getLogger("symphony.ext.examples.digits"),
    )
    await instrument.activate(context)
    return instrument


def test_the_config_pins_the_model_the_build_made():
    assert CARD.is_file()
    assert DigitsConfig().path == str(MODEL)
    assert DigitsConfig().sha256 == hashlib.sha256(MODEL.read_bytes()).hexdigest() == MODEL_CARD["sha256"]


def test_the_onnx_model_scores_on_held_out_digits_what_the_build_measured_with_scikit_learn(tmp_path):
    digits = load_digits()
    every = MODEL_CARD["held_out_every"]
    pixels = (digits.data[::every] / MODEL_CARD["scale"]).astype(np.float32)

    async def infer() -> list[dict[str, np.ndarray]]:
        instrument = await _activated(tmp_path, DigitsConfig())
        try:  # one request per image, all at once: the pipeline batches them
            return await asyncio.gather(*(instrument.infer({"pixels": image}) for image in pixels))
        finally:
            await instrument.deactivate()

    labels = np.array([int(answer["label"]) for answer in asyncio.run(infer())])
    accuracy = float((labels == digits.target[::every]).mean())

    assert len(labels) == MODEL_CARD["held_out"] == 360
    assert accuracy > 0.9
    assert accuracy == pytest.approx(MODEL_CARD["held_out_accuracy"], abs=1e-4)


def test_a_model_file_that_is_not_the_one_built_is_refused_with_both_hashes(tmp_path):
    changed = tmp_path / "digits.onnx"
    changed.write_bytes(MODEL.read_bytes() + b"\0")

    with pytest.raises(ModelHashMismatch) as caught:
        asyncio.run(_activated(tmp_path, DigitsConfig(path="{data}/digits.onnx")))

    message = str(caught.value)
    assert str(changed) in message
    assert MODEL_CARD["sha256"] in message
    assert hashlib.sha256(changed.read_bytes()).hexdigest() in message
