"""What stands in the host for an isolated extension: its kind's front, and the `Workers` it reaches it by.

By default the host stands in for an isolated extension with a `RemoteExtension`, which runs every method
in a worker. A kit may name a front of its own for its kind (``Kind.front``) that answers some methods in
the host, working on data only, and runs everything the extension defines in its workers through
`Workers`: the instruments kit batches concurrent ``infer`` requests in the host and sends each batch to
a worker as one call. The front is the kit's code, named by the core, never by a worker or an installed
distribution, and it never imports the extension's code.

The host makes a front as ``front(workers, context)`` and runs its ``activate(context)`` and
``deactivate()``; either may be a coroutine, run on the extension's event loop in the host. A front's
coroutine methods must never block: ``Host.acall`` awaits them on the caller's own loop (no hop to
another loop, which would cost more than the work), ``Host.call`` on the extension's loop, so they
serve callers on several loops. Its other methods are taken to wait for a worker: ``Host.acall``
awaits them in a thread.
"""

from __future__ import annotations

import dataclasses
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

from symphony_core._model._errors import SymphonyError
from symphony_core._model._extension import Context, Extension
from symphony_core._model._kinds import KINDS
from symphony_core._model._public import public

from ._pool import Pool

Front = Callable[["Workers", Context], Extension]
"""Makes a kind's front: ``front(workers, context)``."""


@public
class Workers:
    """An isolated extension's worker pool, as its front uses it: call a method in a worker, read the
    config the workers run with, keep more workers, stop them.

    Each call takes a ready worker for itself, so calls from several threads run at the same time on up to
    `size` workers; more callers wait for one to be free.
    """

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    @property
    def extension(self) -> str:
        return self._pool.spec.extension

    @property
    def methods(self) -> tuple[str, ...]:
        """The extension's public methods, as its first worker found them."""
        return self._pool.methods

    @property
    def size(self) -> int:
        """How many workers the pool keeps: how many calls can run at the same time."""
        return self._pool.size

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` of the extension in a ready worker and return its result, within the pool's call
        time-out (a worker that overruns it is killed). It blocks: call it from a thread, not a loop."""
        limit = self._pool.call_timeout
        with self._pool.worker(limit) as worker:
            return worker.call(method, args, kwargs, timeout=limit)

    async def acall(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """`call` from an event loop, which sends the request and reads the answer itself: no thread is
        woken on the way, unless something goes wrong (then a thread waits for the worker's end) or no
        worker is free (a thread waits for one)."""
        return await self._pool.acall(method, *args, **kwargs)

    def grow(self, size: int) -> None:
        """Keep at least ``size`` workers from now on; the missing ones start in the background."""
        self._pool.grow(size)

    def config(self) -> Any:
        """The extension's config as a worker resolves it (the one its workers run with): plain data,
        secrets masked; None when its manifest names no config model. It comes from a worker: check it."""
        reference = self._pool.spec.manifest.get("config")
        if not isinstance(reference, str):
            return None
        limit = self._pool.call_timeout
        with self._pool.worker(limit) as worker:
            answer = worker.config(reference, timeout=30.0 if limit is None else limit)
        return answer.get("config") if isinstance(answer, dict) else None

    def close(self) -> None:
        """Stop every worker; each runs the extension's ``deactivate`` first."""
        self._pool.close()

    def helper(
        self,
        entry_point: str,
        *,
        name: str,
        read: Sequence[str] = (),
        write: Sequence[str] = (),
        reason: str,
    ) -> Helper:
        """Start a restricted worker that runs the kit's ``entry_point`` (``module:Class``, an `Extension`
        class of the kit's own: never the extension's, never one a worker named) with none of the
        extension's grants. It reads only ``read`` (absolute paths or globs: what the host's own data
        needs) besides the code it imports from the host's environment, writes only ``write`` (a folder
        the host made for its output) besides its own folders, and it works under the extension's
        limits, in folders of its own (``<extension>~<name>`` in the home).

        The operators kit runs the plans of isolated steps in one: data only crosses to it, from the host,
        so no extension's code runs there. The front owns the helper: close it when done."""
        from symphony_core._model._permissions import FileRead, FileWrite

        from ._process import WorkerProcess

        spec = self._pool.spec
        permissions: tuple[Any, ...] = ()
        if read:
            permissions += (FileRead(paths=tuple(read), reason=reason),)
        if write:
            permissions += (FileWrite(paths=tuple(write), reason=reason),)
        worker = WorkerProcess.start(
            dataclasses.replace(
                spec,
                extension=f"{spec.extension}~{name}",
                entry_point=entry_point,
                permissions=permissions,
                manifest={},
                config_overrides={},
                environment=None,
            ),
            timeout=max(self._pool.call_timeout or 60.0, 60.0),
        )
        pool = self._pool
        return Helper(
            worker, pool.call_timeout, lambda reason: pool._emit("crashed", f"its {name}: {reason}")
        )


class Helper:
    """A restricted worker a front started for its kit's own work (`Workers.helper`)."""

    def __init__(self, worker: Any, call_timeout: float | None, died: Callable[[str], None]) -> None:
        self._worker = worker
        self._timeout = call_timeout
        self._died = died
        """Reports the helper's death like a worker's (the host audits it); its extension is not blamed."""
        self._reported = self._closed = False

    @property
    def alive(self) -> bool:
        """Whether the helper runs; the first time it is found dead, its death is reported."""
        if self._worker.alive:
            return True
        self._report(self._worker.died.message if self._worker.died is not None else "it died")
        return False

    def _report(self, reason: str) -> None:
        if not self._reported and not self._closed:
            self._reported = True
            self._died(reason.partition("\n")[0])

    @property
    def pid(self) -> int | None:
        return self._worker.pid  # type: ignore[no-any-return]

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Run ``method`` in the helper and return its result, within the pool's call time-out (a helper
        that overruns it is killed). One call at a time; it blocks: call it from a thread, not a loop."""
        try:
            return self._worker.call(method, args, kwargs, timeout=self._timeout)
        except SymphonyError as exc:
            if not self._worker.alive:
                self._report(exc.message)
            raise

    def close(self) -> None:
        """Stop the helper (it runs its ``deactivate`` first); killed if it lingers."""
        self._closed = True
        self._worker.stop()


def front_for(kind: str) -> Front | None:
    """The front the kit of ``kind`` gives its isolated extensions, or None when it names none or the kit
    is not installed beside the host (its workers have it in their own environment): a
    `RemoteExtension` then answers, calling every method in a worker."""
    known = KINDS.get(kind)
    if known is None or known.front is None:
        return None
    try:
        front: Front = pkgutil.resolve_name(known.front)
    except ModuleNotFoundError as exc:
        if exc.name != known.module:
            raise  # the kit is there, and broken: say so
        return None
    return front
