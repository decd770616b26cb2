"""Bulk values from an isolated worker are checked before polars or numpy read them in the host.

The worker side of Symphony always writes uncompressed Arrow IPC, so compressed IPC from a worker is an
attack (a megabyte of zstd can inflate to gigabytes in the host), and so is IPC built to make polars panic.
Here a real worker hands the host bytes the test made with real polars: inline in the frame, or in a sealed
memfd, as its extension's return value. The checker itself (``_arrow.check_ipc``) is also run over what
polars writes, compressed or not, and over truncated and garbled files. Core-only attacks (frames, events,
standard error, memfds that are not, forged errors) are in
``packages/symphony-core/tests/test_worker_output.py``.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest

from symphony_core._model._errors import WorkerCrashed
from symphony_core._security._sandbox._arrow import check_ipc, check_ipc_stream
from symphony_core._security._sandbox._probe import probe
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import DEFAULT_INLINE_LIMIT, WorkerSpec
from symphony_core._security._sandbox._protocol import reply_limit
from symphony_core._store._home import Home

CAPABILITIES = probe()
pytestmark = pytest.mark.skipif(
    not CAPABILITIES.supported, reason="the isolated tier needs Linux; the probe reports nothing enforced"
)

Start = Callable[[], WorkerProcess]

BULK_EXTENSION = r"""
import fcntl, os

import msgspec
import numpy

from symphony_core import Extension
from symphony_core._security._sandbox._bulk import ARRAY, FRAME, INLINE, MEMFD

SEALS = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL


class Bulk(Extension):
    def activate(self, context):
        self.kept = []

    def frame_inline(self, data):
        return msgspec.msgpack.Ext(FRAME | INLINE, data)

    def frame_in_memfd(self, data):
        fd = os.memfd_create("bulk", os.MFD_ALLOW_SEALING)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
        self.kept.append(fd)
        return msgspec.msgpack.Ext(FRAME | MEMFD, str(fd).encode())

    def array_inline(self, data):
        return msgspec.msgpack.Ext(ARRAY | INLINE, data)

    def arrays(self, count, size):
        return [numpy.full(size, n, dtype=numpy.uint8) for n in range(count)]
"""


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Start]:
    """Start workers of the bulk test extension (one per test: a refused value kills its worker)."""
    code = tmp_path_factory.mktemp("code")
    (code / "acme_bulk").mkdir()
    (code / "acme_bulk" / "__init__.py").write_text(BULK_EXTENSION, encoding="utf-8")
    home = tmp_path_factory.mktemp("home")
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        spec = WorkerSpec(
            extension="acme.bulk", entry_point="acme_bulk:Bulk", home=Home(home), path=(str(code),)
        )
        started.append(WorkerProcess.start(spec, timeout=120))
        return started[-1]

    yield start
    for one in started:
        one.kill()


def ipc(frame: pl.DataFrame, compression: Any = "uncompressed") -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression=compression)
    return buffer.getvalue()


def ipc_stream(frame: pl.DataFrame, compression: Any = "uncompressed") -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer, compression=compression)
    return buffer.getvalue()


FORMS = {  # how each form is written, checked and read; inline frames travel as streams, memfds as files
    "file": (ipc, check_ipc, pl.read_ipc),
    "stream": (ipc_stream, check_ipc_stream, pl.read_ipc_stream),
}
WAYS = {"frame_inline": ipc_stream, "frame_in_memfd": ipc}


FRAMES = {
    "numbers and text": pl.DataFrame({"a": [1, 2, 3], "s": ["x", "yy", "z" * 40]}),
    "categories and enums": pl.DataFrame(
        {
            "c": pl.Series(["u", "v", "u"], dtype=pl.Categorical),
            "e": pl.Series(["a", "b", "a"], dtype=pl.Enum(["a", "b"])),
        }
    ),
    "nested": pl.DataFrame({"l": [[1, 2], [3], []], "st": [{"x": 1}, {"x": 2}, {"x": None}]}),
    "nulls": pl.DataFrame({"n": [None, None, None]}),
    "no rows": pl.DataFrame({"a": []}, schema={"a": pl.Int64}),
    "no columns": pl.DataFrame(),
    "several batches": pl.concat([pl.DataFrame({"a": [1]}), pl.DataFrame({"a": [2]})], rechunk=False),
}


# The check itself


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", FRAMES)
def test_what_polars_writes_uncompressed_passes_the_check(name: str, form: str) -> None:
    write, check, read = FORMS[form]
    data = write(FRAMES[name])

    check(data)

    assert read(data).equals(FRAMES[name])


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_what_polars_writes_compressed_is_refused(compression: str, form: str) -> None:
    write, check, _ = FORMS[form]
    with pytest.raises(ValueError, match="compressed Arrow IPC data is refused"):
        check(write(FRAMES["numbers and text"], compression))


@pytest.mark.parametrize("form", FORMS)
def test_types_nested_deeper_than_polars_should_walk_are_refused(form: str) -> None:
    write, check, _ = FORMS[form]
    deep = pl.Series("deep", [1])
    for _ in range(65):
        deep = deep.implode()

    with pytest.raises(ValueError, match="nested more than 64 deep"):
        check(write(deep.to_frame()))


@pytest.mark.parametrize("form", FORMS)
def test_every_truncation_is_refused(form: str) -> None:
    write, check, _ = FORMS[form]
    data = write(FRAMES["categories and enums"])

    for end in range(len(data)):
        with pytest.raises(ValueError, match="Arrow IPC"):
            check(data[:end])


def test_a_stream_with_bytes_after_its_end_or_a_batch_before_its_schema_is_refused() -> None:
    data = ipc_stream(FRAMES["numbers and text"])
    with pytest.raises(ValueError, match="bytes after its end-of-stream marker"):
        check_ipc_stream(data + data)

    schema_length = 8 + int.from_bytes(data[4:8], "little")  # the schema message: marker, size, flatbuffer
    with pytest.raises(ValueError, match="starts with a message of type 3"):
        check_ipc_stream(data[schema_length:])


@pytest.mark.parametrize("form", FORMS)
def test_garbled_bytes_are_refused_with_a_value_error_or_pass_as_well_formed(form: str) -> None:
    write, check, _ = FORMS[form]
    data = write(pl.concat([FRAMES["numbers and text"]] * 2, rechunk=False))
    rng = random.Random(20240601)
    refused = 0

    for _ in range(3000):
        garbled = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(garbled) - 4)
            garbled[at : at + rng.choice((1, 4))] = rng.randbytes(rng.choice((1, 4)))
        try:
            check(bytes(garbled))
        except ValueError:
            refused += 1

    assert refused > 1000, "most damage is seen"


# From a worker


@pytest.mark.parametrize("way", ["frame_inline", "frame_in_memfd"])
@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_a_compressed_frame_from_a_worker_is_refused_before_polars_inflates_it(
    worker: Start, way: str, compression: str
) -> None:
    bomb = WAYS[way](pl.DataFrame({"z": np.zeros(20_000_000, dtype=np.uint8)}), compression)
    assert len(bomb) < 200_000 < 20_000_000

    with pytest.raises(WorkerCrashed, match="compressed Arrow IPC data is refused"):
        worker().call(way, (bomb,))


@pytest.mark.parametrize("way", ["frame_inline", "frame_in_memfd"])
def test_an_uncompressed_frame_from_a_worker_is_read(worker: Start, way: str) -> None:
    frame = FRAMES["categories and enums"]

    assert worker().call(way, (WAYS[way](frame),)).equals(frame)


@pytest.mark.parametrize("way", ["frame_inline", "frame_in_memfd"])
def test_a_frame_that_makes_polars_panic_is_a_crashed_worker_not_a_panic_in_the_host(
    worker: Start, way: str
) -> None:
    enum = WAYS[way](pl.DataFrame({"e": pl.Series(["a"], dtype=pl.Enum(["a", "b"]))}))
    broken = enum.replace(b"1;a1;b", b"x;a1;b")  # the enum's categories, as polars stores them, misnumbered
    (check_ipc_stream if way == "frame_inline" else check_ipc)(broken)

    with pytest.raises(WorkerCrashed, match="PanicException"):
        worker().call(way, (broken,))


def test_an_inline_array_of_python_objects_from_a_worker_is_refused(worker: Start) -> None:
    header = b"|O;2"
    with pytest.raises(WorkerCrashed, match="Python objects"):
        worker().call("array_inline", (bytes((len(header),)) + header + bytes(16),))


def test_a_reply_of_many_inline_sized_arrays_still_fits_in_one_frame(worker: Start) -> None:
    size = DEFAULT_INLINE_LIMIT - (64 << 10)  # each one under the limit: inline on its own
    count = reply_limit(DEFAULT_INLINE_LIMIT) // size + 2  # together over a whole reply frame

    arrays = worker().call("arrays", (count, size), timeout=120)

    assert [int(array[0]) for array in arrays] == list(range(count))
    assert all(array.shape == (size,) for array in arrays)


@pytest.mark.parametrize("way", ["frame_inline", "frame_in_memfd"])
def test_a_truncated_frame_from_a_worker_is_refused_before_polars_reads_it(worker: Start, way: str) -> None:
    truncated = WAYS[way](FRAMES["nested"])[:-20]

    with pytest.raises(WorkerCrashed, match=r"(not an|malformed) Arrow IPC (file|stream)"):
        worker().call(way, (truncated,))


SHARED_FRAME = r"""
import sys, tempfile, threading, time

import numpy as np
import polars as pl

from symphony_core._security._sandbox._bulk import Codec

frame = pl.DataFrame({"x": np.arange(2_000, dtype=np.int64)})  # small: it crosses inline, as a stream
codec = Codec(side="host", exchange=tempfile.mkdtemp(), inline_limit=8 << 20)
until = time.monotonic() + 3.0


def send():  # what the host does with a frame passed to an isolated operator
    while time.monotonic() < until:
        codec.encode(frame)


def read():  # what the caller's other threads do with the same frame meanwhile
    while time.monotonic() < until:
        assert frame.height == 2_000


threads = [threading.Thread(target=work) for work in (send, send, read, read)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("done")
"""


def test_a_frame_sent_from_several_threads_while_others_read_it_never_deadlocks_the_host() -> None:
    # polars writes an IPC stream holding the frame's own lock with the GIL released; a thread reading
    # the same frame meanwhile waited for that lock holding the GIL, and the whole process stopped.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", SHARED_FRAME], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "done"
