"""The host/worker protocol: versioned messages, msgpack-encoded, in length-prefixed frames over pipes.

A frame is a 4-byte little-endian length and that many bytes of msgpack. The host speaks first with
``Setup`` (protocol version, the restrictions to apply, where bulk data is exchanged); the worker applies
the restrictions and answers ``Hello`` (its protocol version and what it enforced). Every later request
carries an id, and its answer (``Reply`` or ``Failure``) carries the same id. Bulk values (arrays, frames)
travel as msgpack extension values that point at shared memory (see ``_bulk``), not through the pipe.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import struct
import time
from typing import Any

import msgspec

PROTOCOL = 5
"""Bumped on any change to the messages below; the worker refuses a host that speaks another version."""
MAX_FRAME = 1 << 31
"""Largest frame either side ever accepts (bulk data over this size must use shared memory)."""
REPLY_FRAME = 64 << 20
"""Largest frame the host accepts on a worker's reply pipe, unless its inline limit asks for more."""
EVENT_FRAME = 1 << 20
"""Largest frame the host accepts on a worker's event pipe (events carry small JSON-ready data)."""
_HEADER = struct.Struct("<I")
_CHUNK = 1 << 16


def reply_limit(inline_limit: int) -> int:
    """Largest reply frame the host accepts from a worker whose bulk values under ``inline_limit`` bytes
    travel inside the frame: room for a few of them, at least ``REPLY_FRAME``, at most ``MAX_FRAME``."""
    return min(MAX_FRAME, max(REPLY_FRAME, 4 * inline_limit))


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits of one worker (and every process it starts)."""

    memory: int | None = 2 << 30
    """Bytes of memory (cgroup ``memory.max``); None for no limit. Going over it kills the worker."""
    tasks: int | None = 512
    """Processes and threads (cgroup ``pids.max``; RLIMIT_NPROC too when not root); None for no limit."""
    cpu_seconds: int | None = 3600
    """CPU time over the worker's whole life (RLIMIT_CPU); going over it kills the worker."""
    open_files: int = 1024
    """Open file descriptors (RLIMIT_NOFILE)."""
    file_size: int | None = 1 << 30
    """Bytes any one file the worker writes may hold (RLIMIT_FSIZE), shared-memory values it returns
    included; a write past it fails with EFBIG. None for no limit."""
    disk: int | None = 2 << 30
    """Bytes the extension's own folders, ``{data}`` and ``{cache}`` together, may take on disk; the host
    counts them (``_quota``) and kills the worker that goes over. None for no limit."""
    disk_entries: int | None = 100_000
    """Files, folders and links in ``{data}`` and ``{cache}`` together, counted with ``disk``."""


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """What the kernel lets a worker do, resolved by the host from the extension's grant.

    Paths are absolute with symlinks resolved (Landlock rules hold for the file or folder they name and
    everything beneath it). The worker adds its own interpreter's folders to ``read`` before restricting.
    """

    read: list[str] = []
    write: list[str] = []
    execute: list[str] = []
    devices: list[str] = []
    exchange: str = ""
    """The folder where host and worker exchange bulk data; the worker may create plain files there."""
    connect_ports: list[int] | None = []
    """TCP ports the worker may connect to; None for every port."""
    bind_ports: list[int] | None = []
    """TCP ports the worker may bind (listen on); None for every port."""
    network: bool = False
    """Keep the host's network; without it the worker gets a network namespace of its own (no network)."""
    limits: Limits = Limits()
    bytecode: str = ""
    """The host-written bytecode cache the worker loads what it imports once restricted from, read-only
    to it (``_bytecode``); its answers name the modules it imported that the cache lacks."""
    pycache: str = ""
    """Where a worker of a managed environment caches bytecode of what it imports once restricted (in its
    own cache folder: it can only ever poison the bytecode later workers of its own extension load, after
    they too are restricted). Unused when ``bytecode`` is set."""
    import_path: list[str] = []
    """Where the worker imports installed distributions from (``site-packages``, the host's ``path``): the
    worker runs without the ``site`` module, so no ``.pth`` file adds to it."""
    packages: dict[str, str] = {}
    """Top-level name: folder (or module file) of the packages it needs from outside ``import_path``."""
    notes: list[str] = []
    """What the kernel enforces more broadly than the grant says (globs widened to their folder)."""
    only_import_path: bool = False
    """Import from ``import_path`` only once restricted: the folders the worker booted from (the host's
    ``site-packages``, which hold the core) leave its path. For an extension in a managed environment."""


class _Message(msgspec.Struct, tag_field="t", kw_only=True):
    """Every message names its kind in field ``t``."""


class Setup(_Message, tag="setup"):
    protocol: int
    host_pid: int
    profile: Profile
    inline_limit: int
    """Bulk values smaller than this many bytes travel inside the frame instead of shared memory."""


class Hello(_Message, tag="hello"):
    protocol: int
    pid: int
    enforced: dict[str, str]
    skipped: list[str] = []


class Load(_Message, tag="load"):
    """Import the extension, resolve its config, create it and run ``activate``."""

    id: int
    extension: str
    version: str
    entry_point: str
    manifest: dict[str, Any]
    data_dir: str
    cache_dir: str
    path: list[str] = []
    config_overrides: dict[str, Any] = {}
    config_environ: dict[str, str] = {}
    home: str = ""


class Call(_Message, tag="call"):
    id: int
    method: str
    args: list[Any] = []
    kwargs: dict[str, Any] = {}


class Ping(_Message, tag="ping"):
    id: int


class Stop(_Message, tag="stop"):
    """Run the extension's ``deactivate`` and exit."""

    id: int


class ConfigQuery(_Message, tag="config"):
    """Import the extension's config model here, in the worker, and answer with its JSON Schema
    (``schema``) or with its config resolved from the layers, secrets masked: the host never imports it."""

    id: int
    extension: str
    reference: str
    """The manifest's ``config``: ``package.module:Model``."""
    schema: bool = False
    path: list[str] = []
    home: str = ""
    overrides: dict[str, Any] = {}
    environ: dict[str, str] = {}


class Event(_Message, tag="event"):
    """Something the extension published (``Context.publish``), sent by the worker on its event pipe."""

    name: str
    data: Any = None


class Reply(_Message, tag="reply"):
    id: int
    value: Any = None
    uncached: list[str] = []
    """Source files of modules the worker imported since its last answer whose bytecode the shared cache
    lacks: the host compiles them there (``_bytecode``), judging each path itself."""
    events: int = 0
    """Events the worker had sent on its event pipe when it answered: the host hands its subscribers
    that many before the call returns, as ``Context.publish`` does in one process (waiting a bounded
    time: the worker may lie)."""


class Failure(_Message, tag="failure"):
    """An exception raised while serving a request, as data: never a pickled object."""

    id: int
    type: str
    """Qualified name of the exception's class, e.g. ``builtins.PermissionError``."""
    message: str
    """``str(exc)``, or a Symphony error's ``summary`` (its problems come apart)."""
    hint: str | None = None
    errno: int | None = None
    extension: str | None = None
    traceback: str = ""
    builtin: str | None = None
    """The nearest built-in exception class the type derives from (``PermissionError``...)."""
    symphony: str | None = None
    """The registered name of the nearest Symphony error class it derives from that may cross
    (``symphony_core.ConfigError``...; see ``_crossing``)."""
    problems: list[tuple[str, str, str]] = []
    """A Symphony error's problems: ``(location, message, code)`` each."""
    data: dict[str, Any] = {}
    """A Symphony error's ``data_fields``, as plain data."""
    events: int = 0
    """As `Reply.events`."""


Message = Setup | Hello | Load | Call | Ping | Stop | ConfigQuery | Event | Reply | Failure


def prepare() -> None:
    """Have msgspec read the messages' types now, as the first channel of a process would."""
    msgspec.msgpack.Decoder(Message)


class ProtocolViolation(Exception):
    """The other side broke the protocol: a bad frame, an unknown message, or the pipe closed early."""


class Channel:
    """Frames in and out over two pipe ends; one reader and one writer at a time (the caller locks)."""

    def __init__(
        self,
        read_fd: int,
        write_fd: int,
        *,
        enc_hook: Any = None,
        ext_hook: Any = None,
        max_frame: int = MAX_FRAME,
        nonblocking: bool = False,
    ) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.max_frame = max_frame
        self._encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
        self._decoder = msgspec.msgpack.Decoder(Message, ext_hook=ext_hook)
        self._buffer = bytearray()
        self._poll = select.poll()
        self._poll.register(read_fd, select.POLLIN)
        self._nonblocking = nonblocking
        """The host's ends never block: a request is written and its answer read within its time-out
        (a worker that stops reading cannot hold a write), and `exchange` serves an event loop."""
        if nonblocking:
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
            self._write_poll = select.poll()
            self._write_poll.register(write_fd, select.POLLOUT)

    def send(self, message: Message, timeout: float | None = None) -> None:
        """Write one message as a frame, until the pipe took all of it (``TimeoutError`` after ``timeout``
        seconds on a non-blocking channel)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        parts = self._frame(message)
        while parts := self._write_some(parts):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._write_poll.poll(None if left is None else left * 1000):
                raise TimeoutError("the other side took no more of the request in time")

    def receive(self, timeout: float | None = None) -> Message:
        """Read one message; ``TimeoutError`` after ``timeout`` seconds, ``ProtocolViolation`` on EOF, junk
        or a frame over ``max_frame``. Nothing the other side sends raises anything else."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._nonblocking and deadline is None:
            deadline = math.inf
        while len(self._buffer) < _HEADER.size:
            self._buffer += self._read(deadline, _CHUNK)
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > self.max_frame:
            raise ProtocolViolation(f"a frame of {size:,} bytes is over the limit of {self.max_frame:,}")
        end = _HEADER.size + size
        frame: bytes | bytearray
        if len(self._buffer) >= end:
            frame, self._buffer = self._buffer, self._buffer[end:]
        else:  # a big frame: held as it arrives, never sized by its header (a header alone costs nothing)
            parts, have = [bytes(self._buffer)], len(self._buffer)
            self._buffer = bytearray()
            while have < end:
                parts.append(self._read(deadline, min(end - have, _CHUNK)))
                have += len(parts[-1])
            frame = b"".join(parts)
            del parts  # decoded from one copy, not two
        return self._decode(frame, end)

    async def exchange(self, message: Message, timeout: float | None, *, poll: float = 0.0) -> Message:
        """Send ``message`` and read the answer on the running event loop, without blocking it: the
        pipes are watched by the loop, which runs no other thread on the way (a non-blocking channel
        only). ``TimeoutError`` when the whole exchange takes over ``timeout`` seconds; otherwise as
        `receive`. The caller owns the channel until this returns.

        For the first ``poll`` seconds the loop looks for the answer on each of its turns instead of
        sleeping until the pipe wakes it: it keeps running its other callbacks meanwhile, and spends
        CPU the machine has to spare to save the answer a wake-up."""
        import asyncio

        assert self._nonblocking, "an event loop needs the channel's non-blocking ends"
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Message] = loop.create_future()
        parts = self._write_some(self._frame(message))
        reading, writing = self.read_fd, self.write_fd

        def fail(error: BaseException) -> None:
            if not done.done():
                done.set_exception(error)

        def on_writable() -> None:
            nonlocal parts
            try:
                parts = self._write_some(parts)
            except ProtocolViolation as exc:
                fail(exc)
                return
            if not parts:
                loop.remove_writer(writing)

        def on_readable() -> None:
            try:
                chunk = os.read(reading, _CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                fail(ProtocolViolation(f"the pipe could not be read: {exc.strerror}"))
                return
            if not chunk:
                fail(ProtocolViolation("the other side closed the pipe"))
                return
            self._buffer += chunk
            try:
                answer = self._buffered()
            except ProtocolViolation as exc:
                fail(exc)
                return
            if answer is not None and not done.done():
                done.set_result(answer)

        polling: asyncio.Handle | None = None
        poll_until = loop.time() + poll

        def look() -> None:
            nonlocal polling
            polling = None
            on_readable()
            if done.done():
                return
            if loop.time() < poll_until:
                polling = loop.call_soon(look)
            else:  # the answer takes longer: sleep until the pipe wakes the loop
                loop.add_reader(reading, on_readable)

        timer = None if timeout is None else loop.call_later(timeout, fail, TimeoutError("no answer in time"))
        if parts:
            loop.add_writer(writing, on_writable)
        if poll > 0 and not parts:
            polling = loop.call_soon(look)
        else:
            loop.add_reader(reading, on_readable)
        try:
            answer = self._buffered()  # what was read already: nothing, when the other side keeps turns
            return answer if answer is not None else await done
        finally:
            loop.remove_reader(reading)
            if parts:
                loop.remove_writer(writing)
            if timer is not None:
                timer.cancel()
            if polling is not None:
                polling.cancel()

    def _buffered(self) -> Message | None:
        """The message whose whole frame is in the buffer, taken out of it; None while it is not."""
        buffer = self._buffer
        if len(buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(buffer)
        if size > self.max_frame:
            raise ProtocolViolation(f"a frame of {size:,} bytes is over the limit of {self.max_frame:,}")
        end = _HEADER.size + size
        if len(buffer) < end:
            return None
        frame, self._buffer = buffer, buffer[end:]
        return self._decode(frame, end)

    def _decode(self, frame: bytes | bytearray, end: int) -> Message:
        try:
            with memoryview(frame) as view:
                message: Message = self._decoder.decode(view[_HEADER.size : end])
        except (KeyboardInterrupt, SystemExit):
            raise  # this process's own: never from what was sent
        except BaseException as exc:  # noqa: BLE001 - junk, a refused bulk value, a panic in polars: never trusted
            raise ProtocolViolation(f"an unreadable message: {type(exc).__name__}: {exc}") from None
        return message

    def _frame(self, message: Message) -> list[memoryview]:
        payload = self._encoder.encode(message)
        return [memoryview(_HEADER.pack(len(payload))), memoryview(payload)]

    def _write_some(self, parts: list[memoryview]) -> list[memoryview]:
        """Write what the pipe takes of ``parts`` now (all of it, on a blocking channel); return the rest."""
        while parts:
            try:
                written = os.writev(self.write_fd, parts)
            except BlockingIOError:
                return parts
            except BrokenPipeError:
                raise ProtocolViolation("the other side closed the pipe") from None
            while parts and written >= len(parts[0]):
                written -= len(parts[0])
                parts.pop(0)
            if parts and written:
                parts[0] = parts[0][written:]
        return parts

    def _read(self, deadline: float | None, size: int) -> bytes:
        self._wait(deadline)
        try:
            chunk = os.read(self.read_fd, size)
        except BlockingIOError:  # woken for nothing: wait again
            return b""
        if not chunk:
            raise ProtocolViolation("the other side closed the pipe")
        return chunk

    def _wait(self, deadline: float | None) -> None:
        if deadline is None:
            return
        left = None if deadline == math.inf else max(0.0, deadline - time.monotonic()) * 1000
        if not self._poll.poll(left):
            raise TimeoutError("no answer in time")

    def close(self) -> None:
        for fd in {self.read_fd, self.write_fd}:
            with contextlib.suppress(OSError):
                os.close(fd)
