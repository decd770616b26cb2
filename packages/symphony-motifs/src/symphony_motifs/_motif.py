"""The base class of a motif: a UI component made of web assets and a declared Python API."""

from __future__ import annotations

import inspect
import logging
import threading
import typing
import warnings
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from symphony_core import Config, Context, Extension

from ._calls import bind_arguments, to_json
from ._contributions import Contributions, read_contributions
from ._errors import CallRefused, MotifError
from ._standalone import not_active, served_config, standalone_context

log = logging.getLogger("symphony.motifs")

EventSink = Callable[[str, Any], object]
"""Receives ``(event, data)`` for delivery to the motif's page; set by whoever shows the page."""

ConfigT = TypeVar("ConfigT", bound=Config)
MotifT = TypeVar("MotifT", bound="Motif[Any]")


class Motif(Extension, Generic[ConfigT]):
    """Base class of a motif extension.

    A motif ships its page (HTML, JavaScript, CSS) inside its distribution and declares in its manifest's
    ``[contributes]`` table the page, the only methods the page may call (``exposed``) and the only
    events it may push to the page (``events``). The page calls ``symphony.call("method", {...})`` and
    listens with ``symphony.on("event", callback)``; arguments are validated against the method's
    annotations before it runs. Methods may be coroutine functions.

    ``self.config`` is the manifest's ``config`` model (without one, the defaults of ``config_model``);
    ``self.contributions`` is what the manifest declares. Both raise `MotifError` until a host activates
    the motif or `create` makes it.
    """

    kind: ClassVar[str] = "motif"
    config_model: ClassVar[type[Config]] = Config
    """The config used when the manifest names none: by default the class's config parameter
    (``ScorerConfig`` in ``class Scorer(Motif[ScorerConfig])``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_model" not in cls.__dict__:
            for base in cls.__dict__.get("__orig_bases__", ()):
                given = typing.get_args(base)[0] if typing.get_origin(base) is Motif else None
                if isinstance(given, type) and issubclass(given, Config):
                    cls.config_model = given

    _config: ConfigT | None = None
    _contributions: Contributions | None = None
    _sinks: tuple[EventSink, ...] = ()  # one per server showing the motif's page
    _sink_lock: ClassVar[threading.Lock] = threading.Lock()

    def activate(self, context: Context) -> Awaitable[None] | None:
        """Keep the context and check the declared API against the class; subclasses call ``super()``.

        An exposed name that is not a method of the class fails the activation, naming it.
        """
        super().activate(context)
        contributions = read_contributions(context.manifest, extension=context.id)
        missing = [name for name in contributions.exposed if not callable(getattr(self, name, None))]
        if missing:
            raise MotifError(
                f"the manifest exposes {', '.join(repr(name) for name in missing)}, which "
                f"{type(self).__name__} does not define",
                extension=context.id,
                hint="define the method on the motif class or remove it from [contributes] exposed",
            )
        self._contributions = contributions
        return None

    @property
    def config(self) -> ConfigT:
        """The validated config: the manifest's config model, or the defaults of ``config_model``."""
        if self._config is None:
            self._config = served_config(self._context("config"), self.config_model)
        return self._config

    @property
    def contributions(self) -> Contributions:
        """The page, API and events the manifest's ``[contributes]`` table declares."""
        if self._contributions is None:
            context = self._context("contributions")
            self._contributions = read_contributions(context.manifest, extension=context.id)
        return self._contributions

    @property
    def spec(self) -> Contributions:
        """Deprecated: use `contributions`."""
        warnings.warn("Motif.spec is deprecated: use Motif.contributions", DeprecationWarning, stacklevel=2)
        return self.contributions

    @classmethod
    def create(
        cls: type[MotifT],
        config: BaseModel | Mapping[str, Any] | None = None,
        *,
        manifest: Mapping[str, Any] | None = None,
        data_dir: Path | None = None,
        cache_dir: Path | None = None,
    ) -> MotifT:
        """Create and activate the motif outside a host: in a script, a notebook or a test.

        ``manifest`` defaults to the ``symphony.toml`` beside the class's module (what a host would read);
        a dict given instead needs only the keys that matter here (``id``, ``contributes``, ``config``).
        ``config`` is a config instance, or values for the model the manifest names (``config_model``
        when it names none). No permission is checked: code run this way is trusted as the caller is.
        Its methods can then be called directly, or through `invoke` as its page would.
        """
        context = standalone_context(
            cls, config, manifest=manifest, data_dir=data_dir, cache_dir=cache_dir, model=cls.config_model
        )
        motif = cls()
        motif.activate(context)
        return motif

    def invoke(self, method: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run an exposed method for the page: refuse undeclared ones, validate arguments, return JSON data.

        Hosts call this (through ``Host.call``, so the motif runs under its grants or in its worker);
        the page reaches it only through ``symphony.call``.
        """
        extension = self._identity()
        if method not in self.contributions.exposed:
            raise CallRefused(
                f"'{method}' is not exposed to the page",
                extension=extension,
                hint="add it to [contributes] exposed in the motif's manifest if the page should call it",
            )
        function = getattr(self, method)
        bound = bind_arguments(function, arguments or {}, extension=extension, method=method)
        result = function(**bound)
        if inspect.isawaitable(result):
            return _awaited_json(result)
        return to_json(result)

    def emit(self, event: str, data: Any = None) -> bool:
        """Push a declared event to the page; returns whether it was handed on.

        ``data`` must be JSON-ready or something pydantic can make JSON (models, dataclasses, dates).
        Works from any thread, in the host's process or in an isolated worker (where it travels through
        the host, so it returns whether the host took it rather than whether a page was there).
        """
        if event not in self.contributions.events:
            raise MotifError(
                f"'{event}' is not a declared event",
                extension=self._identity(),
                hint="add it to [contributes] events in the motif's manifest",
            )
        payload = to_json(data)
        with self._sink_lock:
            sinks = self._sinks
        for sink in sinks:  # servers in this process that show the page
            sink(event, payload)
        # and subscribers through the host: how servers reach a motif that runs in an isolated worker
        publish = getattr(getattr(self, "context", None), "publish", None)
        published = bool(publish(event, payload)) if publish is not None else False
        if not sinks and not published:
            log.debug("%s: no page to receive event %r", self._identity(), event)
        return bool(sinks) or published

    def _connect(self, sink: EventSink) -> None:
        """Deliver this motif's events to ``sink`` too; called by each server that shows its page."""
        with self._sink_lock:
            self._sinks = (*self._sinks, sink)

    def _disconnect(self, sink: EventSink | None = None) -> None:
        """Stop delivering events to ``sink`` (to every sink when None)."""
        with self._sink_lock:
            self._sinks = () if sink is None else tuple(known for known in self._sinks if known != sink)

    def _context(self, what: str) -> Context:
        context: Context | None = getattr(self, "context", None)
        if context is None:
            raise not_active(self, what)
        return context

    def _identity(self) -> str:
        context = getattr(self, "context", None)
        return context.id if context is not None else type(self).__name__


async def _awaited_json(result: Awaitable[Any]) -> Any:
    return to_json(await result)
