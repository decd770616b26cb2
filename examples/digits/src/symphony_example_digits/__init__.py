"""Reads handwritten digits: a scikit-learn classifier, converted to ONNX when this distribution was built.

The model and its card (``model/digits.onnx``, ``model/model.toml``) are made by the build
(``hatch_build.py``). The config's ``sha256`` is the one the build recorded, so a model file changed
after the build is refused at activation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from symphony_instruments import ModelConfig, ModelError, OnnxInstrument

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

MODEL = Path(__file__).parent / "model" / "digits.onnx"
CARD = MODEL.with_name("model.toml")


def _card() -> dict[str, Any]:
    try:
        return tomllib.loads(CARD.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"the digits model was not built: {CARD} is missing",
            extension="examples.digits",
            hint="reinstall symphony-example-digits: its build trains the model and converts it to ONNX "
            "(in the Symphony workspace, `hatch env prune` makes the next hatch command do it)",
        ) from None


MODEL_CARD = _card()


class DigitsConfig(ModelConfig):
    """Which model file to serve and its expected hash: by default the model built with this package."""

    path: str = Field(
        default=str(MODEL),
        min_length=1,
        description=(
            "The model file: the one built with this package, or one in the data folder (`{data}/...`)."
        ),
    )
    sha256: str | None = Field(
        default=str(MODEL_CARD["sha256"]),
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The model file's SHA-256, recorded by the build; a file with another hash is refused.",
    )


class Digits(OnnxInstrument):
    """Serves the digits model: 8x8 images (64 floats in 0..1) in, the digit and its probabilities out."""

    def model_card(self) -> dict[str, Any]:
        """How the shipped model was made: its hash, the held-out split and the accuracy measured then."""
        return dict(MODEL_CARD)
