"""The base every extension kind derives from, and the context the host hands an extension."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ._public import public


@public
@dataclass(frozen=True, slots=True)
class Context:
    """What the host gives an extension when activating it: who it is, its config and its own folders.

    ``data_dir`` and ``cache_dir`` exist when ``activate`` is called; they are ``{data}`` and ``{cache}``
    in permissions.
    """

    id: str
    version: str
    manifest: Mapping[str, Any]
    config: Any
    data_dir: Path
    cache_dir: Path
    logger: logging.Logger
    publish: Callable[[str, Any], bool] = field(default=lambda name, data: False, compare=False, repr=False)
    """Send an event to whoever in the host subscribed to this extension (`Host.subscribe`), from any
    thread, in either tier: a name, and plain data (what JSON holds, and bytes), which subscribers get a
    copy of; anything else raises `TypeError`. Returns whether it was handed on: in the host's process,
    whether a subscriber was there; in an isolated worker, whether the host took it."""


@public
class Extension:
    """Base class of every extension; each public package derives its kind's base class from it.

    The host creates the extension with no arguments, then calls `activate` once with its `Context`
    and `deactivate` once when it is done. Either may be a coroutine function.
    """

    kind: ClassVar[str] = ""

    context: Context

    def activate(self, context: Context) -> Awaitable[None] | None:
        """Open what the extension needs (models, files, connections); called once, before any use."""
        self.context = context
        return None

    def deactivate(self) -> Awaitable[None] | None:
        """Release what `activate` opened; called once, after the last use."""
        return None


F = TypeVar("F", bound=Callable[..., Any])
NONBLOCKING = "__symphony_nonblocking__"


@public
def nonblocking(method: F) -> F:
    """Mark a method whose coroutine never blocks, such as a kit's ``Instrument.infer``: `Host.acall`
    awaits it on the caller's event loop instead of handing it to the extension's own loop and back (two
    hops between threads a call). Everything else an in-process extension returns to await runs on its
    own loop, so that one that blocks stalls nobody else.

    An override in a subclass is not marked unless it is decorated too: mark only code that returns to
    the loop at once."""
    setattr(method, NONBLOCKING, True)
    return method
