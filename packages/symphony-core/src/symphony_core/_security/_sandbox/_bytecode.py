"""The bytecode workers load: written by the host only, read by every worker of the host's environment.

A worker never writes bytecode. What it imports before it is restricted (the core, msgspec) comes from a
cache the host fills before the first worker starts (``boot``). What it imports once restricted (its
kit, polars, numpy, its own modules) is looked up in the same folder, read-only to it; each answer of the
worker names the modules it imported whose bytecode was missing, and the host compiles them there, in a
thread of its own, for the next worker (``Compiler``). So no worker can plant code that another worker
(or a later worker of its own) would run, the bytecode of a library is compiled once per home instead of
once per extension, and an extension's quota'd folders hold only what the extension wrote.

The host compiles only files beneath the folders the worker imports from (the interpreter's, the
host's import path, the packages it located), which are read-only to every worker: never a file a worker
could write, and never one of its granted folders (a compiled copy in the shared cache would let another
worker read it). Compiling runs no code of the file.

A worker of an extension in a managed environment imports from that environment alone: it keeps a
bytecode cache in its own cache folder, as its environment is its own.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import py_compile
import queue
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

from symphony_core._security._reach import inside_any
from symphony_core._store._home import Home

log = logging.getLogger("symphony.sandbox")
MAX_REPORTED = 2000
"""Module files one answer of a worker may name; more are ignored (the next worker names them again)."""
MAX_JUDGED = 20_000
"""Module files the host judges for one worker in its life: what a worker that names files without end
can cost the host (a Python environment's imports are a few thousand modules)."""
MAX_SOURCE = 8 << 20
"""Bytes of the largest source file the host compiles for workers."""
_TIMEOUT = 300.0


def folder(home: Home) -> str:
    """The home's shared bytecode cache."""
    return str(home.cache_dir / "worker-bytecode")


def cached(into: str, source: str) -> str:
    """Where a worker whose ``sys.pycache_prefix`` is ``into`` looks for the bytecode of ``source``."""
    head, name = os.path.split(source)
    return os.path.join(into, head.lstrip(os.sep), f"{name[:-3]}.{sys.implementation.cache_tag}.pyc")


@functools.cache
def boot(folder: str, executable: str, boot_folders: tuple[str, ...], worker_module: str) -> str:
    """Fill ``folder`` with the bytecode of what a worker imports before it is restricted (once a process).

    Without it, an environment installed without ``.pyc`` files (uv's default, or
    ``PYTHONDONTWRITEBYTECODE``) compiles msgspec and typing_extensions from source at every start.
    """
    os.makedirs(folder, exist_ok=True)
    program = f"import sys; sys.path += sys.argv[1:]; import {worker_module}"
    command = [executable, "-I", "-S", "-X", f"pycache_prefix={folder}", "-c", program, *boot_folders]
    subprocess.run(command, capture_output=True, timeout=_TIMEOUT, check=False)
    return folder


def shareable(reported: Iterable[object], roots: tuple[str, ...]) -> list[str]:
    """The paths among ``reported`` (what a worker named, untrusted) that the host compiles: absolute
    ``.py`` paths of regular files beneath ``roots``, both as named and once links are resolved."""
    found: list[str] = []
    for path in list(reported)[:MAX_REPORTED]:
        if not (isinstance(path, str) and path.endswith(".py") and os.path.isabs(path)) or "\n" in path:
            continue
        if os.path.normpath(path) != path or not inside_any(roots)(path):
            continue
        real = os.path.realpath(path)
        if not inside_any(roots)(real):
            continue
        try:
            info = os.stat(real)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_size <= MAX_SOURCE:
            found.append(path)
    return found


class Compiler:
    """Compiles what workers report into the shared cache, one batch at a time, in a thread of its own
    (compiling runs none of the code it compiles)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, str, list[str]] | threading.Event] = queue.SimpleQueue()
        self._done: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, executable: str, folder: str, paths: list[str]) -> None:
        """Compile ``paths`` (already judged ``shareable``) into ``folder``, in the background."""
        with self._lock:
            fresh = [path for path in paths if (executable, folder, path) not in self._done]
            if not fresh:
                return
            self._done.update((executable, folder, path) for path in fresh)
            self._put((executable, folder, fresh))

    def wait(self, timeout: float = _TIMEOUT) -> bool:
        """Whether everything submitted so far was compiled within ``timeout`` seconds."""
        done = threading.Event()
        with self._lock:
            self._put(done)
        return done.wait(timeout)

    def _put(self, item: tuple[str, str, list[str]] | threading.Event) -> None:
        self._queue.put(item)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="symphony-bytecode", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=5.0)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if isinstance(item, threading.Event):
                item.set()
            else:
                self._compile(*item)

    @staticmethod
    def _compile(executable: str, into: str, paths: list[str]) -> None:
        if executable != sys.executable:  # bytecode is for the interpreter that compiles it
            return
        for path in paths:
            target = cached(into, path)
            if _fresh(target, path):  # compiled already (a worker may name it again, or lie)
                continue
            try:
                py_compile.compile(path, cfile=target, doraise=True, quiet=2)
            except (OSError, py_compile.PyCompileError, ValueError, RecursionError, MemoryError):
                continue  # the worker compiles it in memory, and fails there if it must


def _fresh(target: str, source: str) -> bool:
    """Whether ``target`` holds bytecode stamped with ``source``'s modification time and size, as the
    import system checks it."""
    try:
        with open(target, "rb") as file:
            header = file.read(16)
        info = os.stat(source)
    except OSError:
        return False
    return (
        len(header) == 16
        and header[:4] == importlib.util.MAGIC_NUMBER
        and int.from_bytes(header[4:8], "little") == 0  # stamped with time and size, not a hash
        and int.from_bytes(header[8:12], "little") == int(info.st_mtime) & 0xFFFFFFFF
        and int.from_bytes(header[12:16], "little") == info.st_size & 0xFFFFFFFF
    )


COMPILER = Compiler()


def forget_own(cache_dir: Path) -> None:
    """Remove the bytecode a worker of this extension wrote in its own cache folder (before workers
    shared the host's): it only takes quota now. Links are never followed."""
    own = cache_dir / "pycache"
    with contextlib.suppress(OSError):
        if own.is_dir() and not own.is_symlink():
            shutil.rmtree(own, ignore_errors=True)
