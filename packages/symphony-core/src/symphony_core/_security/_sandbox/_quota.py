"""A disk quota on each extension's own folders, ``{data}`` and ``{cache}``, enforced from the host.

No kernel quota fits: project quotas need root and a file system mounted for them, and ``RLIMIT_FSIZE``
(which the worker sets) bounds one file, not a folder. So the host counts what the folders take on disk
(``st_blocks`` * 512, sparse files as they really are, links never followed, a file with several links
once) and how many entries they hold, plus the deleted files the worker's processes still hold open or
mapped there. It counts before a worker starts (refused when over), after a request (unless the last
count is younger than ``AFTER_CALL``), and every ``INTERVAL`` seconds in one thread for every running
worker, and kills the workers of an extension found over its quota. Deleted files only mapped (neither
in a folder nor open) are counted every ``INTERVAL`` seconds, not after each request: finding them means
reading the worker's whole memory map, which costs more than the rest of a count (about 0.5 ms for a
worker that loaded polars). A count stops at the first limit
it passes, so its work is bounded by the limits, not by what a worker wrote.

Counted from outside, the quota can be passed between two counts: by at most one ``file_size``
(``RLIMIT_FSIZE``) for each file written in that interval (for files only mapped, in ``INTERVAL``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from symphony_core._model._errors import SandboxError, WorkerCrashed
from symphony_core._store._home import Home

from ._protocol import Limits

if TYPE_CHECKING:
    from ._process import WorkerProcess
    from ._profile import WorkerSpec

log = logging.getLogger("symphony.quota")
INTERVAL = 0.5
"""Seconds between two counts of a running worker's folders."""
AFTER_CALL = 0.05
"""Seconds since the last count of an extension before a call's return counts it again: a stream of short
calls pays for one count in this time, not one each (a count of a small cache takes about 0.2-1 ms)."""
_SHARE = 20
"""The next count of an extension waits at least this many times as long as its last count took, so
counting big folders never takes more than about 5 % of one core."""
_HELD = "deleted files its processes hold open"
_DELETED = " (deleted)"
_UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Usage:
    """What an extension's folders take, as far as the count went."""

    bytes: int = 0
    entries: int = 0
    """Files, folders and links."""
    over: str | None = None
    """The limit the count passed (``disk``, ``disk_entries``, or ``unreadable`` for a folder the host
    cannot count, even after making it readable); None within the limits."""
    where: str = ""
    """Where it passed it: ``{data}``, ``{cache}``, the deleted files held open, or the folder it could
    not count (with why)."""

    def describe(self, limits: Limits) -> str:
        """What went over, as in ``20,975,616 of 20,971,520 bytes in {cache}``."""
        if self.over == "disk_entries":
            return f"{self.entries:,} of {limits.disk_entries:,} files and folders in {self.where}"
        if self.over == _UNREADABLE:
            return f"a folder the host cannot count: {self.where}"
        return f"{self.bytes:,} of {limits.disk:,} bytes in {self.where}"


def folders(home: Home, extension: str) -> dict[str, Path]:
    """The folders the quota covers, by the names permissions give them."""
    return {"{data}": home.data_dir(extension), "{cache}": home.extension_cache_dir(extension)}


def limited(limits: Limits) -> bool:
    """Whether the limits hold a quota at all."""
    return limits.disk is not None or limits.disk_entries is not None


def measure(
    places: Mapping[str, Path], limits: Limits | None = None, pids: Iterable[int] = (), *, mapped: bool = True
) -> Usage:
    """Count what the folders ``places`` (by name) take, and the deleted files there that the processes
    ``pids`` and their descendants hold open (and, with ``mapped``, keep mapped); with ``limits``, stop
    at the first limit passed."""
    count = _Count(limits)
    for name, folder in places.items():
        if count.walk(name, folder):
            break
    else:
        count.held(list(places.values()), pids, mapped=mapped)
    return Usage(count.bytes, count.entries, count.over, count.where)


def report(home: Home, extensions: Iterable[str], limits: Limits) -> dict[str, dict[str, object]]:
    """What each extension's folders take, counted in full, and whether that is over the quota."""
    found: dict[str, dict[str, object]] = {}
    for extension in extensions:
        places = folders(home, extension)
        usage = measure(places)
        over = (
            usage.over is not None
            or (limits.disk is not None and usage.bytes > limits.disk)
            or (limits.disk_entries is not None and usage.entries > limits.disk_entries)
        )
        found[extension] = {
            "bytes": usage.bytes,
            "entries": usage.entries,
            "over": over,
            "folders": {name: str(path) for name, path in places.items()},
        }
    return found


def refuse_if_over(spec: WorkerSpec) -> None:
    """Raise `SandboxError` when the extension's folders are over its quota: no worker starts then."""
    limits = spec.limits
    if not limited(limits):
        return
    usage = measure(folders(spec.home, spec.extension), limits)
    if usage.over is None:
        return
    path = folders(spec.home, spec.extension).get(usage.where)
    raise SandboxError(
        f"cannot start: over its disk quota ({usage.describe(limits)}{f': {path}' if path else ''})",
        extension=spec.extension,
        hint=_hint(spec),
    )


def watch(worker: WorkerProcess) -> None:
    """Count the worker's folders every ``INTERVAL`` seconds while it lives; kill it when over quota."""
    if limited(worker.spec.limits):
        _MONITOR.watch(worker)


def due(worker: WorkerProcess) -> bool:
    """Whether `check` would count the worker's folders now (it counts at most every ``AFTER_CALL``)."""
    spec = worker.spec
    return limited(spec.limits) and worker.pid is not None and _MONITOR.due(_key(spec), AFTER_CALL)


def check(worker: WorkerProcess) -> None:
    """Count the worker's folders after a request, unless they were counted in the last ``AFTER_CALL``
    seconds; over quota, kill every worker of its extension and raise `WorkerCrashed` saying why."""
    if not due(worker):
        return
    spec = worker.spec
    assert worker.pid is not None
    usage = _MONITOR.count(spec, [worker.pid], mapped=False)
    if usage.over is None:
        return
    _MONITOR.abort([worker, *_MONITOR.peers(worker)], usage)
    raise worker.died or _killed(spec, usage)


class _Count:
    """One count, stopping at the first limit passed."""

    def __init__(self, limits: Limits | None) -> None:
        self.max_bytes = None if limits is None else limits.disk
        self.max_entries = None if limits is None else limits.disk_entries
        self.bytes = 0
        self.entries = 0
        self.over: str | None = None
        self.where = ""
        self._linked: set[tuple[int, int]] = set()

    def add(self, info: os.stat_result, where: str, *, entry: bool = True) -> bool:
        """Count one file; True once a limit is passed."""
        self.entries += entry
        key = (info.st_dev, info.st_ino)
        if info.st_nlink != 1 and not stat.S_ISDIR(info.st_mode):  # several names, or deleted: once
            if key in self._linked:
                return self._passed(where)
            self._linked.add(key)
        self.bytes += info.st_blocks * 512
        return self._passed(where)

    def walk(self, name: str, top: Path) -> bool:
        """Count everything beneath ``top`` without following links; True once a limit is passed.

        A folder that cannot be counted (made unreadable, nested past the longest path) passes the quota:
        otherwise hiding what it holds would dodge it.
        """
        stack = [os.fspath(top)]
        while stack:
            folder = stack.pop()
            try:
                with _listing(folder) as entries:
                    for entry in entries:
                        try:
                            info = _lstat(entry.path)
                        except FileNotFoundError:
                            continue
                        if self.add(info, name):
                            return True
                        if stat.S_ISDIR(info.st_mode):
                            stack.append(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                shown = folder if len(folder) <= 200 else f"{folder[:100]}...{folder[-100:]}"
                self.over, self.where = _UNREADABLE, f"{shown} ({exc.strerror})"
                return True
        return False

    def held(self, tops: list[Path], pids: Iterable[int], *, mapped: bool = True) -> bool:
        """Count the deleted files beneath ``tops`` that the processes hold open or (with ``mapped``) mapped:
        a worker could otherwise write, delete and keep them, unseen by ``walk``; True once a limit is
        passed."""
        prefixes = tuple(os.path.realpath(top) + os.sep for top in tops)
        for pid in _tree(pids):
            fds = f"/proc/{pid}/fd"
            try:
                numbers = os.listdir(fds)
            except OSError:
                continue  # it ended
            for number in numbers:
                link = f"{fds}/{number}"
                try:
                    target = os.readlink(link)
                    info = os.stat(link) if _deleted(target, prefixes) else None
                except OSError:
                    continue
                if info is not None and info.st_nlink == 0 and self.add(info, _HELD, entry=False):
                    return True
            if mapped and self._mapped(pid, prefixes):
                return True
        return False

    def _mapped(self, pid: int, prefixes: tuple[str, ...]) -> bool:
        """Deleted files mapped but no longer open: only their mapped size can be known (``stat`` through
        ``map_files`` needs a capability), which is a lower bound of what they take."""
        sizes: dict[tuple[int, int], int] = {}
        try:
            with open(f"/proc/{pid}/maps", "rb") as maps:
                listing = maps.read()
            # A worker maps a few thousand regions (polars alone hundreds), and none deleted as a rule: only
            # the lines that say so are split
            marker = _DELETED.encode()
            at = listing.find(marker)
            while at != -1:
                start_of_line = listing.rfind(b"\n", 0, at) + 1
                end_of_line = listing.find(b"\n", at)
                line = listing[start_of_line : len(listing) if end_of_line == -1 else end_of_line]
                at = -1 if end_of_line == -1 else listing.find(marker, end_of_line)
                fields = line.decode("utf-8", "replace").split(maxsplit=5)
                if len(fields) < 6 or not _deleted(fields[5], prefixes):
                    continue
                start, _, end = fields[0].partition("-")
                major, _, minor = fields[3].partition(":")
                key = (os.makedev(int(major, 16), int(minor, 16)), int(fields[4]))
                size = int(fields[2], 16) + int(end, 16) - int(start, 16)
                sizes[key] = max(sizes.get(key, 0), size)
        except (OSError, ValueError):
            return False
        for key, size in sizes.items():
            if key not in self._linked:
                self._linked.add(key)
                self.bytes += size
                if self._passed(_HELD):
                    return True
        return False

    def _passed(self, where: str) -> bool:
        if self.max_bytes is not None and self.bytes > self.max_bytes:
            self.over, self.where = "disk", where
        elif self.max_entries is not None and self.entries > self.max_entries:
            self.over, self.where = "disk_entries", where
        return self.over is not None


@contextlib.contextmanager
def _listing(folder: str) -> Iterator[Iterator[os.DirEntry[str]]]:
    """The entries of ``folder``; a folder the worker made unreadable is made readable to its owner again
    (it is the extension's own, and hiding what it holds must not dodge the quota)."""
    try:
        entries = os.scandir(folder)
    except PermissionError:
        _open_up(folder)
        entries = os.scandir(folder)
    with entries:
        yield entries


def _lstat(path: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except PermissionError:  # a folder that can be listed but not searched
        _open_up(os.path.dirname(path))
        return os.lstat(path)


def _open_up(folder: str) -> None:
    """Give the owner back all rights to ``folder``; never through a link the worker put in its place."""
    with contextlib.suppress(OSError, NotImplementedError):  # gone, or a link now (links have no mode)
        os.chmod(folder, stat.S_IMODE(os.lstat(folder).st_mode) | stat.S_IRWXU, follow_symlinks=False)


def _deleted(target: str, prefixes: tuple[str, ...]) -> bool:
    return target.endswith(_DELETED) and target.startswith(prefixes)


def _tree(pids: Iterable[int]) -> list[int]:
    """The processes and their descendants (the worker's PID namespace keeps orphans among them)."""
    found: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                    todo += [int(child) for child in children.read().split()]
            except (OSError, ValueError):
                continue
    return found


def _killed(spec: WorkerSpec, usage: Usage) -> WorkerCrashed:
    return WorkerCrashed(
        f"its worker was killed: over its disk quota ({usage.describe(spec.limits)})",
        extension=spec.extension,
        hint=_hint(spec),
    )


def _hint(spec: WorkerSpec) -> str:
    return (
        f"delete what it no longer needs from {spec.data_dir} or {spec.cache_dir} (anything in its cache "
        "folder may go), or raise `disk` in the `[limits]` of the host's policy file; `symphony doctor` "
        "shows what each extension uses"
    )


def _key(spec: WorkerSpec) -> tuple[object, ...]:
    """Workers with the same key share folders and quota: they are counted once for all."""
    limits = spec.limits
    return (spec.extension, spec.home.root, limits.disk, limits.disk_entries)


class _Monitor:
    """The one thread that counts the folders of every running worker, every ``INTERVAL`` seconds.

    It counts whether the worker serves a call or not: a worker can go on writing from a thread of its
    own after a call returned. It ends when no worker is left, and starts again with the next one.
    """

    def __init__(self) -> None:
        self._workers: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()
        self._last: dict[tuple[object, ...], tuple[float, float]] = {}
        """Per extension: when its last count started, and how long it took."""
        self._maps_read: dict[tuple[object, ...], float] = {}
        """Per extension: when its last count that read its workers' memory maps started (a call's count
        does not, and a worker called without pause must not keep the periodic one from coming)."""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, worker: WorkerProcess) -> None:
        with self._lock:
            self._workers.add(worker)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="symphony-disk-quota", daemon=True)
                self._thread.start()

    def peers(self, worker: WorkerProcess) -> list[WorkerProcess]:
        """The other running workers sharing ``worker``'s folders."""
        key = _key(worker.spec)
        with self._lock:
            return [other for other in self._workers if other is not worker and _key(other.spec) == key]

    def abort(self, workers: Iterable[WorkerProcess], usage: Usage) -> None:
        for worker in workers:
            if worker.alive:
                log.warning(
                    "%s: over its disk quota (%s)", worker.spec.extension, usage.describe(worker.spec.limits)
                )
                worker.abort(_killed(worker.spec, usage))

    def _run(self) -> None:
        while True:
            time.sleep(INTERVAL)
            groups: dict[tuple[object, ...], list[WorkerProcess]] = {}
            with self._lock:
                for worker in list(self._workers):
                    if worker.alive:
                        groups.setdefault(_key(worker.spec), []).append(worker)
                    else:
                        self._workers.discard(worker)
                self._last = {key: last for key, last in self._last.items() if key in groups}
                self._maps_read = {key: last for key, last in self._maps_read.items() if key in groups}
                if not groups:
                    self._thread = None
                    return
            for key, group in groups.items():
                if (
                    not self.due(key, INTERVAL)
                    and time.monotonic() < self._maps_read.get(key, 0.0) + INTERVAL
                ):
                    continue
                spec = group[0].spec
                try:
                    usage = self.count(spec, [worker.pid for worker in group if worker.pid is not None])
                except Exception:  # this thread counts for every worker: it must go on
                    log.exception("%s: its folders could not be counted", spec.extension)
                    continue
                if usage.over is not None:
                    self.abort(group, usage)

    def due(self, key: tuple[object, ...], gap: float) -> bool:
        """Whether ``gap`` seconds passed since the extension's last count, and at least ``_SHARE`` times
        as long as that count took."""
        last = self._last.get(key)
        return last is None or time.monotonic() >= last[0] + max(gap, last[1] * _SHARE)

    def count(self, spec: WorkerSpec, pids: list[int], *, mapped: bool = True) -> Usage:
        """Count the extension's folders and what ``pids`` hold there, and remember when and how long."""
        started = time.monotonic()
        try:
            return measure(folders(spec.home, spec.extension), spec.limits, pids, mapped=mapped)
        finally:
            self._last[_key(spec)] = (started, time.monotonic() - started)
            if mapped:
                self._maps_read[_key(spec)] = started


_MONITOR = _Monitor()
