"""The base class of an instrument: an async ML model that predicts on batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from symphony_core import Extension

Batch = Mapping[str, npt.NDArray[np.generic]]
"""Named input or output arrays; the first axis of every array is the batch axis."""


class Instrument(Extension):
    """Base class of an instrument extension; subclasses implement `predict`.

    The host activates the instrument (load the model there), calls `predict` on batches, and
    deactivates it (release the model there).
    """

    kind: ClassVar[str] = "instrument"

    async def predict(self, batch: Batch) -> Batch:
        """Return the outputs for one batch of inputs."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(batch)")
