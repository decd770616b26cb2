"""Bulk values and kit errors from a worker, fuzzed from the host's side, with numpy, polars and the kits
installed: whatever a worker puts in a reply ends as a value the host can use, or as a refusal.

The core's cell fuzzes the frames and failures themselves (``test_fuzz_protocol.py``); here the values
inside them are made by hypothesis: inline arrays with any header, shape and bytes; Arrow IPC files of
real frames with bytes changed or cut; failures naming each kit's registered errors with data of any
shape. A frame the host accepts must then be usable (every value read, the frame filtered), which is
what a pipeline does next with a step's result.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symphony_core import SymphonyError
from symphony_core._model._crossing import ERRORS_FROM_WORKERS
from symphony_core._security._sandbox._bulk import ARRAY, FRAME, INLINE, Codec
from symphony_core._security._sandbox._process import _remote
from symphony_core._security._sandbox._protocol import REPLY_FRAME, Channel, Failure, ProtocolViolation, Reply

KITS = ["symphony_instruments", "symphony_operators", "symphony_motifs"]
SAMPLE = pl.DataFrame(
    {
        "id": [1, 2, None, 4],
        "name": ["a", "a longer text than twelve bytes", None, "ü"],
        "score": [0.5, None, 2.0, -1.0],
        "tags": [["x"], [], None, ["y", "z"]],
        "point": [{"x": 1, "y": 2.0}, None, {"x": 3, "y": None}, {"x": 4, "y": 5.0}],
        "flag": [True, False, None, True],
    }
)


def ipc(frame: pl.DataFrame) -> bytes:
    """A frame as inline frames travel: an uncompressed Arrow IPC stream."""
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer, compression="uncompressed")
    return buffer.getvalue()


VALID = ipc(SAMPLE)


@pytest.fixture
def codec(tmp_path: Path) -> Codec:
    return Codec(side="host", exchange=str(tmp_path), inline_limit=1 << 20, peer_pidfd=None, kit=None)


def reply(codec: Codec, code: int, payload: bytes) -> Any:
    """What the host reads from a reply whose value is the extension value (code, payload)."""
    body = msgspec.msgpack.encode({"t": "reply", "id": 1, "value": msgspec.msgpack.Ext(code, payload)})
    read_fd, write_fd = os.pipe()
    requests_read, requests_write = os.pipe()
    os.close(requests_read)
    channel = Channel(read_fd, requests_write, ext_hook=codec.decode, max_frame=REPLY_FRAME)
    try:
        os.write(write_fd, struct.pack("<I", len(body)) + body)
        os.close(write_fd)
        try:
            return channel.receive(timeout=2.0)
        except ProtocolViolation as refused:
            return refused
    finally:
        channel.close()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.none() | st.integers(0, len(VALID)),
)
def test_an_arrow_file_with_bytes_changed_or_cut_is_refused_or_read_as_a_usable_frame(
    codec: Codec, changes: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(VALID)
    for where, byte in changes:
        data[where] = byte
    if cut is not None:
        data = data[:cut]

    answer = reply(codec, FRAME | INLINE, bytes(data))

    if isinstance(answer, ProtocolViolation):
        return
    assert isinstance(answer, Reply)
    frame = answer.value
    assert isinstance(frame, pl.DataFrame)
    frame.to_dicts()  # every value read
    assert frame.filter(pl.all_horizontal(pl.all().is_not_null())).height <= frame.height


dtypes = st.sampled_from(["<f4", "<f8", "<i8", "|b1", "<U3", "|S2", "<M8[s]", "|O", "|V8", "<c16"]) | st.text(
    max_size=12
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=dtypes,
    shape=st.lists(st.integers(-3, 1 << 40), max_size=4).map(lambda dims: ",".join(map(str, dims)))
    | st.text(max_size=12),
    body=st.binary(max_size=256),
)
def test_an_inline_array_with_any_header_and_bytes_is_refused_or_a_plain_array(
    codec: Codec, dtype: str, shape: str, body: bytes
) -> None:
    header = f"{dtype};{shape}".encode()
    if len(header) > 255:
        return

    answer = reply(codec, ARRAY | INLINE, bytes((len(header),)) + header + body)

    if isinstance(answer, ProtocolViolation):
        return
    assert isinstance(answer, Reply)
    array = answer.value
    assert isinstance(array, np.ndarray)
    assert array.dtype.kind in "?biufcmMSU"
    assert array.nbytes <= len(body)


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@pytest.mark.parametrize("kit", KITS)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.text(max_size=40),
    known=st.booleans(),
    data=st.dictionaries(
        st.sampled_from(
            ["mismatches", "pipeline", "file", "column", "operator", "input", "expected", "actual"]
        )
        | st.text(max_size=12),
        plain,
        max_size=6,
    ),
    problems=st.lists(
        st.tuples(st.text(max_size=20), st.text(max_size=40), st.text(max_size=20)), max_size=4
    ),
)
def test_a_failure_naming_any_kit_error_with_any_data_becomes_a_symphony_error(
    kit: str, name: str, known: bool, data: dict[str, Any], problems: list[tuple[str, str, str]]
) -> None:
    __import__(kit)  # its errors registered, as the host imports the kit of the extension's kind
    registered = kit_names(kit)
    symphony = registered[len(name) % len(registered)] if known and registered else name
    failure = Failure(
        id=1, type="x.Y", message="it failed", symphony=symphony, data=data, problems=problems, extension="x"
    )

    error = _remote(failure, "acme.fuzzed", kit)

    assert isinstance(error, SymphonyError)
    assert error.extension == "acme.fuzzed"
    str(error)
    error.problems  # noqa: B018 - reading it must work


def kit_names(kit: str) -> list[str]:
    """The names the kit's errors cross under (its module imported already)."""
    return sorted(name for name, cls in ERRORS_FROM_WORKERS.items() if cls.__module__.startswith(kit))


def test_a_kit_error_reported_with_data_it_cannot_hold_is_a_remote_error_naming_it() -> None:
    """Found by the property above: a worker's ``SchemaMismatch`` whose ``mismatches`` is not a list."""
    __import__("symphony_operators")
    failure = Failure(
        id=1,
        type="x.Y",
        message="it failed",
        symphony="symphony_operators.SchemaMismatch",
        data={"mismatches": True},
    )

    error = _remote(failure, "acme.fuzzed", "symphony_operators")

    assert type(error).__name__ == "RemoteError"
    assert "as symphony_operators.SchemaMismatch, with data the host cannot rebuild it from" in str(error)
    assert error.extension == "acme.fuzzed"
