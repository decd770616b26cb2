"""The base class of an instrument: an async ML model that loads, predicts on batches, and unloads."""

from __future__ import annotations

import typing
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from symphony_core import Context, Extension, nonblocking

from ._batching import Batcher, Metrics, start_batcher
from ._config import InstrumentConfig
from ._contributions import Array, Contributions, TensorSpec, read_contributions
from ._errors import BatcherClosed
from ._executors import Executor, InProcess
from ._standalone import not_active, served_config, standalone_context

Batch = Mapping[str, npt.NDArray[Any]]
"""Named input or output arrays; the first axis of every array is the batch axis."""

ConfigT = TypeVar("ConfigT", bound=InstrumentConfig)
InstrumentT = TypeVar("InstrumentT", bound="Instrument[Any]")


class Instrument(Extension, Generic[ConfigT]):
    """Base class of an instrument: subclasses load a model, predict on batches, and unload it.

    The host calls ``activate``, which validates the manifest's ``[contributes]`` table, runs `load`,
    starts the batcher and warms it up; then callers ``await infer(inputs)``; ``deactivate``
    drains the batcher and runs `unload`. Subclasses implement:

    - ``async load()``: open the model (``self.context`` and ``self.config`` are set);
    - ``predict(batch)``: run the model on one batch. It is synchronous and runs on the instrument's
      executor thread, never on the event loop; its inputs match the declared inputs;
    - ``async unload()``: release the model.

    ``self.config`` is the manifest's ``config`` model, an `InstrumentConfig` subclass (without one, the
    defaults of ``config_model``); ``self.contributions`` is what the manifest declares. Both raise
    `InstrumentError` until a host activates the instrument or `create` makes it.

    Isolated, the batcher runs in the host and calls ``predict`` in a worker once per batch, while
    ``infer`` and ``metrics`` are answered by the host: whatever an instrument does to its inputs and
    outputs belongs in ``predict``, the one place it runs in both tiers.
    """

    kind: ClassVar[str] = "instrument"
    config_model: ClassVar[type[InstrumentConfig]] = InstrumentConfig
    """The config used when the manifest names none: by default the class's config parameter
    (``ScorerConfig`` in ``class Scorer(Instrument[ScorerConfig])``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_model" not in cls.__dict__:
            for base in cls.__dict__.get("__orig_bases__", ()):
                given = typing.get_args(base)[0] if typing.get_origin(base) is Instrument else None
                if isinstance(given, type) and issubclass(given, InstrumentConfig):
                    cls.config_model = given

    _config: ConfigT | None = None
    _contributions: Contributions | None = None
    _batcher: Batcher | None = None

    @property
    def config(self) -> ConfigT:
        """The validated config: the manifest's config model, or the defaults of ``config_model``."""
        if self._config is None:
            context = self._context("config")
            self._config = served_config(context, self.config_model)
        return self._config

    @property
    def contributions(self) -> Contributions:
        """The inputs and outputs the manifest's ``[contributes]`` table declares."""
        if self._contributions is None:
            context = self._context("contributions")
            self._contributions = read_contributions(context.manifest, extension=context.id)
        return self._contributions

    async def activate(self, context: Context) -> None:
        """Validate the declarations, load the model, start and warm up the batcher."""
        self.context = context
        self._config = served_config(context, self.config_model)
        self._contributions = read_contributions(context.manifest, extension=context.id)
        await self.load()
        try:
            batcher = await start_batcher(
                self._executor(), self.contributions, self.config, extension=context.id
            )
            self._batcher = batcher
            inputs = self.contributions.inputs
            await batcher.warm_up(_zeros(inputs, batcher.max_batch_size), self.config.warmup_batches)
        except BaseException:
            await self.deactivate()
            raise

    def _executor(self) -> Executor:
        """What runs the batches: ``predict`` on the batcher's threads, ``in_flight`` at once."""
        return InProcess(self.predict, self.config.batching.in_flight)

    async def deactivate(self) -> None:
        """Answer or refuse every pending request, stop the batcher, then run `unload`."""
        batcher, self._batcher = self._batcher, None
        try:
            if batcher is not None:
                await batcher.close()
        finally:
            await self.unload()

    async def load(self) -> None:
        """Open the model; ``self.context`` and ``self.config`` are set. Override it."""

    def predict(self, batch: Batch) -> Batch:
        """Return the outputs for one batch (batch axis first); runs on the executor thread. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict(batch)")

    async def unload(self) -> None:
        """Release what `load` opened. Override it when there is something to release."""

    @nonblocking  # checked and queued at once: a host awaits it on the caller's loop, with no hop
    def infer(
        self, inputs: Mapping[str, Any], *, timeout: float | None = None
    ) -> Coroutine[Any, Any, dict[str, Array]]:
        """Predict for one request (await it): its inputs by name, batch axis first, or one item without it.

        The request is checked against the declared inputs, queued, batched with others and answered
        with the declared outputs (without the batch axis if it was one bare item). A request of more
        items than ``batching.max_batch_size`` runs in parts of that size, in successive batches, and is
        answered whole, or fails whole with the first part that fails. ``timeout`` is its
        deadline in seconds (default: the config's ``batching.timeout_ms``). Raises `InvalidInput`,
        `Overloaded`, `DeadlineExceeded`, `BatcherClosed`, or `ExtensionFailed` when the model fails.
        """
        return self._running().submit(inputs, timeout=timeout)

    def metrics(self) -> Metrics:
        """Queue depth, outcome counts, batch sizes and latency percentiles since activation."""
        return self._running().metrics()

    def _running(self) -> Batcher:
        if self._batcher is None:
            context: Context | None = getattr(self, "context", None)
            raise BatcherClosed(
                "the instrument is not active",
                extension=None if context is None else context.id,
                hint=f"start it through a host (host.start(id)), or use `async with {type(self).__name__}.create()`",
            )
        return self._batcher

    @classmethod
    def create(
        cls: type[InstrumentT],
        config: BaseModel | Mapping[str, Any] | None = None,
        *,
        manifest: Mapping[str, Any] | None = None,
        data_dir: Path | None = None,
        cache_dir: Path | None = None,
    ) -> InstrumentT:
        """Create the instrument outside a host (a script, a notebook, a test), ready to activate.

        ``manifest`` defaults to the ``symphony.toml`` beside the class's module (what a host would read);
        a dict given instead needs only the keys that matter here (``id``, ``contributes``, ``config``).
        ``config`` is a config instance, or values for the model the manifest names (``config_model``
        when it names none). ``config`` and ``contributions`` are checked and readable at once.

        Activation is async, so the model is not loaded yet: ``async with Scorer.create() as scorer``
        loads it, starts the batcher and warms it up, and unloads it on the way out (``await
        scorer.activate(scorer.context)`` and ``await scorer.deactivate()`` do the same by hand). No
        permission is checked: code run this way is trusted as the caller is.
        """
        context = standalone_context(
            cls, config, manifest=manifest, data_dir=data_dir, cache_dir=cache_dir, model=cls.config_model
        )
        instrument = cls()
        instrument.context = context
        instrument._config = served_config(context, cls.config_model)
        instrument._contributions = read_contributions(context.manifest, extension=context.id)
        return instrument

    async def __aenter__(self: InstrumentT) -> InstrumentT:
        await self.activate(self._context("context"))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.deactivate()

    def _context(self, what: str) -> Context:
        context: Context | None = getattr(self, "context", None)
        if context is None:
            raise not_active(self, what)
        return context


def _zeros(inputs: tuple[TensorSpec, ...], items: int) -> dict[str, Array]:
    """A batch of zeros (empty strings) for warming the model up; dynamic axes other than the batch are 1."""
    batch: dict[str, Array] = {}
    for spec in inputs:
        shape = (items, *(size if isinstance(size, int) else 1 for size in spec.shape[1:]))
        dtype = spec.numpy_dtype
        batch[spec.name] = np.full(shape, "", dtype=object) if dtype.kind == "O" else np.zeros(shape, dtype)
    return batch
