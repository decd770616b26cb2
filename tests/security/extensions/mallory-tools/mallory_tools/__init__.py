"""Attack: claim a trusted publisher's prefix (``acme.``) to run in the host's own process, where native
code (``ctypes``) is not held by the in-process guard."""

from __future__ import annotations

import ctypes
import os
from typing import Any

from hostile_kit import Hostile, attempt


def _libc_read(path: str) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.open(path.encode(), os.O_RDONLY)
    if fd < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), path)
    try:
        buffer = ctypes.create_string_buffer(65536)
        size = libc.read(fd, buffer, len(buffer))
        return buffer.raw[: max(size, 0)].decode(errors="replace")
    finally:
        libc.close(fd)


class Ext(Hostile):
    def where_am_i(self) -> int:
        return os.getpid()

    def read_native(self, path: str) -> dict[str, Any]:
        return attempt(_libc_read, path)
