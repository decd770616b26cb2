"""What a worker sends the host, fuzzed from the host's side: any bytes it writes on its reply pipe and any
failure it reports end in a message or a `SymphonyError`, within the time-out, and nothing else.

A worker is not trusted once it runs an extension's code: it can write anything on its pipe. These
properties feed the host's own reader (`Channel` with the host's bulk codec) with frames hypothesis makes,
from raw bytes to well-formed messages carrying extension values of every type code, and the host's
rebuilding of a reported failure with arbitrary fields. Each example runs in this process, in
milliseconds; ``--fuzz`` runs 100 times as many (the repository's conftest.py).
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symphony_core import SymphonyError
from symphony_core._security._sandbox._bulk import Codec
from symphony_core._security._sandbox._process import _remote
from symphony_core._security._sandbox._protocol import REPLY_FRAME, Channel, Failure, ProtocolViolation

TAGS = ["setup", "hello", "load", "call", "ping", "stop", "config", "event", "reply", "failure", "other"]
LIMIT = 1 << 16
"""Largest frame these properties send: the pipe holds it, so the writer never blocks the reader."""

plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ext = st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=200))
values = st.recursive(
    plain | ext,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
fields = st.dictionaries(
    st.sampled_from(["id", "value", "message", "type", "traceback", "problems", "data", "symphony", "pid"])
    | st.text(max_size=10),
    values,
    max_size=6,
)
messages = st.builds(lambda tag, rest: {**rest, "t": tag}, st.sampled_from(TAGS), fields)


@pytest.fixture
def exchange(tmp_path: Path) -> str:
    folder = tmp_path / "exchange"
    folder.mkdir()
    return str(folder)


def read_back(frame: bytes, exchange: str) -> Any:
    """What the host's reader makes of ``frame`` written on a worker's reply pipe (then closed)."""
    read_fd, write_fd = os.pipe()
    requests_read, requests_write = os.pipe()  # the host's request pipe: only the worker reads it
    os.close(requests_read)
    codec = Codec(side="host", exchange=exchange, inline_limit=1 << 20, peer_pidfd=None, kit=None)
    channel = Channel(read_fd, requests_write, ext_hook=codec.decode, max_frame=REPLY_FRAME)
    try:
        os.write(write_fd, frame)
        os.close(write_fd)
        started = time.monotonic()
        try:
            return channel.receive(timeout=2.0)
        except (ProtocolViolation, TimeoutError) as refused:
            return refused
        finally:
            assert time.monotonic() - started < 2.5, "the reader waited past its time-out"
    finally:
        channel.close()


def framed(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=LIMIT - 4))
def test_any_bytes_in_a_frame_are_a_message_or_refused(exchange: str, payload: bytes) -> None:
    answer = read_back(framed(payload), exchange)

    assert isinstance(answer, (msgspec.Struct, ProtocolViolation, TimeoutError))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(message=messages)
def test_any_message_a_worker_can_encode_is_read_or_refused(exchange: str, message: dict[str, Any]) -> None:
    payload = msgspec.msgpack.encode(message)
    if len(payload) > LIMIT - 4:
        return

    answer = read_back(framed(payload), exchange)

    assert isinstance(answer, (msgspec.Struct, ProtocolViolation))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.integers(0, (1 << 32) - 1), body=st.binary(max_size=256))
def test_a_frame_cut_short_or_oversized_is_refused_not_waited_for(
    exchange: str, header: int, body: bytes
) -> None:
    if header <= len(body):
        header = len(body) + 1  # always longer than what arrives before the pipe closes

    answer = read_back(struct.pack("<I", header) + body, exchange)

    assert isinstance(answer, ProtocolViolation)


def test_a_worker_that_writes_half_a_frame_and_stops_is_timed_out(exchange: str) -> None:
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, os.dup(write_fd), max_frame=REPLY_FRAME)  # the worker keeps its end open
    os.write(write_fd, struct.pack("<I", 100) + b"x" * 10)  # and the pipe stays open
    started = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            channel.receive(timeout=0.3)
    finally:
        os.close(write_fd)
        channel.close()
    assert time.monotonic() - started < 1.0


texts = st.text(max_size=3000) | st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=50)


@given(
    message=texts,
    hint=st.none() | texts,
    kind=texts,
    symphony=st.none()
    | st.sampled_from(["ConfigError", "PermissionDenied", "ExtensionFailed", "SandboxError", "NoSuchName"])
    | st.text(max_size=60),
    builtin=st.none()
    | st.sampled_from(["ValueError", "SystemExit", "object", "print"])
    | st.text(max_size=20),
    errno=st.none() | st.integers(),
    problems=st.lists(st.tuples(values, values, values), max_size=5),
    data=st.dictionaries(st.text(max_size=20) | st.integers(), values, max_size=6),
    traceback=texts,
)
def test_any_failure_a_worker_reports_becomes_a_symphony_error_about_that_extension(
    message: str,
    hint: str | None,
    kind: str,
    symphony: str | None,
    builtin: str | None,
    errno: int | None,
    problems: list[tuple[Any, Any, Any]],
    data: dict[Any, Any],
    traceback: str,
) -> None:
    failure = Failure(
        id=1,
        type=kind,
        message=message,
        hint=hint,
        symphony=symphony,
        builtin=builtin,
        errno=errno,
        problems=problems,
        data=data,
        traceback=traceback,
        extension="someone.else",
    )

    error = _remote(failure, "acme.fuzzed")

    assert isinstance(error, SymphonyError)
    assert error.extension == "acme.fuzzed"  # never the extension the worker names
    text = str(error)
    assert len(text) < 20_000
    assert not any(ord(c) < 32 and c not in "\n\t" for c in text)
