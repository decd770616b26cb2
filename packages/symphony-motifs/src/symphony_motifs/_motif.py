"""The base class of a motif: a UI component made of web assets and a declared Python API."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

from symphony_core import Context, Extension

from ._calls import bind_arguments, to_json
from ._errors import CallRefused, MotifError
from ._spec import MotifSpec

log = logging.getLogger("symphony.motifs")

EventSink = Callable[[str, Any], object]
"""Receives ``(event, data)`` for delivery to the motif's page; set by whoever shows the page."""


class Motif(Extension):
    """Base class of a motif extension.

    A motif ships its page (HTML, JavaScript, CSS) inside its distribution and declares in its manifest's
    ``[contributes]`` table the page, the only methods the page may call (``exposed``) and the only
    events it may push to the page (``events``). The page calls ``symphony.call("method", {...})`` and
    listens with ``symphony.on("event", callback)``; arguments are validated against the method's
    annotations before it runs. Methods may be coroutine functions.
    """

    kind: ClassVar[str] = "motif"

    _spec: MotifSpec | None = None
    _sinks: tuple[EventSink, ...] = ()  # one per server showing the motif's page
    _sink_lock: ClassVar[threading.Lock] = threading.Lock()

    def activate(self, context: Context) -> Awaitable[None] | None:
        """Keep the context and check the declared API against the class; subclasses call ``super()``.

        An exposed name that is not a method of the class fails the activation, naming it.
        """
        super().activate(context)
        spec = MotifSpec.from_manifest(context.manifest, extension=context.id)
        missing = [name for name in spec.exposed if not callable(getattr(self, name, None))]
        if missing:
            raise MotifError(
                f"the manifest exposes {', '.join(repr(name) for name in missing)}, which "
                f"{type(self).__name__} does not define",
                extension=context.id,
                hint="define the method on the motif class or remove it from [contributes] exposed",
            )
        self._spec = spec
        return None

    @property
    def spec(self) -> MotifSpec:
        """The motif's declared page, API and events (from its manifest; available once active)."""
        if self._spec is None:
            raise MotifError(
                "is not active: its declarations are read from its manifest when the host activates it",
                extension=type(self).__name__,
                hint="start it through a Host (or call activate with its Context) first",
            )
        return self._spec

    def invoke(self, method: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Run an exposed method for the page: refuse undeclared ones, validate arguments, return JSON data.

        Hosts call this (through ``Host.call``, so the motif runs under its grants or in its worker);
        the page reaches it only through ``symphony.call``.
        """
        extension = self._identity()
        if method not in self.spec.exposed:
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
        if event not in self.spec.events:
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

    def _identity(self) -> str:
        context = getattr(self, "context", None)
        return context.id if context is not None else type(self).__name__


async def _awaited_json(result: Awaitable[Any]) -> Any:
    return to_json(await result)
