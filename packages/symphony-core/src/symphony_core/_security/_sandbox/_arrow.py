"""A check of Arrow IPC from a worker, made before polars reads it: well formed and uncompressed.

polars inflates a compressed body with no size limit (a megabyte of zstd can become gigabytes in the host),
and some malformed files make it panic or build a schema without end. Workers always write uncompressed IPC,
so the host first reads what polars would trust, with a small flatbuffer reader that checks every offset
against the bytes it has: the footer, the schema's fields (a tree at most 64 deep in which no table is
reached twice) and the message of each dictionary and record batch (uncompressed, its buffers inside its
body, its body inside the file).

The layout (Arrow's ``File.fbs``, ``Message.fbs``, ``Schema.fbs``): ``ARROW1`` and 2 bytes of padding, the
stream of messages, the ``Footer`` flatbuffer, its size (int32) and ``ARROW1``. A footer ``Block``
(offset: int64, metaDataLength: int32, bodyLength: int64) points at an encapsulated message: 0xFFFFFFFF
(left out by old writers), the size of the ``Message`` flatbuffer (int32), the flatbuffer, then the body.
A stream (``check_ipc_stream``) is such messages back to back, the schema's first, ended by a message
of size 0.
"""

from __future__ import annotations

import struct
from typing import Any

_MAGIC = b"ARROW1"
_CONTINUATION = 0xFFFFFFFF
_MAX_DEPTH = 64
"""How deeply types may nest (a list of structs of lists...): polars walks a schema recursively."""

# Field numbers in the tables read here, as the .fbs files order them (a union takes two: type, value).
_FOOTER_SCHEMA, _FOOTER_DICTIONARIES, _FOOTER_BATCHES = 1, 2, 3
_SCHEMA_FIELDS = 1
_FIELD_CHILDREN = 5
_MESSAGE_HEADER_TYPE, _MESSAGE_HEADER, _MESSAGE_BODY_LENGTH = 1, 2, 3
_DICTIONARY_DATA = 1
_BATCH_LENGTH, _BATCH_NODES, _BATCH_BUFFERS, _BATCH_COMPRESSION, _BATCH_VARIADIC = 0, 1, 2, 3, 4
_SCHEMA_MESSAGE, _DICTIONARY_BATCH, _RECORD_BATCH = 1, 2, 3
"""The ``MessageHeader`` union's members: a stream starts with a schema; footer blocks point at batches."""

_U8, _U16, _I32, _U32, _I64 = (struct.Struct(f) for f in ("<B", "<H", "<i", "<I", "<q"))
_BLOCK = struct.Struct("<qi4xq")
_PAIR = struct.Struct("<qq")
"""``FieldNode`` (length, null count) and ``Buffer`` (offset, length) are both two int64."""


def check_ipc(data: Any) -> None:
    """Raise ``ValueError`` unless ``data`` (bytes, a memoryview, an mmap) is an Arrow IPC file whose
    batches are uncompressed and lie, buffer by buffer, inside the file."""
    size = len(data)
    tail = 4 + len(_MAGIC)
    if size < 8 + tail or bytes(data[:6]) != _MAGIC or bytes(data[size - 6 :]) != _MAGIC:
        raise ValueError("not an Arrow IPC file (no ARROW1 at its start and end)")
    (footer_size,) = _I32.unpack_from(data, size - tail)
    footer_start = size - tail - footer_size
    if footer_size <= 0 or footer_start < 8:
        raise ValueError(f"malformed Arrow IPC file: a footer of {footer_size} bytes")
    footer = _Flatbuffer(data, footer_start, size - tail)
    root = footer.root()
    schema = footer.table(root, _FOOTER_SCHEMA)
    if schema is None:
        raise ValueError("malformed Arrow IPC file: its footer has no schema")
    _check_fields(footer, schema)
    for index, kind in ((_FOOTER_DICTIONARIES, _DICTIONARY_BATCH), (_FOOTER_BATCHES, _RECORD_BATCH)):
        start, count = footer.vector(root, index, _BLOCK.size)
        for n in range(count):
            offset, metadata, body = footer.read(_BLOCK, start + n * _BLOCK.size)
            _check_block(data, offset, metadata, body, kind, footer_start)


def check_ipc_stream(data: Any) -> None:
    """Raise ``ValueError`` unless ``data`` is an Arrow IPC stream: a schema message, then dictionary and
    record batch messages, each uncompressed with its buffers inside its body, then the end-of-stream
    marker and nothing after it (the form small frames travel in: polars reads and writes it for a
    fraction of what a file costs)."""
    size = len(data)
    at, schema_seen = 0, False
    while True:
        if at + 8 > size:
            raise ValueError("not an Arrow IPC stream (it ends before its end-of-stream marker)")
        (length,) = _U32.unpack_from(data, at)
        start = at + 4
        if length == _CONTINUATION:
            (length,) = _I32.unpack_from(data, start)
            start += 4
        if length == 0:
            if start != size:
                raise ValueError("malformed Arrow IPC stream: bytes after its end-of-stream marker")
            if not schema_seen:
                raise ValueError("malformed Arrow IPC stream: it has no schema")
            return
        if not 0 < length <= size - start:
            raise ValueError(f"malformed Arrow IPC stream: a message of {length} bytes at {at}")
        message = _Flatbuffer(data, start, start + length)
        root = message.root()
        header_type = message.scalar(root, _MESSAGE_HEADER_TYPE, _U8, 0)
        header = message.table(root, _MESSAGE_HEADER)
        body = message.scalar(root, _MESSAGE_BODY_LENGTH, _I64, 0)
        at = start + length + body
        if header is None or body < 0 or at > size:
            raise ValueError(
                f"malformed Arrow IPC stream: a message of type {header_type} outside the stream"
            )
        if not schema_seen:
            if header_type != _SCHEMA_MESSAGE or body:
                raise ValueError(
                    f"malformed Arrow IPC stream: it starts with a message of type {header_type}"
                )
            _check_fields(message, header)
            schema_seen = True
            continue
        if header_type not in (_DICTIONARY_BATCH, _RECORD_BATCH):
            raise ValueError(f"malformed Arrow IPC stream: a message of type {header_type} after its schema")
        batch = message.table(header, _DICTIONARY_DATA) if header_type == _DICTIONARY_BATCH else header
        if batch is None:
            raise ValueError("malformed Arrow IPC stream: a dictionary batch without its data")
        _check_batch(message, batch, body)


def _check_fields(footer: _Flatbuffer, schema: int) -> None:
    """The schema's fields form a tree no deeper than ``_MAX_DEPTH``: a table reached twice is refused, since
    polars would copy it once per path to it (a few shared tables can make a schema of millions of fields)."""
    seen: set[int] = set()
    stack = [(field, 1) for field in footer.tables(schema, _SCHEMA_FIELDS)]
    while stack:
        field, depth = stack.pop()
        if field in seen:
            raise ValueError("malformed Arrow IPC file: a field of its schema is reached twice")
        if depth > _MAX_DEPTH:
            raise ValueError(f"malformed Arrow IPC file: types nested more than {_MAX_DEPTH} deep")
        seen.add(field)
        stack.extend((child, depth + 1) for child in footer.tables(field, _FIELD_CHILDREN))


def _check_block(data: Any, offset: int, metadata: int, body: int, kind: int, end: int) -> None:
    if offset < 8 or metadata < 8 or body < 0 or offset + metadata + body > end:
        raise ValueError(
            f"malformed Arrow IPC file: a block at {offset} ({metadata} + {body} bytes) is outside the file"
        )
    frame = _Flatbuffer(data, offset, offset + metadata)
    (length,) = frame.read(_U32, offset)
    start = offset + 4
    if length == _CONTINUATION:
        (length,) = frame.read(_I32, start)
        start += 4
    if not 0 < length <= offset + metadata - start:
        raise ValueError(f"malformed Arrow IPC file: a message of {length} bytes in a block of {metadata}")
    message = _Flatbuffer(data, start, start + length)
    root = message.root()
    header_type = message.scalar(root, _MESSAGE_HEADER_TYPE, _U8, 0)
    header = message.table(root, _MESSAGE_HEADER)
    if header_type != kind or header is None:
        raise ValueError(f"malformed Arrow IPC file: a block holds a message of type {header_type}")
    if message.scalar(root, _MESSAGE_BODY_LENGTH, _I64, 0) != body:
        raise ValueError("malformed Arrow IPC file: a message and its block disagree on its body's size")
    batch = message.table(header, _DICTIONARY_DATA) if kind == _DICTIONARY_BATCH else header
    if batch is None:
        raise ValueError("malformed Arrow IPC file: a dictionary batch without its data")
    _check_batch(message, batch, body)


def _check_batch(message: _Flatbuffer, batch: int, body: int) -> None:
    if message.field(batch, _BATCH_COMPRESSION) is not None:
        raise ValueError(
            "compressed Arrow IPC data is refused: workers write it uncompressed, and the host does not "
            "inflate what a worker sends"
        )
    if message.scalar(batch, _BATCH_LENGTH, _I64, 0) < 0:
        raise ValueError("malformed Arrow IPC file: a batch of negative length")
    start, count = message.vector(batch, _BATCH_NODES, _PAIR.size)
    for n in range(count):
        length, nulls = message.read(_PAIR, start + n * _PAIR.size)
        if not 0 <= nulls <= length:
            raise ValueError(f"malformed Arrow IPC file: a column of {length} rows with {nulls} nulls")
    start, count = message.vector(batch, _BATCH_BUFFERS, _PAIR.size)
    for n in range(count):
        offset, length = message.read(_PAIR, start + n * _PAIR.size)
        if offset < 0 or length < 0 or offset + length > body:
            raise ValueError(
                f"malformed Arrow IPC file: a buffer of {length} bytes at {offset} in a body of {body}"
            )
    start, count = message.vector(batch, _BATCH_VARIADIC, _I64.size)
    for n in range(count):
        if message.read(_I64, start + n * _I64.size)[0] < 0:
            raise ValueError("malformed Arrow IPC file: a negative count of variadic buffers")


class _Flatbuffer:
    """One flatbuffer, ``data[lo:hi]``: each read is checked against those bounds, and offsets only
    lead forward (or, for a table's vtable, anywhere inside), so no walk can loop or leave them."""

    def __init__(self, data: Any, lo: int, hi: int) -> None:
        self.data, self.lo, self.hi = data, lo, hi

    def read(self, shape: struct.Struct, at: int) -> tuple[Any, ...]:
        if at < self.lo or at + shape.size > self.hi:
            raise ValueError(f"malformed Arrow IPC file: a read at {at} outside bytes {self.lo}..{self.hi}")
        return shape.unpack_from(self.data, at)

    def _follow(self, at: int) -> int:
        (offset,) = self.read(_U32, at)
        return int(at + offset)

    def root(self) -> int:
        return self._follow(self.lo)

    def field(self, table: int, index: int) -> int | None:
        """Where field ``index`` of the table at ``table`` is, or None when the table leaves it out."""
        (back,) = self.read(_I32, table)
        vtable = table - back
        (vtable_size,) = self.read(_U16, vtable)
        slot = 4 + 2 * index
        if vtable_size < 4 or slot + 2 > vtable_size:
            return None
        (offset,) = self.read(_U16, vtable + slot)
        return table + offset if offset else None

    def scalar(self, table: int, index: int, shape: struct.Struct, default: int) -> int:
        at = self.field(table, index)
        return default if at is None else int(self.read(shape, at)[0])

    def table(self, table: int, index: int) -> int | None:
        at = self.field(table, index)
        return None if at is None else self._follow(at)

    def vector(self, table: int, index: int, item: int) -> tuple[int, int]:
        """The start and length of a vector field (0, 0 when absent), checked to fit."""
        at = self.field(table, index)
        if at is None:
            return 0, 0
        start = self._follow(at)
        (count,) = self.read(_U32, start)
        if start + 4 + count * item > self.hi:
            raise ValueError(f"malformed Arrow IPC file: a vector of {count} items past its end")
        return start + 4, int(count)

    def tables(self, table: int, index: int) -> list[int]:
        start, count = self.vector(table, index, 4)
        return [self._follow(start + 4 * n) for n in range(count)]
