"""The errors an instrument raises on purpose, all in the core's `SymphonyError` family.

Two families: the model cannot be served (raised by ``activate``, so the host marks the instrument
failed with the reason), and one request cannot be answered (raised to that request's caller only;
every other request goes on).

Each is registered to cross from an isolated worker as itself (``register_error``), with its problems and
the attributes it lists in ``data_fields``: ``except Overloaded`` works the same in both tiers.

    SymphonyError                 (symphony_core)
    └── InstrumentError           also: an instrument not active asked for its config or contributions
        ├── ModelError
        │   ├── ModelHashMismatch
        │   └── ModelMismatch
        ├── InvalidInput          also a ValueError
        ├── Overloaded
        ├── DeadlineExceeded      also a TimeoutError
        ├── BatcherClosed
        └── EndpointError         a remote model's endpoint is unreachable or answered what it must not
"""

from __future__ import annotations

from collections.abc import Iterable

from symphony_core import ErrorDetail, SymphonyError, register_error


@register_error
class InstrumentError(SymphonyError):
    """Base class of the errors this package raises; raised itself when an instrument that is not active
    is asked for its ``config`` or ``contributions``."""


# The model cannot be served: raised while activating.


@register_error
class ModelError(InstrumentError):
    """Raised when the model file is missing, unreadable, or refused by onnxruntime."""


@register_error
class ModelHashMismatch(ModelError):
    """Raised when the model file's sha256 differs from the one its config expects: ``file``, and the
    ``expected`` and ``actual`` hashes."""

    data_fields = ("file", "expected", "actual")

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


@register_error
class ModelMismatch(ModelError):
    """Raised when the model's inputs or outputs differ from those the manifest declares."""


# One request cannot be answered: raised to its caller only.


@register_error
class InvalidInput(InstrumentError, ValueError):
    """Raised when a request's inputs do not match the declared inputs (name, dtype, shape, NaN).

    ``input`` names the input at fault, when there is one.
    """

    data_fields = ("input",)

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        input: str | None = None,
        problems: Iterable[ErrorDetail] = (),
    ) -> None:
        self.input = input
        super().__init__(message, extension=extension, hint=hint, problems=problems)


@register_error
class Overloaded(InstrumentError):
    """Raised when a request is refused at once: the queue is full, or it could not finish in time.

    ``queue_depth`` is the number of requests waiting when it was refused, ``max_queue`` the most that may
    wait, and ``retry_after`` (seconds) how long the work already queued should take: a fair first wait
    before retrying.
    """

    data_fields = ("queue_depth", "max_queue", "retry_after")

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        queue_depth: int | None = None,
        max_queue: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.queue_depth = queue_depth
        self.max_queue = max_queue
        self.retry_after = retry_after
        super().__init__(message, extension=extension, hint=hint)


@register_error
class DeadlineExceeded(InstrumentError, TimeoutError):
    """Raised when a request's deadline passed before its result was ready; it was dropped or cut off.

    ``deadline`` is the time the request was given (seconds from its submission), ``waited`` how long it
    waited (seconds).
    """

    data_fields = ("deadline", "waited")

    def __init__(
        self,
        message: str,
        *,
        extension: str | None = None,
        hint: str | None = None,
        deadline: float | None = None,
        waited: float | None = None,
    ) -> None:
        self.deadline = deadline
        self.waited = waited
        super().__init__(message, extension=extension, hint=hint)


@register_error
class BatcherClosed(InstrumentError):
    """Raised when a request arrives before the batcher started or after it stopped, or was still queued
    when it stopped."""


@register_error
class EndpointError(InstrumentError):
    """Raised by `RemoteInstrument` when its endpoint cannot be reached, refuses a request for a reason
    other than the request's inputs, or answers what the Open Inference Protocol does not allow (not
    JSON, other tensors, other shapes).

    ``endpoint`` is the URL called, ``reason`` what went wrong, ``status`` the HTTP status when there was
    an answer.
    """

    data_fields = ("endpoint", "reason", "status")

    def __init__(
        self,
        endpoint: str,
        reason: str,
        *,
        status: int | None = None,
        extension: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.reason = reason
        self.status = status
        super().__init__(f"{endpoint}: {reason}", extension=extension, hint=hint)
