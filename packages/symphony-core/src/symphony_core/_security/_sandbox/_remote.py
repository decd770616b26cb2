"""The host's handle on an extension that runs in isolated workers: calling a method calls it there."""

from __future__ import annotations

import functools
from typing import Any

from symphony_core._model._extension import Context, Extension

from ._pool import Pool


class RemoteExtension(Extension):
    """Stands in the host for an extension whose code runs only in its worker pool.

    ``handle.method(*args, **kwargs)`` runs ``method`` in a ready worker of the pool, within the pool's
    call time-out: arguments and results are copied across (bulk values through shared memory), nothing
    is shared. Every keyword goes to the method, ``timeout`` too (an instrument's deadline). ``deactivate``
    stops the pool, which runs the extension's own ``deactivate`` in each worker.
    """

    def __init__(self, pool: Pool, context: Context) -> None:
        self.pool = pool
        self.context = context

    def __getattr__(self, name: str) -> Any:
        if name not in self.pool.methods:  # only what the extension defines: no remote call to find out
            raise AttributeError(f"{self.pool.spec.extension} has no method {name!r}")
        return functools.partial(self._call, name)

    def _call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        limit = self.pool.call_timeout
        with self.pool.worker(limit) as worker:
            return worker.call(method, args, kwargs, timeout=limit)

    def activate(self, context: Context) -> None:
        """Done in the workers when the pool starts."""

    def deactivate(self) -> None:
        self.pool.close()

    def __repr__(self) -> str:
        return f"<RemoteExtension {self.pool.spec.extension} ({self.pool.status().state})>"
