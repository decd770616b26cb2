"""What the host reads of a worker in ``/proc``, never trusting what the worker says: which process runs
the extension (process 2 of the worker's PID namespace) and whether the restrictions it claims hold."""

from __future__ import annotations

import os
from collections.abc import Iterator

from symphony_core._model._errors import WorkerCrashed


def only_child(pid: int) -> int | None:
    """The one child of process ``pid``, or None when it has none or several.

    Read from its threads' ``children`` lists; on kernels built without them, from every process's parent.
    """
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as file:
                found.update(int(child) for child in file.read().split())
    except FileNotFoundError:
        found = {child for child, parent in _parents() if parent == pid}
    except (OSError, ValueError):
        return None
    return found.pop() if len(found) == 1 else None


def _parents() -> Iterator[tuple[int, int]]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as file:
                    fields = file.read().rpartition(")")[2].split()
                yield int(entry.name), int(fields[1])
            except (OSError, ValueError, IndexError):
                continue


def verify_claims(pidfd: int, enforced: dict[str, str], extension: str) -> str:
    """Check from outside what a worker says it enforces, where the kernel shows it; say what was checked.

    A few small reads of ``/proc`` for the process the pidfd holds: ``no_new_privs`` must show as
    ``NoNewPrivs: 1``, dropped capabilities as empty ``CapEff`` and ``CapPrm``, ``seccomp`` as ``Seccomp: 2``
    (a filter), and a network namespace of its own as one that is not the host's. A worker whose claims do
    not hold is not run (``WorkerCrashed``): its start-up code is not what the host shipped.
    """
    held: dict[str, bool] = {}
    pid = -1
    try:
        pid = _pid_of(pidfd)
        if pid <= 0:
            raise OSError("the process has ended")
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as file:
            status = dict(line.rstrip("\n").partition(":\t")[::2] for line in file)
        if "NOT" not in enforced.get("no_new_privs", "NOT"):
            held["no_new_privs"] = status.get("NoNewPrivs") == "1"
        if "NOT" not in enforced.get("capabilities", "NOT"):
            held["capabilities"] = all(int(status.get(set_, "1"), 16) == 0 for set_ in ("CapEff", "CapPrm"))
        if "NOT" not in enforced.get("seccomp", "NOT"):
            held["seccomp"] = status.get("Seccomp") == "2"
        if "no network" in enforced.get("network", ""):
            held["network"] = _own_namespace(pid, "net")
        if "NOT" not in enforced.get("processes", "NOT"):
            held["processes"] = _own_namespace(pid, "pid")
        if _pid_of(pidfd) != pid:  # what was read may be another process's, under a reused pid
            raise OSError("the process ended while it was checked")
    except (OSError, ValueError) as exc:
        raise WorkerCrashed(
            f"its worker's restrictions could not be checked in /proc/{pid}: {exc}",
            extension=extension,
            hint="the host reads /proc of its workers: if the worker did not just crash, mount /proc "
            "without hidepid for the host's user",
        ) from None
    if false := [name for name, holds in held.items() if not holds]:
        raise WorkerCrashed(
            f"its worker claims to enforce {', '.join(false)}, but /proc/{pid} shows otherwise; it was stopped",
            extension=extension,
            hint="a worker reports only what holds: check the Python environment workers run in (its "
            "interpreter, its site files, the workers' bytecode cache) for changes",
        )
    return "checked by the host in /proc: " + (", ".join(held) or "none of its claims")


def _pid_of(pidfd: int) -> int:
    """The process a pidfd holds, as this host's PID namespace numbers it (-1 once it has ended)."""
    with open(f"/proc/self/fdinfo/{pidfd}", encoding="ascii") as info:
        for line in info:
            if line.startswith("Pid:"):
                return int(line.split()[1])
    return -1


def _own_namespace(pid: int, kind: str) -> bool:
    """Whether process ``pid`` is in a namespace of ``kind`` other than this host's."""
    worker, host = os.stat(f"/proc/{pid}/ns/{kind}"), os.stat(f"/proc/self/ns/{kind}")
    return (worker.st_dev, worker.st_ino) != (host.st_dev, host.st_ino)
