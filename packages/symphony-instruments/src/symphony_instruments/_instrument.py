"""The base class of an instrument: an async ML model that loads, predicts on batches, and unloads."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from symphony_core import ConfigError, Context, Extension

from ._batching import Metrics, Pipeline, start_pipeline
from ._config import InstrumentConfig
from ._contributions import Array, Contributions, TensorSpec, read_contributions
from ._errors import PipelineClosed
from ._executors import InProcess

Batch = Mapping[str, npt.NDArray[Any]]
"""Named input or output arrays; the first axis of every array is the batch axis."""

ConfigT = TypeVar("ConfigT", bound=InstrumentConfig)


class Instrument(Extension, Generic[ConfigT]):
    """Base class of an instrument: subclasses load a model, predict on batches, and unload it.

    The host calls ``activate``, which validates the manifest's ``[contributes]`` table, runs `load`,
    starts the batching pipeline and warms it up; then callers ``await infer(inputs)``; ``deactivate``
    drains the pipeline and runs `unload`. Subclasses implement:

    - ``async load()``: open the model (``self.context`` and ``self.config`` are set);
    - ``predict(batch)``: run the model on one batch. It is synchronous and runs on the instrument's
      executor thread, never on the event loop; its inputs match the declared inputs;
    - ``async unload()``: release the model.

    The config is the manifest's ``config`` model, an `InstrumentConfig` subclass; without one, the
    defaults of ``config_model``.

    Isolated, the pipeline runs in the host and calls ``predict`` in a worker once per batch, while
    ``infer`` and ``metrics`` are answered by the host: whatever an instrument does to its inputs and
    outputs belongs in ``predict``, the one place it runs in both tiers.
    """

    kind: ClassVar[str] = "instrument"
    config_model: ClassVar[type[InstrumentConfig]] = InstrumentConfig
    """The config used when the manifest names none."""

    config: ConfigT
    contributions: Contributions
    _pipeline: Pipeline | None = None

    async def activate(self, context: Context) -> None:
        """Validate the declarations, load the model, start and warm up the pipeline."""
        self.context = context
        self.config = self._config(context)
        self.contributions = read_contributions(context.manifest, extension=context.id)
        await self.load()
        try:
            executor = InProcess(self.predict, self.config.batching.in_flight)
            pipeline = await start_pipeline(executor, self.contributions, self.config, extension=context.id)
            self._pipeline = pipeline
            inputs = self.contributions.inputs
            await pipeline.warm_up(_zeros(inputs, pipeline.max_batch_size), self.config.warmup_batches)
        except BaseException:
            await self.deactivate()
            raise

    async def deactivate(self) -> None:
        """Answer or refuse every pending request, stop the pipeline, then run `unload`."""
        pipeline, self._pipeline = self._pipeline, None
        try:
            if pipeline is not None:
                await pipeline.close()
        finally:
            await self.unload()

    async def load(self) -> None:
        """Open the model; ``self.context`` and ``self.config`` are set. Override it."""

    def predict(self, batch: Batch) -> Batch:
        """Return the outputs for one batch (batch axis first); runs on the executor thread. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(batch)")

    async def unload(self) -> None:
        """Release what `load` opened. Override it when there is something to release."""

    def infer(
        self, inputs: Mapping[str, Any], *, timeout: float | None = None
    ) -> Coroutine[Any, Any, dict[str, Array]]:
        """Predict for one request (await it): its inputs by name, batch axis first, or one item without it.

        The request is checked against the declared inputs, queued, batched with others and answered
        with the declared outputs (without the batch axis if it was one bare item). A request of more
        items than ``batching.max_batch_size`` runs in parts of that size, in successive batches, and is
        answered whole, or fails whole with the first part that fails. ``timeout`` is its
        deadline in seconds (default: the config's ``batching.timeout_ms``). Raises `InvalidInput`,
        `Overloaded`, `DeadlineExceeded`, `PipelineClosed`, or `ExtensionFailed` when the model fails.
        """
        return self._running().submit(inputs, timeout=timeout)

    def metrics(self) -> Metrics:
        """Queue depth, outcome counts, batch sizes and latency percentiles since activation."""
        return self._running().metrics()

    def _running(self) -> Pipeline:
        if self._pipeline is None:
            context: Context | None = getattr(self, "context", None)
            raise PipelineClosed(
                "the instrument is not active",
                extension=None if context is None else context.id,
                hint="the host activates it: host.start(id)",
            )
        return self._pipeline

    def _config(self, context: Context) -> ConfigT:
        config = context.config if context.config is not None else self.config_model()
        if not isinstance(config, self.config_model):
            raise ConfigError(
                f"the config is a {type(config).__name__}, not a {self.config_model.__name__}",
                extension=context.id,
                hint=f"derive the manifest's config class from symphony_instruments.{self.config_model.__name__}",
            )
        return config  # type: ignore[return-value]


def _zeros(inputs: tuple[TensorSpec, ...], items: int) -> dict[str, Array]:
    """A batch of zeros (empty strings) for warming the model up; dynamic axes other than the batch are 1."""
    batch: dict[str, Array] = {}
    for spec in inputs:
        shape = (items, *(size if isinstance(size, int) else 1 for size in spec.shape[1:]))
        dtype = spec.numpy_dtype
        batch[spec.name] = np.full(shape, "", dtype=object) if dtype.kind == "O" else np.zeros(shape, dtype)
    return batch
