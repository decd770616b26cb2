"""Tell a Ctrl-C the host received from a ``KeyboardInterrupt`` that extension code raised itself.

Python turns SIGINT into a ``KeyboardInterrupt`` raised in the main thread wherever it is, so one caught
around extension code that ran there may be a person stopping the host. The rule:

- raised in any other thread, it is the extension's: signals reach only the main thread;
- raised in the main thread, it is the extension's when SIGINT cannot raise it (ignored, or left to the
  operating system) or when the host's counting handler is in place and counted no SIGINT while the
  code ran; in every other case (an application replaced the handler since) it is the host's, and goes
  through.

A host created in the main thread puts that counting handler around the SIGINT handler in place (Python's
own, or the application's): it counts, then hands the signal on, so Ctrl-C does what it did before.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_Handler = Callable[[int, FrameType | None], Any]


class _Counting:
    """A SIGINT handler that counts the signals and hands each to the handler it replaced."""

    def __init__(self, previous: _Handler) -> None:
        self.previous = previous
        self.received = 0

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        self.received += 1
        return self.previous(signum, frame)


_counting: _Counting | None = None


def watch() -> None:
    """Count SIGINTs from now on (from the main thread only; a handler Python did not set is left alone)."""
    global _counting
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGINT)
    if callable(current) and not isinstance(current, _Counting):
        _counting = _Counting(current)
        signal.signal(signal.SIGINT, _counting)


def received() -> int:
    """How many SIGINTs the counting handler has seen (cheap: it runs before every call)."""
    return -1 if _counting is None else _counting.received


def raised_by_code(before: int) -> bool:
    """Whether a ``KeyboardInterrupt`` caught in this thread now was raised by the code that ran since
    ``received()`` returned ``before``, rather than by a SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        return True
    current = signal.getsignal(signal.SIGINT)
    if current in (signal.SIG_IGN, signal.SIG_DFL):
        return True
    return current is _counting and _counting is not None and _counting.received == before
