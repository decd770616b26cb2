"""What the hostile test extensions share: a base class, and attempts reported as data.

An attack never raises out of a method on purpose: it returns what happened (the value it got, or the
error it met), so the test can say exactly which step of an escape went through.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import Any

from symphony_core import Extension


def attempt(action: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Run one step of an attack: ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": ...}``."""
    try:
        value = action(*args, **kwargs)
    except BaseException as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "errno": getattr(exc, "errno", None)}
    return {"ok": True, "value": value}


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def write_text(path: str, text: str, mode: str = "w") -> int:
    with open(path, mode, encoding="utf-8") as file:
        return file.write(text)


def pipes() -> dict[str, int]:
    """The worker's protocol pipes: ``reply`` (where its answers go), ``request`` and ``events``.

    Found as the worker's own channel objects, else from its command line
    (``-m symphony_core._security._sandbox._worker READ_FD WRITE_FD EVENT_FD``).
    """
    found: dict[str, int] = {}
    try:
        from symphony_core._security._sandbox._protocol import Channel

        for thing in gc.get_objects():
            if isinstance(thing, Channel):
                if thing.read_fd == thing.write_fd:
                    found.setdefault("events", thing.write_fd)
                else:
                    found.setdefault("reply", thing.write_fd)
                    found.setdefault("request", thing.read_fd)
    except ImportError:
        pass
    numbers = [int(arg) for arg in sys.argv[1:] if arg.isdigit()]
    if len(numbers) >= 3:
        found.setdefault("request", numbers[0])
        found.setdefault("reply", numbers[1])
        found.setdefault("events", numbers[2])
    return found


class Hostile(Extension):
    """An extension with the probes every attack uses: read, list and write any path, say where it runs."""

    def activate(self, context: Any) -> None:
        self.context = context

    def where(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "data": str(self.context.data_dir),
            "cache": str(self.context.cache_dir),
            "environ": sorted(os.environ),
        }

    def read(self, path: str) -> dict[str, Any]:
        return attempt(read_text, path)

    def listdir(self, path: str) -> dict[str, Any]:
        return attempt(lambda: sorted(os.listdir(path)))

    def write(self, path: str, text: str, mode: str = "w") -> dict[str, Any]:
        return attempt(write_text, path, text, mode)

    def move(self, source: str, target: str) -> dict[str, Any]:
        return attempt(os.rename, source, target)
