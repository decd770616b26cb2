"""Attacks on the host through the worker protocol itself.

The worker writes raw bytes on its own pipes (``hostile_kit.pipes``), or returns msgpack extension values
built by hand in the bulk encoding (``symphony_core._security._sandbox._bulk``: the low 4 bits say array 1, frame
2, lazy frame 3, series 4; 0 inline, 16 a file, 32 a memfd).
"""

from __future__ import annotations

import io
import os
import random
import struct
import sys
import time

import msgspec
from hostile_kit import Hostile, pipes

FRAME_INLINE, FRAME_MEMFD = 2, 2 | 32
_MIB = 1 << 20


class Ext(Hostile):
    # Memory: frames that announce more than they hold, a compression bomb, an endless line

    def reply_header(self, size: int) -> None:
        """Announce a reply of ``size`` bytes, send almost none of it, and wait."""
        os.write(pipes()["reply"], struct.pack("<I", size) + b"\x81")
        time.sleep(3600)

    def event_header(self, size: int) -> str:
        """Announce an event of ``size`` bytes on the event pipe, send almost none of it, and return."""
        os.write(pipes()["events"], struct.pack("<I", size) + b"\x81")
        return "announced"

    def zstd_bomb(self, chunks: int) -> msgspec.msgpack.Ext:
        """A frame of ``chunks`` record batches of 256 MiB of zeros each, zstd-compressed to a few KiB each.

        The batches share one buffer here, so the worker never holds more than 256 MiB of it.
        """
        import polars as pl

        chunk = pl.DataFrame({"a": pl.zeros(32 * _MIB, dtype=pl.Int64, eager=True)})
        frame = pl.concat([chunk] * chunks, rechunk=False)
        buffer = io.BytesIO()
        frame.write_ipc_stream(buffer, compression="zstd")
        return msgspec.msgpack.Ext(FRAME_INLINE, buffer.getvalue())

    def zstd_bomb_size(self, chunks: int) -> int:
        return len(self.zstd_bomb(chunks).data)

    def stderr_line(self, mib: int) -> int:
        """Write ``mib`` MiB to standard error (the host's log pipe) without a newline."""
        block = b"x" * _MIB
        for _ in range(mib):
            os.write(2, block)
        return mib

    # Hangs: a bulk value naming a file descriptor that is not a sealed memfd

    def false_memfd(self, what: str) -> msgspec.msgpack.Ext:
        """Name a FIFO or a pipe as the memfd holding a frame."""
        cache = self.context.cache_dir
        if what.startswith("fifo"):
            fifo = cache / "bulk.fifo"
            if not fifo.exists():
                os.mkfifo(fifo)
            flags = os.O_RDWR if what == "fifo-rdwr" else os.O_RDONLY
            fd = os.open(fifo, flags | os.O_NONBLOCK)
        else:  # "pipe": the read end of a pipe whose write end is closed
            fd, write_end = os.pipe()
            os.close(write_end)
        self.kept = fd  # stays open while the host looks at it
        return msgspec.msgpack.Ext(FRAME_MEMFD, str(fd).encode())

    # BaseException: a malformed Arrow IPC value that makes polars panic

    def panicking_ipc(self) -> msgspec.msgpack.Ext:
        """An inline frame (an Arrow IPC stream) whose bytes make ``polars.read_ipc_stream`` panic (found
        here by mutating a good one)."""
        import polars as pl

        buffer = io.BytesIO()
        frame = pl.DataFrame({"a": [1, 2, 3], "s": ["x", "yy", "zzz"]})
        frame.write_ipc_stream(buffer, compression="uncompressed")
        good = buffer.getvalue()
        chooser = random.Random(1)
        for _ in range(100_000):
            data = bytearray(good)
            for _ in range(chooser.randint(1, 4)):
                data[chooser.randrange(8, len(data) - 10)] = chooser.randrange(256)
            try:
                pl.read_ipc_stream(bytes(data))
            except pl.exceptions.PanicException:
                return msgspec.msgpack.Ext(FRAME_INLINE, bytes(data))
            except Exception:
                continue
        raise RuntimeError("no mutation made polars panic")

    # Forged errors: the host's verdicts, raised by the extension

    def raise_consent_required(self, victim: str) -> None:
        from symphony_core import ConsentRequired

        raise ConsentRequired(
            "needs consent before it can run: fs.read /",
            extension=victim,
            hint=f"review with `symphony permissions {victim}`, then `symphony grant {victim}`",
        )

    def raise_lookalike(self, victim: str) -> None:
        from hostile_wire._errors import ConsentRequired

        raise ConsentRequired("needs consent before it can run: fs.read /", extension=victim)

    def raw_failure(self, victim: str) -> None:
        """Write a Failure frame of the host's own kind on the reply pipe, for this request, then vanish."""
        from symphony_core._security._sandbox._protocol import Failure

        request = _current_request()
        failure = Failure(
            id=request,
            type="symphony_core._model._errors.ConsentRequired",
            message="needs consent before it can run: fs.read /",
            hint=f"run `symphony grant {victim}`",
            extension=victim,
            symphony="ConsentRequired",
        )
        payload = msgspec.msgpack.encode(failure)
        os.write(pipes()["reply"], struct.pack("<I", len(payload)) + payload)
        os._exit(0)


def _current_request() -> int:
    """The id of the request being served, from the worker's own frames."""
    frame = sys._getframe()
    while frame is not None:
        request = frame.f_locals.get("request")
        number = request if isinstance(request, int) else getattr(request, "id", None)
        if isinstance(number, int):
            return number
        frame = frame.f_back
    return 0
