"""The errors an instrument raises on purpose, all in the core's `SymphonyError` family.

Two families: the model cannot be served (raised by ``activate``, so the host marks the instrument
failed with the reason), and one request cannot be answered (raised to that request's caller only;
every other request goes on).
"""

from __future__ import annotations

from symphony_core import SymphonyError


class InstrumentError(SymphonyError):
    """Base class of the errors this package raises."""


# The model cannot be served: raised while activating.


class ModelError(InstrumentError):
    """Raised when the model file is missing, unreadable, or refused by onnxruntime."""


class ModelHashMismatch(ModelError):
    """Raised when the model file's sha256 differs from the one its config expects."""

    def __init__(self, file: str, expected: str, actual: str, *, extension: str | None = None) -> None:
        self.file = file
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"model file {file} has sha256 {actual}, but its config expects {expected}",
            extension=extension,
            hint="the file was changed or replaced: restore the original, or update `sha256` in the config "
            "if the new model is the one you trust",
        )


class ModelMismatch(ModelError):
    """Raised when the model's inputs or outputs differ from those the manifest declares."""


# One request cannot be answered: raised to its caller only.


class InvalidInput(InstrumentError, ValueError):
    """Raised when a request's inputs do not match the declared inputs (name, dtype, shape, NaN)."""


class Overloaded(InstrumentError):
    """Raised when a request is refused at once: the queue is full, or it could not finish in time."""


class DeadlineExceeded(InstrumentError, TimeoutError):
    """Raised when a request's deadline passed before its result was ready; it was dropped or cut off."""


class PipelineClosed(InstrumentError):
    """Raised when a request arrives after the instrument stopped, or was still queued when it stopped."""
