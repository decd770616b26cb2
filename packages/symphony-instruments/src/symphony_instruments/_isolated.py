"""`IsolatedInstrument`: what stands in the host for an instrument that runs in isolated workers.

The host never imports an isolated instrument's code. The core makes this front for it (its kind's
``front``) with a `Workers` handle on its pool. The batcher runs here, as it does in-process, and each
batch is one call of the instrument's ``predict`` in a worker (`InWorkers`). Nothing the instrument
defines runs here: this object checks requests against the manifest's declarations, stacks and splits
arrays, and schedules. Pre- and post-processing and the model run in the worker, where every other
method of the instrument (``model_card``...) is called too.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from symphony_core import ConfigError, Context, Extension, ExtensionFailed

from ._batching import Batcher, Metrics, start_batcher
from ._config import InstrumentConfig
from ._contributions import Array, read_contributions
from ._errors import BatcherClosed
from ._executors import InWorkers

if TYPE_CHECKING:
    from symphony_core import Workers

_SETTINGS = ("batching", "reject_nan")
"""What the host's batcher takes from the instrument's config; the rest is for the workers."""


class IsolatedInstrument(Extension):
    """The host's stand-in for an isolated instrument: its batcher in the host, its model in its workers.

    ``infer`` and ``metrics`` behave as an in-process instrument's: the same checks, batches, deadlines,
    `Overloaded`, cancellation and `Metrics`, raised and counted here. The batching settings come from
    the config its workers resolved (checked again here: a worker is not trusted), and
    ``batching.in_flight`` is the number of workers, each running one batch at a time.
    """

    def __init__(self, workers: Workers, context: Context) -> None:
        self.workers = workers
        self.context = context
        self._batcher: Batcher | None = None

    def __getattr__(self, name: str) -> Any:
        workers: Workers | None = self.__dict__.get("workers")
        if workers is None or name not in workers.methods:  # only what the instrument defines
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return functools.partial(workers.call, name)

    async def activate(self, context: Context) -> None:
        """Start the batcher in front of the workers, which have loaded the model and warmed it up."""
        self.context = context
        if "predict" not in self.workers.methods:
            raise ExtensionFailed(
                "its class has no predict(batch) for the host to send batches to",
                extension=context.id,
                hint="derive the entry point's class from symphony_instruments.Instrument or OnnxInstrument",
            )
        contributions = read_contributions(context.manifest, extension=context.id)
        config = _settings(await asyncio.to_thread(self.workers.config), context.id)
        self.workers.grow(config.batching.in_flight)
        executor = InWorkers(self.workers)
        self._batcher = await start_batcher(executor, contributions, config, extension=context.id)

    async def deactivate(self) -> None:
        """Answer or refuse every pending request, stop the batcher, then stop the workers."""
        batcher, self._batcher = self._batcher, None
        try:
            if batcher is not None:
                await batcher.close()
        finally:
            await asyncio.to_thread(self.workers.close)

    async def infer(self, inputs: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Array]:
        """`Instrument.infer`: checked, queued and batched here; each batch runs in a worker."""
        return await self._running().submit(inputs, timeout=timeout)

    def metrics(self) -> Metrics:
        """`Instrument.metrics`, counted by the batcher here."""
        return self._running().metrics()

    def _running(self) -> Batcher:
        if self._batcher is None:
            raise BatcherClosed(
                "the instrument is not active",
                extension=self.context.id,
                hint="the host activates it: host.start(id)",
            )
        return self._batcher

    def __repr__(self) -> str:
        return f"<IsolatedInstrument {self.context.id}>"


def _settings(config: Any, extension: str) -> InstrumentConfig:
    """The host's batcher settings, from the config data the workers resolved: the workers warmed the
    model up already, so none of that is done here."""
    given = config if isinstance(config, Mapping) else {}
    try:
        return InstrumentConfig.model_validate(
            {**{key: given[key] for key in _SETTINGS if key in given}, "warmup_batches": 0}
        )
    except ValidationError as exc:
        raise ConfigError(
            "its workers run with batching settings this host refuses",
            extension=extension,
            hint=f"fix its config: `symphony config show {extension}` lists each value and where it comes from",
            problems=[(".".join(map(str, error["loc"])), error["msg"]) for error in exc.errors()],
        ) from None
