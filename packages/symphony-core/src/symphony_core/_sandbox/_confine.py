"""How a worker restricts itself, in order, before it imports any extension code.

Called first thing in a fresh, single-threaded interpreter. Each step either works or is reported as not
enforced; the worker never claims a restriction that failed. Order matters:

1. die with the host (``PR_SET_PDEATHSIG``); resource limits (``setrlimit``);
2. ``no_new_privs``: nothing the worker runs can gain privileges (set-user-id programs, file capabilities);
3. namespaces: a user namespace (so root in the worker is not root outside), an IPC namespace, and a
   network namespace when no network was granted. Creating namespaces needs a single-threaded process;
4. every capability dropped, bounding set included;
5. Landlock: files, TCP ports, scoping. It binds this thread and every thread and process made later,
   which is why it comes before anything that starts threads (polars, onnxruntime);
6. seccomp, last, since it forbids what steps 3-5 used (``unshare``).
"""

from __future__ import annotations

import os
import resource
import signal
import sys

from . import _landlock, _seccomp
from ._protocol import Profile
from ._syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWUSER,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    drop_capabilities,
    prctl,
    unshare,
)

_SYSTEM_READ = (
    "/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib",  # shared libraries (dlopen after restrict)
    "/etc/ld.so.cache", "/etc/localtime", "/usr/share/zoneinfo",
    "/proc/meminfo", "/proc/cpuinfo", "/proc/stat", "/sys/devices/system/cpu",  # sizing thread pools, memory
    "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random",
)  # fmt: skip
_NETWORK_READ = (
    "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/host.conf",
    "/etc/services", "/etc/protocols", "/etc/ssl", "/etc/pki", "/etc/ca-certificates",
    "/usr/share/ca-certificates", "/usr/local/share/ca-certificates",
)  # fmt: skip


def system_paths(*, network: bool) -> list[str]:
    """What any worker reads besides the interpreter: libraries, time zones, CPU and memory sizes, devices;
    with network access also name resolution and CA certificates. Symlinks resolved (Landlock needs the
    file itself)."""
    paths = [*_SYSTEM_READ, *(_NETWORK_READ if network else ())]
    return sorted({os.path.realpath(path) for path in paths} | set(paths))


def confine(profile: Profile) -> tuple[dict[str, str], list[str]]:
    """Restrict this process as ``profile`` says; return what is enforced and the paths that had no rule."""
    enforced: dict[str, str] = {}
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    enforced["rlimits"] = _limit(profile)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    enforced["no_new_privs"] = "set"
    enforced.update(_namespaces(profile.network))
    try:
        drop_capabilities()
        enforced["capabilities"] = "all dropped (bounding set included)"
    except OSError as exc:
        enforced["capabilities"] = f"NOT dropped: {exc.strerror}"
    skipped: list[str] = []
    version = _landlock.abi()
    if version:
        ruleset = _landlock.Ruleset(
            version,
            bind_ports=None if profile.bind_ports is None else set(profile.bind_ports),
            connect_ports=None if profile.connect_ports is None else set(profile.connect_ports),
        )
        ruleset.allow(_interpreter_paths(), _landlock.READ)
        ruleset.allow([*system_paths(network=profile.network), *profile.read], _landlock.READ)
        ruleset.allow([f"/proc/{os.getpid()}"], _landlock.READ)
        ruleset.allow(["/dev/null"], _landlock.WRITE_FILE)
        ruleset.allow(profile.write, _landlock.WRITE)
        ruleset.allow(profile.execute, _landlock.EXECUTE | _landlock.READ_FILE)
        ruleset.allow(profile.devices, _landlock.DEVICE)
        if profile.exchange:
            ruleset.allow([profile.exchange], _landlock.EXCHANGE)
        ruleset.restrict()
        skipped = ruleset.skipped
        ports = "TCP ports: " + ("none" if not version >= 4 else _ports(profile))
        scoped = "; signals and abstract UNIX sockets scoped to the worker" if version >= 6 else ""
        enforced["landlock"] = f"ABI {version}: files{'' if version < 4 else ', ' + ports}{scoped}"
    else:
        enforced["landlock"] = "NOT enforced: this kernel has no Landlock"
    if _seccomp.supported():
        enforced["seccomp"] = f"{_seccomp.install()} system calls refused; sockets: IPv4, IPv6, netlink only"
    else:
        enforced["seccomp"] = "NOT enforced: no system call table for this CPU"
    return enforced, skipped


def _limit(profile: Profile) -> str:
    limits = profile.limits
    done = ["no core dumps"]
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limits.cpu_seconds is not None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        done.append(f"CPU {limits.cpu_seconds} s")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = limits.open_files if hard == resource.RLIM_INFINITY else min(limits.open_files, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    done.append(f"{files} open files")
    if limits.tasks is not None and os.getuid() != 0:
        # RLIMIT_NPROC counts every task of the user: allow what runs now plus the worker's share
        resource.setrlimit(resource.RLIMIT_NPROC, (_tasks_of_user() + limits.tasks,) * 2)
        done.append(f"{limits.tasks} more processes of this user (RLIMIT_NPROC)")
    return ", ".join(done)


def _tasks_of_user() -> int:
    uid, count = str(os.getuid()), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as status:
                    fields = dict(line.split(":", 1) for line in status if ":" in line)
            except OSError:
                continue
            if fields.get("Uid", "").split()[:1] == [uid]:
                count += int(fields.get("Threads", "1"))
    return count


def _namespaces(network: bool) -> dict[str, str]:
    uid, gid = os.getuid(), os.getgid()
    wanted = CLONE_NEWIPC | (0 if network else CLONE_NEWNET)
    try:
        unshare(CLONE_NEWUSER | wanted)
    except OSError as user_error:
        if uid != 0:
            return {
                "namespaces": f"NOT created: unshare(CLONE_NEWUSER): {user_error.strerror}",
                "network": "the host's network" + ("" if network else ": NOT isolated"),
            }
        try:
            unshare(wanted)  # root can make the others without a user namespace
        except OSError as exc:
            return {
                "namespaces": f"NOT created: unshare: {exc.strerror}",
                "network": "the host's network" + ("" if network else ": NOT isolated"),
            }
        made = "IPC" + ("" if network else ", network") + f" (no user namespace: {user_error.strerror})"
    else:
        _map_ids(uid, gid)
        made = "user, IPC" + ("" if network else ", network")
    return {
        "namespaces": made,
        "network": "the host's network (granted)" if network else "a namespace of its own: no network",
    }


def _map_ids(uid: int, gid: int) -> None:
    """Keep the same user and group ids inside the new user namespace (without it they read as 65534)."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as file:
            file.write(text)


def _interpreter_paths() -> list[str]:
    """The interpreter's own folders and its import path, as the worker sees them before any import."""
    found = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *sys.path}
    return sorted(os.path.realpath(path) for path in found if path and os.path.isabs(path))


def _ports(profile: Profile) -> str:
    def text(ports: list[int] | None) -> str:
        return "any" if ports is None else (", ".join(map(str, sorted(ports))) or "none")

    return f"connect {text(profile.connect_ports)}, bind {text(profile.bind_ports)}"
