"""Bulk values between host and worker: numpy arrays and polars frames travel through shared memory.

A bulk value is a msgpack extension value. Its type code says what it is (array, frame, lazy frame,
series: the low 4 bits) and how it travels (the next bits):

- inline: the bytes are the payload, for values under the inline limit, where a shared-memory file would
  cost more than the copy. Arrays travel raw behind a short ``dtype;shape`` header, frames as an Arrow
  IPC stream (a tenth of what polars takes to write and read a small frame as an IPC file);
- file: the payload names a file the host wrote into the worker's exchange folder in ``/dev/shm``; the
  worker maps it and deletes it. Only the host writes these, so only the worker accepts them;
- memfd: the payload is the number of a sealed ``memfd`` of the worker. The worker writes the value, then
  seals the memfd against writing, growing and shrinking; the host copies that file descriptor out of the
  worker (``pidfd_getfd``: nothing is opened by a name the worker chose, so nothing can block the host or
  lead it outside the worker's own memory), refuses it unless it is a regular file with those seals (only
  a memfd can have them), and maps it. Sealing is what lets the host map data from a process it does not
  trust: the bytes cannot change while polars or numpy parse them. The worker closes its memfds once the
  host has sent its next request.

Files and memfds hold ``.npy`` (read with ``allow_pickle=False``) or uncompressed Arrow IPC (polars): the
host checks Arrow IPC from a worker before polars reads it (``_arrow``), and refuses it compressed.
Arrays of Python objects are refused, and so are dtypes other than booleans, numbers, dates, bytes and
text. A ``LazyFrame`` is collected by the side that sends it (so an extension's query runs inside the
sandbox, never in the host) and arrives as ``frame.lazy()``; a ``Series`` travels as a one-column frame.
A numpy scalar travels inline as its dtype and bytes, and arrives as the same numpy scalar (``float64``
and ``str_`` scalars are Python ``float`` and ``str`` subclasses, which msgpack carries as such).

Two more extension values travel inline only, from worker to host:

- a result: a value of a type registered with ``register_result`` (``_crossing``) that a method
  returned, sent as its registered name and its fields; the host decodes the fields into that type with
  msgspec's typed decoding (every field's type checked, no constructor run), or gives them as plain
  data when it does not know the name. The worker wraps only the value a method returns (one dict
  lookup per call), not values inside it;

numpy and polars are imported with ``importlib`` inside the functions that handle such a value: the core
must not depend on them (import-linter's ``core-light`` contract sees every ``import`` statement, even in
a function), and a worker that never receives one never loads them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib
import io
import mmap
import os
import re
import stat
from typing import Any

import msgspec

from symphony_core._model._crossing import result_name, result_type

from . import _syscalls
from ._arrow import check_ipc, check_ipc_stream
from ._protocol import reply_limit

ARRAY, FRAME, LAZY, SERIES, SCALAR = 1, 2, 3, 4, 5
RESULT = 15
"""A registered result type, by name (inline only)."""
INLINE, FILE, MEMFD = 0, 16, 32
_NAME_KEPT = 256
_SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
_HOST_FILE = re.compile(r"h[0-9a-f]{16}\.(?:npy|arrow)")
_KINDS = {
    ("numpy", "ndarray"): ARRAY,
    ("polars", "DataFrame"): FRAME,
    ("polars", "LazyFrame"): LAZY,
    ("polars", "Series"): SERIES,
}
_SUFFIX = {ARRAY: ".npy", FRAME: ".arrow", LAZY: ".arrow", SERIES: ".arrow"}
_PLAIN_DTYPES = frozenset("?biufcmMSU")
"""numpy dtype kinds that may cross: no objects, no structured or void types."""


def kind_of(value: object) -> int | None:
    """Which bulk kind ``value`` is (by its class's module and name: nothing is imported), or None."""
    for cls in type(value).__mro__:
        kind = _KINDS.get((cls.__module__.partition(".")[0], cls.__name__))
        if kind is not None:
            return kind
    return None


class Codec:
    """Encodes bulk values for msgspec (``enc_hook``) and decodes them (``ext_hook``) on one side."""

    def __init__(
        self,
        *,
        side: str,
        exchange: str,
        inline_limit: int,
        peer_pidfd: int | None = None,
        kit: str | None = None,
    ) -> None:
        self.side = side
        """``host`` or ``worker``: the host writes files into the exchange folder, the worker sealed memfds."""
        self.exchange = exchange
        self.inline_limit = inline_limit
        self.peer_pidfd = peer_pidfd
        """On the host side, a pidfd of the worker process that holds the memfds (to copy them out)."""
        self.kit = kit
        """On the host side, the kit the worker's extension is built on: imported to rebuild its results."""
        self._pending: list[int] = []
        self._inlined = 0
        self._fields = msgspec.msgpack.Encoder(enc_hook=self.encode)
        self._decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}

    # Encoding

    def result(self, value: Any) -> Any:
        """What a worker sends for the value a method returned: a registered result type as itself."""
        name = result_name(type(value))
        if name is None:
            return value
        return msgspec.msgpack.Ext(RESULT, name.encode() + b"\0" + self._fields.encode(value))

    def encode(self, value: Any) -> Any:
        kind = kind_of(value)
        if kind is None:
            dtype = getattr(value, "dtype", None)
            if type(value).__module__ == "numpy" and callable(getattr(value, "item", None)):
                if dtype is not None and dtype.kind in _PLAIN_DTYPES and dtype.fields is None:
                    return msgspec.msgpack.Ext(SCALAR, _scalar(value))
                return value.item()
            raise TypeError(
                f"a {type(value).__module__}.{type(value).__qualname__} cannot cross into or out of an isolated "
                "worker: send built-in values (str, int, float, bool, None, bytes, list, dict), numpy arrays "
                "or polars frames"
            )
        if kind == ARRAY:
            _check_dtype(value.dtype)
        elif kind == LAZY:
            value = value.collect()
        elif kind == SERIES:
            value = value.to_frame()
        size = int(value.nbytes if kind == ARRAY else value.estimated_size())
        if size < self.inline_limit and self._fits_inline(size):
            return msgspec.msgpack.Ext(kind | INLINE, _inline(kind, value))
        if self.side == "host":
            return msgspec.msgpack.Ext(kind | FILE, self._write_file(kind, value).encode())
        return msgspec.msgpack.Ext(kind | MEMFD, str(self._write_memfd(kind, value)).encode())

    def _fits_inline(self, size: int) -> bool:
        """Whether the reply being built still has room for ``size`` more bytes inline: the host refuses a
        reply frame over ``reply_limit``, so once half of it is taken a worker's values go through memfds."""
        if self.side == "host":
            return True
        if self._inlined + size > reply_limit(self.inline_limit) // 2:
            return False
        self._inlined += size
        return True

    def _write_file(self, kind: int, value: Any) -> str:
        name = f"h{os.urandom(8).hex()}{_SUFFIX[kind]}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(os.path.join(self.exchange, name), flags, 0o600)
        with os.fdopen(fd, "wb") as file:
            _write(kind, value, file)
        return name

    def _write_memfd(self, kind: int, value: Any) -> int:
        fd = os.memfd_create("symphony-bulk", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            with os.fdopen(fd, "wb", closefd=False) as file:
                _write(kind, value, file)
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS | fcntl.F_SEAL_SEAL)
        except BaseException:
            os.close(fd)
            raise
        self._pending.append(fd)
        return fd

    def release(self) -> None:
        """Close the memfds already sent (the host has taken them once it sends its next request)."""
        pending, self._pending = self._pending, []
        self._inlined = 0  # the worker releases once per request: the next reply starts empty
        for fd in pending:
            with contextlib.suppress(OSError):
                os.close(fd)

    # Decoding

    def decode(self, code: int, data: memoryview) -> Any:
        if code == SCALAR:
            return _from_scalar(data)
        if code == RESULT and self.side == "host":
            return self._result(data)
        kind, way = code & 15, code & ~15
        if kind not in _SUFFIX:
            raise ValueError(f"unknown extension type {code} in a message")
        if way == INLINE:
            value = _from_inline(kind, data)
        elif way == FILE and self.side == "worker":
            value = self._read_file(kind, bytes(data).decode())
        elif way == MEMFD and self.side == "host":
            value = self._read_memfd(kind, _fd_number(data))
        else:
            raise ValueError(f"the {self.side} does not accept bulk values sent as type {code}")
        if kind == LAZY:
            return value.lazy()
        if kind == SERIES:
            return value.to_series()
        return value

    def _result(self, data: memoryview) -> Any:
        raw = bytes(data)
        name, _, fields = raw.partition(b"\0")
        if not (0 < len(name) <= _NAME_KEPT and name.isascii()):
            raise ValueError("a result named by no registered name")
        cls = result_type(name.decode(), self.kit)
        if cls is None:  # a type this host does not know: its fields, as plain data
            return msgspec.msgpack.decode(fields, ext_hook=self.decode)
        decoder = self._decoders.get(cls)
        if decoder is None:
            decoder = self._decoders[cls] = msgspec.msgpack.Decoder(cls, ext_hook=self.decode)
        return decoder.decode(fields)

    def _read_file(self, kind: int, name: str) -> Any:
        if not _HOST_FILE.fullmatch(name):
            raise ValueError(f"{name!r} is not a file the host writes")
        path = os.path.join(self.exchange, name)
        try:
            return _read(kind, path)
        finally:
            os.unlink(path)

    def _read_memfd(self, kind: int, number: int) -> Any:
        if self.peer_pidfd is None:
            raise ValueError("this host has no handle on the worker's process to take its memfds from")
        try:
            fd = _syscalls.syscall(
                "pidfd_getfd", ctypes.c_int(self.peer_pidfd), ctypes.c_int(number), ctypes.c_uint(0)
            )
        except OSError as exc:
            raise ValueError(
                f"the worker named its file {number}, which could not be taken: {exc.strerror}"
            ) from None
        try:
            try:  # seals first: only a memfd has them, and asking any other file for them never blocks
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
            except OSError:
                seals = 0
            status = os.fstat(fd) if seals & _SEALS == _SEALS else None
            if status is None or not stat.S_ISREG(status.st_mode):
                raise ValueError("the worker sent bulk data that is not a sealed memfd; refused")
            if kind != ARRAY:
                _check_ipc_file(fd, status.st_size)
            return _read(kind, f"/proc/self/fd/{fd}")  # this host's own descriptor, the file now checked
        finally:
            os.close(fd)


def _fd_number(data: memoryview) -> int:
    text = bytes(data)
    if not (0 < len(text) <= 9 and text.isdigit()):
        raise ValueError(f"a memfd named by {text[:32]!r}, not by a file descriptor number")
    return int(text)


def _check_ipc_file(fd: int, size: int) -> None:
    if size <= 0:
        raise ValueError("the worker sent an empty memfd as a frame")
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as mapped:
        check_ipc(mapped)


def _check_dtype(dtype: Any) -> None:
    if dtype.kind not in _PLAIN_DTYPES or dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(
            f"an array of dtype {dtype} cannot cross into or out of an isolated worker (no Python objects, "
            "no structured types)"
        )


def _scalar(value: Any) -> bytes:
    header = value.dtype.str.encode()
    return b"".join((bytes((len(header),)), header, value.tobytes()))


def _from_scalar(data: memoryview) -> Any:
    numpy = importlib.import_module("numpy")
    if not data:
        raise ValueError("a numpy scalar without its header")
    size = data[0]
    dtype = numpy.dtype(bytes(data[1 : 1 + size]).decode())
    _check_dtype(dtype)
    if len(data) - 1 - size != dtype.itemsize:
        raise ValueError(f"a {dtype} scalar of {len(data) - 1 - size} bytes")
    return numpy.frombuffer(data[1 + size :], dtype=dtype)[0]


def _inline(kind: int, value: Any) -> bytes:
    if kind == ARRAY:
        numpy = importlib.import_module("numpy")
        contiguous = numpy.ascontiguousarray(value)
        header = f"{contiguous.dtype.str};{','.join(map(str, contiguous.shape))}".encode()
        return b"".join((bytes((len(header),)), header, contiguous.data.cast("B")))
    buffer = io.BytesIO()
    # Written from a shallow copy: polars writes a stream holding the frame's own lock with the GIL
    # released, so another thread that reads the same frame meanwhile (its height, say) would wait for
    # that lock holding the GIL, and neither could go on. The copy's lock is nobody else's.
    value.clone().write_ipc_stream(buffer, compression="uncompressed")
    return buffer.getvalue()


def _from_inline(kind: int, data: memoryview) -> Any:
    if kind == ARRAY:
        numpy = importlib.import_module("numpy")
        if not data:
            raise ValueError("an inline array without its header")
        size = data[0]
        dtype_text, _, shape_text = bytes(data[1 : 1 + size]).decode().partition(";")
        dtype = numpy.dtype(dtype_text)
        _check_dtype(dtype)
        shape = tuple(int(n) for n in shape_text.split(",")) if shape_text else ()
        return numpy.frombuffer(data[1 + size :], dtype=dtype).reshape(shape).copy()
    check_ipc_stream(data)
    polars = importlib.import_module("polars")
    return polars.read_ipc_stream(bytes(data))


def _write(kind: int, value: Any, file: Any) -> None:
    if kind == ARRAY:
        numpy = importlib.import_module("numpy")
        numpy.save(file, value, allow_pickle=False)
    else:
        value.write_ipc(file, compression="uncompressed")


def _read(kind: int, path: str) -> Any:
    if kind == ARRAY:
        numpy = importlib.import_module("numpy")
        array = numpy.load(path, mmap_mode="c", allow_pickle=False)
        _check_dtype(array.dtype)
        return array.view(numpy.ndarray)
    polars = importlib.import_module("polars")
    return polars.read_ipc(path)
