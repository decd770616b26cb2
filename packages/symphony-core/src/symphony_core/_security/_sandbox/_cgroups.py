"""Control groups for workers: a memory ceiling and a cap on processes and threads, per worker.

Each worker gets its own cgroup, made under the cgroup the host runs in, for each controller this host may
use there: cgroup v2 when the controller is delegated to the host's cgroup (listed in its
``cgroup.subtree_control``), else the controller's cgroup v1 hierarchy when its folder is writable (as root
on hosts that still mount v1 controllers). The limits hold for the worker and everything it starts; when
the worker stops, whatever is left in its cgroups is killed and the cgroups are removed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

CONTROLLERS = ("memory", "pids")
_LIMIT_FILES = {  # (version, controller): the files that hold the limit, in the order they are written
    (2, "memory"): ("memory.max", "memory.swap.max"),
    (2, "pids"): ("pids.max",),
    (1, "memory"): ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
    (1, "pids"): ("pids.max",),
}
_counter = itertools.count(1)


@dataclass(frozen=True)
class Place:
    """Where this host can make a worker's cgroup for one controller."""

    controller: str
    version: int
    parent: Path

    def describe(self) -> str:
        return f"cgroup v{self.version} {self.controller} controller under {self.parent}"


@cache
def places() -> tuple[dict[str, Place], dict[str, str]]:
    """For each controller, where a worker's cgroup can be made, or why it cannot (probed once)."""
    found: dict[str, Place] = {}
    reasons: dict[str, str] = {}
    try:
        mounts = _mounts()
        memberships = _memberships()
    except OSError as exc:
        return {}, dict.fromkeys(CONTROLLERS, f"cgroups cannot be read here: {exc.strerror}")
    for controller in CONTROLLERS:
        candidates: list[Place] = []
        problems: list[str] = []
        if "" in memberships and "cgroup2" in mounts:
            folder = Path(mounts["cgroup2"] + memberships[""])
            if controller in _read(folder / "cgroup.subtree_control").split():
                candidates.append(Place(controller, 2, folder))
            else:
                problems.append(f"cgroup v2: the {controller} controller is not delegated to {folder}")
        if controller in mounts and controller in memberships:
            candidates.append(Place(controller, 1, Path(mounts[controller] + memberships[controller])))
        for place in candidates:
            problem = _try(place)
            if problem is None:
                found[controller] = place
                break
            problems.append(problem)
        else:
            reasons[controller] = "; ".join(problems) or "no cgroup hierarchy has this controller"
    return found, reasons


def _mounts() -> dict[str, str]:
    """Mount point of the cgroup2 hierarchy (key ``cgroup2``) and of each v1 controller."""
    mounts: dict[str, str] = {}
    with open("/proc/self/mountinfo", encoding="utf-8") as file:
        for line in file:
            before, _, after = line.partition(" - ")
            fstype, _, options = after.split()[:3]
            point = before.split()[4]
            if fstype == "cgroup2":
                mounts.setdefault("cgroup2", point.rstrip("/"))
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in CONTROLLERS:
                        mounts.setdefault(option, point.rstrip("/"))
    return mounts


def _memberships() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under key ``""`` in the v2 hierarchy."""
    memberships: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as file:
        for line in file:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                memberships[controller] = "" if path == "/" else path
    return memberships


def _try(place: Place) -> str | None:
    """Make and remove a test cgroup with a limit; None when that worked, else why not."""
    probe = place.parent / f"symphony-probe-{os.getpid()}-{next(_counter)}"
    try:
        probe.mkdir()
    except OSError as exc:
        return f"cgroup v{place.version}: cannot create a cgroup under {place.parent}: {exc.strerror}"
    try:
        limit = _LIMIT_FILES[(place.version, place.controller)][0]
        (probe / limit).write_text("max" if place.version == 2 or limit == "pids.max" else "-1")
    except OSError as exc:
        return f"cgroup v{place.version}: cannot set {limit} under {place.parent}: {exc.strerror}"
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()
    return None


_swept: set[Path] = set()
_LEFT_BEHIND = re.compile(r"symphony-(\d+)-")


def _sweep(parent: Path) -> None:
    """Remove the empty cgroups of hosts that died without removing them (once per folder and process)."""
    if parent in _swept:
        return
    _swept.add(parent)
    with contextlib.suppress(OSError):
        for entry in parent.iterdir():
            match = _LEFT_BEHIND.match(entry.name)
            if match and entry.is_dir() and not alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    entry.rmdir()  # refused while a process is still inside: then it stays


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (it may be another one that got the same number: then it stays)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except OSError:
        return ""


@dataclass
class Cgroups:
    """The cgroups of one worker: made with their limits, joined by the worker, killed and removed."""

    name: str
    folders: list[Path] = field(default_factory=list)
    enforced: dict[str, str] = field(default_factory=dict)
    """Controller: what it limits, for reports."""
    problems: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, label: str, *, memory: int | None, tasks: int | None) -> Cgroups:
        """Make the worker's cgroups with ``memory`` bytes and ``tasks`` processes+threads at most."""
        name = f"symphony-{os.getpid()}-{next(_counter)}-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}"
        groups = cls(name)
        available, reasons = places()
        for controller, limit in (("memory", memory), ("pids", tasks)):
            if limit is None:
                continue
            place = available.get(controller)
            if place is None:
                groups.problems[controller] = reasons.get(controller, "not available")
                continue
            _sweep(place.parent)
            folder = place.parent / name
            try:
                folder.mkdir()
                groups.folders.append(folder)
                first, *extra = _LIMIT_FILES[(place.version, controller)]
                (folder / first).write_text(str(limit))
                for other in extra:  # swap: none more (v2), or memory + swap = the same limit (v1)
                    if (folder / other).exists():
                        (folder / other).write_text("0" if place.version == 2 else str(limit))
            except OSError as exc:
                groups.problems[controller] = f"{folder}: {exc.strerror}"
                continue
            groups.enforced[controller] = f"{place.describe()}: at most {limit:,} " + (
                "bytes" if controller == "memory" else "processes and threads"
            )
        return groups

    def add(self, pid: int) -> None:
        """Move process ``pid`` (the worker, before it runs extension code) into every cgroup."""
        for folder in self.folders:
            (folder / "cgroup.procs").write_text(str(pid))

    def oom_kills(self) -> int:
        """How many times the kernel killed a process of this worker for going over its memory limit."""
        total = 0
        for folder in self.folders:
            for events in ("memory.events", "memory.oom_control"):
                match = re.search(r"^oom_kill (\d+)$", _read(folder / events), re.MULTILINE)
                if match:
                    total += int(match.group(1))
        return total

    def memory_limit(self) -> str | None:
        return self.enforced.get("memory")

    def close(self, *, wait: float = 2.0) -> None:
        """Kill whatever is left in the cgroups (processes the worker started) and remove them."""
        deadline = time.monotonic() + wait
        for folder in self.folders:
            while True:
                with contextlib.suppress(OSError):
                    (folder / "cgroup.kill").write_text("1")  # v2: the whole cgroup at once
                pids = [int(pid) for pid in _read(folder / "cgroup.procs").split()]
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    folder.rmdir()
                    break
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
        self.folders = [folder for folder in self.folders if folder.exists()]
