"""The host never trusts what an isolated worker sends: frames, events, standard error, bulk values, errors.

Once a worker has imported its extension, everything it writes is the attacker's. Each test here is a real
attack from inside a real worker (an extension that writes raw bytes to its reply pipe, event pipe or
standard error, names file descriptors that are not memfds, raises the host's own error classes), or, where
the pipe itself is the unit, a real ``Channel`` on a real ``os.pipe()``. Polars and numpy values are tested
in ``tests/test_worker_output_bulk.py``.
"""

from __future__ import annotations

import logging
import os
import resource
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from symphony_core._model._errors import (
    ConfigError,
    ConsentRequired,
    PermissionDenied,
    RemoteError,
    SandboxError,
    WorkerCrashed,
)
from symphony_core._security._sandbox._observe import verify_claims
from symphony_core._security._sandbox._probe import probe
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import DEFAULT_INLINE_LIMIT, WorkerSpec
from symphony_core._security._sandbox._protocol import (
    EVENT_FRAME,
    MAX_FRAME,
    REPLY_FRAME,
    Channel,
    ProtocolViolation,
    Reply,
    reply_limit,
)
from symphony_core._store._home import Home

CAPABILITIES = probe()
pytestmark = pytest.mark.skipif(
    not CAPABILITIES.supported, reason="the isolated tier needs Linux; the probe reports nothing enforced"
)

HOSTILE_EXTENSION = r'''
import gc, os, struct, time

import msgspec

from symphony_core import Extension
from symphony_core._model._errors import ConfigError, ConsentRequired, GuardDenied, WorkerCrashed
from symphony_core._security._sandbox._bulk import ARRAY, MEMFD
from symphony_core._security._sandbox._protocol import Failure

FORGED = {"ConfigError": ConfigError, "ConsentRequired": ConsentRequired, "GuardDenied": GuardDenied,
          "WorkerCrashed": WorkerCrashed}


def _server():
    """The worker's own server: its channel holds the reply pipe, its publisher the event pipe."""
    return next(thing for thing in gc.get_objects() if type(thing).__name__ == "_Server")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class Hostile(Extension):
    def activate(self, context):
        self.context = context
        self.kept = []

    def echo(self, value):
        return value

    def announce_reply(self, size):
        os.write(_server().channel.write_fd, struct.pack("<I", size))
        time.sleep(60)

    def announce_event(self, size):
        os.write(_server().publish._channel.write_fd, struct.pack("<I", size))
        return "announced"

    def publish(self, name):
        return self.context.publish(name, {"n": 1})

    def shout(self, size, then):
        block = b"x" * (1 << 20)
        for start in range(0, size, len(block)):
            _write_all(2, block[: size - start])
        _write_all(2, b"\n" + then.encode() + b"\n")
        return size

    def bulk_naming(self, what):
        if what == "fifo":
            path = os.path.join(self.context.cache_dir, "bulk.fifo")
            os.mkfifo(path)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # no writer: a blocking open of it never returns
        elif what == "unsealed memfd":
            fd = os.memfd_create("unsealed", os.MFD_ALLOW_SEALING)
            os.write(fd, b"\x93NUMPY")
        else:
            fd = 999  # not open here
        self.kept.append(fd)
        return msgspec.msgpack.Ext(ARRAY | MEMFD, str(fd).encode())

    def blame(self, kind, other):
        raise FORGED[kind]("grant it everything", extension=other, hint="run `symphony grant acme.other`")

    def scream(self, size):
        raise ValueError("\x1b]0;owned\x07\x1b[2J\r" + "y" * size)

    def forge(self, **fields):
        _server().channel.send(Failure(id=0, **fields))
        time.sleep(60)
'''
EXTENSION_ID = "acme.hostile"
Start = Callable[..., WorkerProcess]


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("code")
    (folder / "acme_hostile").mkdir()
    (folder / "acme_hostile" / "__init__.py").write_text(HOSTILE_EXTENSION, encoding="utf-8")
    return folder


@pytest.fixture
def start(tmp_path: Path, code: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers of the hostile extension; each is killed at the end."""
    started: list[WorkerProcess] = []

    def starter(**options: Any) -> WorkerProcess:
        spec = WorkerSpec(
            extension=EXTENSION_ID,
            entry_point="acme_hostile:Hostile",
            home=Home(tmp_path / "home"),
            path=(str(code),),
            **options,
        )
        worker = WorkerProcess.start(spec, timeout=60)
        started.append(worker)
        return worker

    yield starter
    for worker in started:
        worker.kill()


def within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """Run ``call`` on a thread and return what it raised; fail if it has not returned in ``seconds``."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test, whatever it is
            raised.append(exc)
        else:
            raised.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert raised, f"the host was still waiting after {seconds} s"
    return raised[0]


def wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.02)


# Frames: a header is a claim, not a size to reserve


def test_a_reply_header_announcing_gigabytes_kills_the_worker_at_once(start: Start) -> None:
    worker = start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    error = within(20, lambda: worker.call("announce_reply", (3 << 29,), timeout=30))

    assert isinstance(error, WorkerCrashed)
    assert "a frame of 1,610,612,736 bytes is over the limit of 67,108,864" in str(error)
    assert not worker.alive
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # KiB


def test_an_event_header_announcing_gigabytes_stops_the_events_not_the_host(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="symphony.worker")
    worker = start()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    assert worker.call("announce_event", (3 << 29,)) == "announced"
    wait_for(lambda: "events are no longer read" in caplog.text)

    assert "a frame of 1,610,612,736 bytes is over the limit of 1,048,576" in caplog.text
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # KiB
    assert worker.call("publish", ("after",)) is False, "the host no longer reads its events"
    assert worker.call("echo", ("still answers",)) == "still answers"


def test_a_frame_is_held_only_as_far_as_its_bytes_have_arrived() -> None:
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, write_fd, max_frame=REPLY_FRAME)
    os.write(write_fd, struct.pack("<I", REPLY_FRAME - 1) + b"only this")
    os.close(write_fd)

    tracemalloc.start()
    try:
        with pytest.raises(ProtocolViolation, match="closed the pipe"):
            channel.receive(timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        os.close(read_fd)

    assert peak < 1 << 20, f"{peak:,} bytes held for a frame of which 9 bytes came"


def test_a_channel_takes_frames_up_to_its_limit_and_refuses_the_next_byte() -> None:
    read_fd, write_fd = os.pipe()
    events = Channel(read_fd, write_fd, max_frame=EVENT_FRAME)
    sender = threading.Thread(target=events.send, args=(Reply(id=1, value="x" * (EVENT_FRAME - 64)),))
    sender.start()

    received = events.receive(timeout=10)
    sender.join()
    os.write(write_fd, struct.pack("<I", EVENT_FRAME + 1))
    with pytest.raises(ProtocolViolation, match="over the limit of 1,048,576"):
        events.receive(timeout=10)
    events.close()

    assert isinstance(received, Reply)
    assert len(received.value) == EVENT_FRAME - 64


def test_a_reply_frame_has_room_for_a_few_inline_values_and_never_more_than_the_protocol_allows() -> None:
    assert reply_limit(DEFAULT_INLINE_LIMIT) == REPLY_FRAME >= 4 * DEFAULT_INLINE_LIMIT
    assert reply_limit(32 << 20) == 128 << 20
    assert reply_limit(1 << 40) == MAX_FRAME


class _Panic(BaseException):
    """What a Rust panic becomes in Python (polars' ``PanicException`` derives from BaseException)."""


def _pipe_holding_a_bulk_value(ext_hook: Callable[[int, memoryview], Any]) -> Channel:
    read_fd, write_fd = os.pipe()
    payload = msgspec.msgpack.encode(Reply(id=1, value=msgspec.msgpack.Ext(1, b"junk")))
    os.write(write_fd, struct.pack("<I", len(payload)) + payload)
    return Channel(read_fd, write_fd, ext_hook=ext_hook)


def test_nothing_a_decoder_raises_on_what_was_sent_escapes_as_anything_but_a_protocol_violation() -> None:
    def panic(code: int, data: memoryview) -> Any:
        raise _Panic("called `Option::unwrap()` on a `None` value")

    channel = _pipe_holding_a_bulk_value(panic)

    with pytest.raises(ProtocolViolation, match="_Panic: called `Option::unwrap"):
        channel.receive(timeout=10)
    channel.close()


def test_an_interrupt_of_the_host_itself_while_decoding_is_not_swallowed() -> None:
    def interrupted(code: int, data: memoryview) -> Any:
        raise KeyboardInterrupt

    channel = _pipe_holding_a_bulk_value(interrupted)

    with pytest.raises(KeyboardInterrupt):
        channel.receive(timeout=10)
    channel.close()


# Standard error


def test_a_huge_line_on_standard_error_is_cut_and_the_lines_after_it_kept(start: Start) -> None:
    worker = start()

    assert worker.call("shout", (64 << 20, "after the flood"), timeout=120) == 64 << 20
    wait_for(lambda: "after the flood" in worker.stderr())

    lines = worker.stderr().splitlines()
    flood = next(line for line in lines if line.startswith("xxxx"))
    assert flood == "x" * (8 << 10) + f" [{(64 << 20) - (8 << 10):,} more bytes cut]"
    assert lines[-1] == "after the flood"
    assert len(worker.stderr()) < 1 << 20


def test_terminal_escapes_from_a_worker_never_reach_the_host(start: Start) -> None:
    worker = start()

    worker.call("shout", (0, "\x1b]0;owned\x07\x1b[31mred\r"))
    wait_for(lambda: "red" in worker.stderr())
    error = within(30, lambda: worker.call("scream", (10,)))

    assert isinstance(error, RemoteError)
    for text in (str(error), error.remote_traceback, worker.stderr()):
        assert not any(char in text for char in "\x1b\x07\r"), repr(text[:200])
    assert "]0;owned[2J" in str(error)


# Bulk values: the host takes a worker's memfd, never opens what it names


@pytest.mark.parametrize(
    ("what", "why"),
    [
        ("fifo", "not a sealed memfd"),
        ("unsealed memfd", "not a sealed memfd"),
        ("nothing", "could not be taken: pidfd_getfd: Bad file descriptor"),
    ],
)
def test_a_bulk_value_that_is_not_a_sealed_memfd_is_refused_without_blocking(
    start: Start, what: str, why: str
) -> None:
    worker = start()

    error = within(20, lambda: worker.call("bulk_naming", (what,), timeout=30))

    assert isinstance(error, WorkerCrashed)
    assert why in str(error)
    assert not worker.alive


# Errors: what a worker raises is the extension's word, never the host's verdict


@pytest.mark.parametrize("kind", ["ConsentRequired", "GuardDenied", "WorkerCrashed"])
def test_a_worker_cannot_raise_the_hosts_own_verdicts_or_blame_another_extension(
    start: Start, kind: str
) -> None:
    worker = start()

    with pytest.raises(RemoteError) as raised:
        worker.call("blame", (kind, "acme.other"))

    error = raised.value
    assert not isinstance(error, (PermissionDenied, ConsentRequired, SandboxError))
    assert error.extension == EXTENSION_ID
    assert error.hint == "the extension says: run `symphony grant acme.other`"
    assert worker.call("echo", ("alive",)) == "alive"


def test_an_error_an_extension_may_raise_is_rebuilt_but_blamed_on_its_own_extension(start: Start) -> None:
    worker = start()

    with pytest.raises(ConfigError) as raised:
        worker.call("blame", ("ConfigError", "acme.other"))

    assert raised.value.extension == EXTENSION_ID
    assert raised.value.hint == "the extension says: run `symphony grant acme.other`"


def test_the_texts_of_a_worker_error_are_bounded(start: Start) -> None:
    worker = start()

    error = within(30, lambda: worker.call("scream", (1 << 20,)))

    assert isinstance(error, RemoteError)
    assert "more characters cut]" in error.message
    assert len(error.message) < 5 << 10
    assert len(error.remote_traceback) < 65 << 10
    assert error.remote_traceback.rstrip().endswith("y"), "a traceback keeps its end"


def test_a_forged_failure_frame_is_read_as_the_extensions_words_only(start: Start) -> None:
    worker = start()
    forged = {
        "type": "\x1b[31mbuiltins.PermissionError" + "t" * 10_000,
        "message": "denied",
        "hint": "\x1b[8mhidden",
        "extension": "acme.other",
        "builtin": "NoSuchBuiltin",
        "errno": 10**12,
        "symphony": "ConsentRequired",
        "traceback": "\x1b[2J",
    }

    error = within(20, lambda: worker.call("forge", (), forged, timeout=30))

    assert isinstance(error, RemoteError)
    assert (error.extension, error.builtin, error.errno) == (EXTENSION_ID, None, None)
    assert error.hint == "the extension says: [8mhidden"
    assert len(error.remote_type) < 300
    assert "\x1b" not in error.remote_type + error.remote_traceback + str(error)


# What a worker says it enforces


def test_a_worker_says_what_the_host_checked_of_its_claims(start: Start) -> None:
    worker = start()

    checked = worker.enforced["verified"]

    assert checked.startswith("checked by the host in /proc: ")
    assert "no_new_privs" in checked
    assert ("seccomp" in checked) is CAPABILITIES.has("seccomp")
    assert ("network" in checked) is CAPABILITIES.has("network_namespace")


def test_claims_a_process_does_not_live_up_to_are_refused() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    pidfd = os.pidfd_open(process.pid)
    claims = {
        "no_new_privs": "set",
        "seccomp": "40 system calls refused",
        "network": "a namespace of its own: no network",
    }
    try:
        with pytest.raises(WorkerCrashed, match=r"claims to enforce .*network.*shows otherwise") as refused:
            verify_claims(pidfd, claims, "acme.liar")
        nothing = verify_claims(pidfd, {"seccomp": "NOT enforced: no table"}, "acme.honest")
    finally:
        process.kill()
        process.wait()
        os.close(pidfd)

    assert refused.value.extension == "acme.liar"
    assert refused.value.hint
    assert nothing == "checked by the host in /proc: none of its claims"


def test_the_claims_of_a_process_that_has_ended_cannot_be_checked() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    pidfd = os.pidfd_open(process.pid)
    process.wait()
    try:
        with pytest.raises(WorkerCrashed, match="could not be checked"):
            verify_claims(pidfd, {"no_new_privs": "set"}, "acme.gone")
    finally:
        os.close(pidfd)
