"""A worker cannot fill the disk: ``RLIMIT_FSIZE`` on each file, and a quota on its extension's folders
that the host counts and enforces.

Real workers of a small extension written to a temporary folder; real files on this machine's disk.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from symphony_core._model._errors import ConfigError, RemoteError, SandboxError, WorkerCrashed
from symphony_core._security._grants import read_policy
from symphony_core._security._sandbox import _quota
from symphony_core._security._sandbox._process import WorkerProcess
from symphony_core._security._sandbox._profile import WorkerSpec
from symphony_core._security._sandbox._protocol import Limits
from symphony_core._security._sandbox._quota import measure
from symphony_core._store._home import Home

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="isolated workers need Linux")

MiB = 1 << 20
EXTENSION_ID = "acme.filler"
FILLER = r"""
import os, time

from symphony_core import Extension


class Filler(Extension):
    def activate(self, context):
        self.context = context
        self.held = []

    def write(self, name, size):
        path = os.path.join(self.context.cache_dir, name)
        with open(path, "wb") as file:
            file.write(b"x" * size)
        return os.path.getsize(path)

    def fill(self, files, size, pause):
        for number in range(files):
            self.write(f"fill-{number}", size)
            time.sleep(pause)
        return files

    def hold(self, size):
        path = os.path.join(self.context.cache_dir, "held")
        file = open(path, "wb")
        file.write(b"x" * size)
        file.flush()
        os.unlink(path)
        self.held.append(file)
        return size

    def map_deleted(self, size):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
        path = os.path.join(self.context.cache_dir, "mapped")
        with open(path, "wb+") as file:
            file.write(b"x" * size)
            file.flush()
            # mmap.mmap would keep a duplicate of the descriptor open: libc's mmap keeps none
            address = libc.mmap(None, size, 1, 1, file.fileno(), 0)  # PROT_READ, MAP_SHARED
            assert address not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
            self.held.append(address)
        os.unlink(path)  # neither in the folder nor open: only mapped
        return size

    def touch(self, count):
        folder = os.path.join(self.context.cache_dir, "flood")
        os.makedirs(folder, exist_ok=True)
        for number in range(count):
            open(os.path.join(folder, str(number)), "wb").close()
        return count

    def echo(self, value):
        return value
"""


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the test extension's package, ``acme_filler``."""
    folder = tmp_path_factory.mktemp("code")
    (folder / "acme_filler").mkdir()
    (folder / "acme_filler" / "__init__.py").write_text(FILLER, encoding="utf-8")
    return folder


@pytest.fixture
def spec(tmp_path: Path, code: Path) -> Callable[..., WorkerSpec]:
    def make(**limits: Any) -> WorkerSpec:
        return WorkerSpec(
            extension=EXTENSION_ID,
            entry_point="acme_filler:Filler",
            home=Home(tmp_path / "home"),
            path=(str(code),),
            limits=Limits(**limits),
        )

    return make


@pytest.fixture
def start(spec: Callable[..., WorkerSpec]) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers of the test extension with the given limits; each is killed at the end."""
    started: list[WorkerProcess] = []

    def starter(**limits: Any) -> WorkerProcess:
        worker = WorkerProcess.start(spec(**limits), timeout=60)
        started.append(worker)
        return worker

    yield starter
    for worker in started:
        worker.kill()


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


# One file


def test_a_write_past_the_file_size_limit_fails_with_efbig_and_the_worker_goes_on(
    start: Callable[..., WorkerProcess],
) -> None:
    worker = start(file_size=MiB)

    with pytest.raises(RemoteError) as refused:
        worker.call("write", ("big", 2 * MiB))

    assert refused.value.errno == errno.EFBIG
    assert worker.alive
    assert worker.call("write", ("small", MiB)) == MiB
    assert "files up to 1,048,576 bytes (RLIMIT_FSIZE)" in worker.enforced["rlimits"]


# The quota on {data} and {cache}


def test_a_worker_filling_its_cache_during_one_long_call_is_killed_at_its_quota(
    start: Callable[..., WorkerProcess], spec: Callable[..., WorkerSpec]
) -> None:
    worker = start(disk=20 * MiB, file_size=4 * MiB)
    cache = spec().cache_dir

    began = time.monotonic()
    with pytest.raises(WorkerCrashed) as killed:
        worker.call("fill", (40, 4 * MiB, 0.2), timeout=60)  # 160 MiB over 8 s, were it not stopped

    assert time.monotonic() - began < 5, "killed by the host's count during the call, not after it"
    assert "its worker was killed: over its disk quota (" in killed.value.message
    assert "of 20,971,520 bytes in {cache})" in killed.value.message
    assert str(cache) in (killed.value.hint or "")
    assert not worker.alive
    assert len(list(cache.glob("fill-*"))) < 10
    with pytest.raises(WorkerCrashed, match="over its disk quota"):
        worker.call("echo", (1,))


@pytest.fixture
def count_after_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count on every call's return: by default a call only counts once the last count is old enough
    (``AFTER_CALL``, and 20 times as long as it took), which a test cannot time on a busy machine."""
    monkeypatch.setattr(_quota, "AFTER_CALL", 0.0)
    monkeypatch.setattr(_quota, "_SHARE", 0)


@pytest.mark.usefixtures("count_after_every_call")
def test_a_call_that_takes_the_worker_over_its_quota_fails_with_the_quota_as_reason(
    start: Callable[..., WorkerProcess],
) -> None:
    worker = start(disk=2 * MiB)

    with pytest.raises(WorkerCrashed) as killed:
        worker.call("write", ("blob", 3 * MiB))

    assert "over its disk quota" in killed.value.message
    assert not worker.alive


@pytest.mark.usefixtures("count_after_every_call")
def test_files_deleted_but_held_open_count_against_the_quota(start: Callable[..., WorkerProcess]) -> None:
    worker = start(disk=4 * MiB)

    with pytest.raises(WorkerCrashed) as killed:
        worker.call("hold", (6 * MiB,))

    assert "of 4,194,304 bytes in deleted files its processes hold open" in killed.value.message


def test_files_deleted_but_still_mapped_are_found_by_the_count_every_half_second(
    start: Callable[..., WorkerProcess],
) -> None:
    worker = start(disk=4 * MiB)

    killed = _killed_while(worker, ("map_deleted", (6 * MiB,)), pause=None)

    assert "of 4,194,304 bytes in deleted files its processes hold open" in killed.message


@pytest.mark.usefixtures("count_after_every_call")
def test_files_only_mapped_are_found_while_the_worker_is_called_without_pause(
    start: Callable[..., WorkerProcess],
) -> None:
    worker = start(disk=4 * MiB)

    # every call's own count comes first, and none reads the memory maps: the periodic count must still
    killed = _killed_while(worker, ("map_deleted", (6 * MiB,)), pause=0.02)

    assert "of 4,194,304 bytes in deleted files its processes hold open" in killed.message


def _killed_while(
    worker: WorkerProcess, first: tuple[str, tuple[Any, ...]], pause: float | None
) -> WorkerCrashed:
    """The error that ends ``worker`` after the call ``first``: while it idles (``pause`` None) or while it
    is called every ``pause`` seconds; a test failure when it lives on for 10 s."""
    if pause is not None:  # called for a while first: the counts after calls are always the latest
        until = time.monotonic() + 2 * _quota.INTERVAL
        while time.monotonic() < until:
            worker.call("echo", (1,))
            time.sleep(pause)
    deadline = time.monotonic() + 10
    try:
        worker.call(*first)
        while time.monotonic() < deadline and (pause is not None or worker.alive):
            if pause is not None:
                worker.call("echo", (1,))
            time.sleep(pause or 0.1)
        worker.call("echo", (1,))
    except WorkerCrashed as exc:
        return exc
    raise AssertionError("the worker was not killed: the mapped file was not counted")


@pytest.mark.usefixtures("count_after_every_call")
def test_a_flood_of_empty_files_is_stopped_at_the_entry_limit(start: Callable[..., WorkerProcess]) -> None:
    worker = start(disk_entries=300)

    with pytest.raises(WorkerCrashed) as killed:
        worker.call("touch", (1000,))

    assert "of 300 files and folders in {cache}" in killed.value.message


def test_no_worker_starts_while_its_folders_are_over_quota_until_files_are_removed(
    start: Callable[..., WorkerProcess], spec: Callable[..., WorkerSpec]
) -> None:
    blob = spec().data_dir / "blob.bin"
    write(blob, 3 * MiB)

    with pytest.raises(SandboxError) as refused:
        start(disk=2 * MiB)

    assert refused.value.extension == EXTENSION_ID
    assert "cannot start: over its disk quota (" in refused.value.message
    assert f"of 2,097,152 bytes in {{data}}: {spec().data_dir})" in refused.value.message
    assert "delete what it no longer needs" in (refused.value.hint or "")
    assert "`[limits]`" in (refused.value.hint or "")
    blob.unlink()
    assert start(disk=2 * MiB).call("echo", ("back",)) == "back"


def test_the_count_follows_no_link_takes_sparse_files_as_they_are_and_stops_past_the_limit(
    tmp_path: Path,
) -> None:
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    write(outside / "big.bin", 8 * MiB)
    inside.mkdir()
    (inside / "link").symlink_to(outside)
    with open(inside / "sparse.bin", "wb") as sparse:
        sparse.truncate(512 * MiB)

    assert measure({"{cache}": inside}).bytes < MiB
    for number in range(10):
        write(inside / "many" / str(number), 256 << 10)
    counted = measure({"{cache}": inside}, Limits(disk=MiB))
    assert (counted.over, counted.where) == ("disk", "{cache}")
    assert counted.bytes <= MiB + (256 << 10) + (64 << 10)
    assert measure({"{cache}": inside}).bytes >= 10 * (256 << 10), "without limits it counts everything"


def test_a_folder_nested_too_deep_to_count_passes_the_quota(tmp_path: Path) -> None:
    folder = os.open(tmp_path, os.O_RDONLY)
    for _ in range(20):  # 20 x 250 characters: past the longest path the kernel takes (4096)
        os.mkdir("d" * 250, dir_fd=folder)
        deeper = os.open("d" * 250, os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = deeper
    os.close(folder)

    counted = measure({"{cache}": tmp_path}, Limits())

    assert counted.over == "unreadable"
    assert "File name too long" in counted.where
    assert "a folder the host cannot count: " in counted.describe(Limits())


# Configuration and report


def test_the_policy_limits_table_sets_what_each_worker_gets(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[limits]\ndisk = "20 MiB"\nfile_size = false\ndisk_entries = 500\n', encoding="utf-8")

    limits = read_policy(policy).limits.for_workers()

    assert (limits.disk, limits.file_size, limits.disk_entries) == (20 * MiB, None, 500)
    assert limits.memory == Limits().memory, "an unwritten limit keeps its default"
    policy.write_text('[limits]\ndisk = "a lot"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        read_policy(policy)
    assert "limits.disk: Value error, 'a lot' is not a size" in refused.value.message


DISK_HUNGRY = """
import os, time

from symphony_core import Extension


class Ext(Extension):
    def activate(self, context):
        self.context = context

    def fill(self, files, size, pause):
        for number in range(files):
            with open(os.path.join(self.context.cache_dir, f"fill-{number}"), "wb") as file:
                file.write(b"x" * size)
            time.sleep(pause)
        return files
"""


def test_an_isolated_host_takes_the_quota_from_its_policy_and_audits_the_kill(
    install: Any, make: Any, home: Path, hosts: Any
) -> None:
    ext_id = "acme.disk-hungry"
    install(make.extension(ext_id, code=DISK_HUNGRY))
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text('[limits]\ndisk = "4 MiB"\n', encoding="utf-8")
    host = hosts(home, isolation="isolated")
    host("start", ext_id)

    killed = host.refuses("call", ext_id, "fill", 20, MiB, 0.2)

    assert killed["error"] == "WorkerCrashed"
    assert "over its disk quota" in killed["message"]
    assert "of 4,194,304 bytes in {cache}" in killed["message"]
    reasons = [detail["reason"] for event, detail in host("audit", ext_id) if event == "worker_crashed"]
    assert any("over its disk quota" in reason for reason in reasons)


def test_doctor_shows_the_limits_and_each_extensions_use_against_its_quota(
    venv: Any, install: Any, make: Any, home: Path
) -> None:
    ext_id = "acme.quota-report"
    install(make.greeter(ext_id))
    home.mkdir(parents=True, exist_ok=True)
    (home / "policy.toml").write_text('[limits]\ndisk = "1 MiB"\nfile_size = "512 KiB"\n', encoding="utf-8")
    cache = Home(home).extension_cache_dir(ext_id)
    write(cache / "model.bin", 2 * MiB)

    report = venv.symphony_json(home, "doctor")

    assert report["limits"]["disk"] == MiB
    assert report["limits"]["file_size"] == 512 << 10
    assert report["limits"]["memory"] == Limits().memory
    usage = report["disk"][ext_id]
    assert usage["over"] is True
    assert usage["bytes"] >= 2 * MiB
    assert usage["folders"]["{cache}"] == str(cache)
    people = make.normalize(venv.symphony(home, "doctor").stdout)
    assert "disk: 1.0MiB and 100,000 entries per extension" in people
    assert f"{ext_id}: 2.0MiB of 1.0MiB" in people
    assert "over its quota" in people
