"""How a worker restricts itself, in order, before it imports any extension code.

Called first thing in a fresh, single-threaded interpreter. Each step either works or is reported as not
enforced; the worker never claims a restriction that failed. Order matters:

1. die with the host (``PR_SET_PDEATHSIG``); resource limits (``setrlimit``);
2. ``no_new_privs``: nothing the worker runs can gain privileges (set-user-id programs, file capabilities);
3. namespaces: a user namespace (so root in the worker is not root outside), an IPC namespace, a PID
   namespace, and a network namespace when no network was granted. Creating namespaces needs a
   single-threaded process. A new PID namespace holds only the children of the process that made it, so
   the worker forks into it (``_become_process_one``). From inside, no process of the host can be seen,
   signalled, limited or reniced, and when the namespace's process 1 ends the kernel kills everything
   left in it (a double-forked daemon included), so nothing the extension starts outlives its worker,
   or a host killed outright;
4. every capability dropped, bounding set included;
5. Landlock: files, TCP ports, scoping. It binds this thread and every thread and process made later,
   which is why it comes before anything that starts threads (polars, onnxruntime);
6. seccomp, last, since it forbids what steps 3-5 used (``unshare``).
"""

from __future__ import annotations

import os
import resource
import signal

from . import _landlock, _seccomp
from ._protocol import Profile
from ._syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWPID,
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
_ORPHANED = 0xFF
"""The exit status of a worker whose parent died before it could ask to die with it."""
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
    return sorted({os.path.realpath(path) for path in paths})


def confine(profile: Profile) -> tuple[dict[str, str], list[str]]:
    """Restrict this process as ``profile`` says; return what is enforced and the paths that had no rule."""
    enforced: dict[str, str] = {}
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    enforced["rlimits"] = _limit(profile)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    enforced["no_new_privs"] = "set"
    enforced.update(_namespaces(profile.network))
    me = int(os.readlink("/proc/self"))  # this process as the host sees it (its own PID namespace says 1)
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
        ruleset.allow([*system_paths(network=profile.network), *profile.read], _landlock.READ)
        ruleset.allow([f"/proc/{me}"], _landlock.READ)
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
        enforced["seccomp"] = (
            f"{_seccomp.install()} system calls refused; sockets: TCP and UDP over IPv4 and IPv6, netlink "
            "routes, connected UNIX socket pairs only"
        )
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
    # A write past RLIMIT_FSIZE raises SIGXFSZ, whose default action kills the process. Ignored, the write
    # fails with EFBIG instead: the extension sees an OSError it can handle or report, and the worker keeps
    # its state. CPython ignores it at start-up too, but this must not depend on how the worker was made.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if limits.file_size is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        size = limits.file_size if hard == resource.RLIM_INFINITY else min(limits.file_size, hard)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        done.append(f"files up to {size:,} bytes (RLIMIT_FSIZE)")
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
    wanted = CLONE_NEWIPC | CLONE_NEWPID | (0 if network else CLONE_NEWNET)
    try:
        unshare(CLONE_NEWUSER | wanted)
    except OSError as user_error:
        if uid != 0:
            return {
                "namespaces": f"NOT created: unshare(CLONE_NEWUSER): {user_error.strerror}",
                "network": "the host's network" + ("" if network else ": NOT isolated"),
                "processes": "NOT isolated: the host's PID namespace",
            }
        try:
            unshare(wanted)  # root can make the others without a user namespace
        except OSError as exc:
            return {
                "namespaces": f"NOT created: unshare: {exc.strerror}",
                "network": "the host's network" + ("" if network else ": NOT isolated"),
                "processes": "NOT isolated: the host's PID namespace",
            }
        made = "IPC, PID" + ("" if network else ", network") + f" (no user namespace: {user_error.strerror})"
    else:
        _map_ids(uid, gid)
        made = "user, IPC, PID" + ("" if network else ", network")
    _become_process_one()
    return {
        "namespaces": made,
        "network": "the host's network (granted)" if network else "a namespace of its own: no network",
        "processes": (
            "a PID namespace of its own: no process outside it can be seen, signalled, limited or reniced; "
            "all it starts ends with it"
        ),
    }


def _become_process_one() -> None:
    """Fork into the new PID namespace; return in the worker, while the others never return.

    Three processes: this one, left in the host's namespace, waits and ends as the worker ended, so the
    host sees one process; its child is process 1 of the namespace and only reaps (the kernel ignores
    signals that process 1 has no handler for, the CPU and file size limits' included, so the extension
    must not run there); its child, process 2, is the worker. Each waiting process holds no file but the
    pipe it reports on, so the host's pipes end with the worker. Process 1 dies with this process
    (``PR_SET_PDEATHSIG``), and everything in the namespace dies with process 1.
    """
    alive_read, alive_write = os.pipe()
    status_read, status_write = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(alive_write)
        os.close(status_read)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.set_blocking(alive_read, False)
        try:
            parent_gone = os.read(alive_read, 1) == b""
        except BlockingIOError:
            parent_gone = False  # the parent still holds the pipe open: from now on its death kills this one
        os.close(alive_read)
        if parent_gone:
            os._exit(_ORPHANED)
        worker = os.fork()
        if worker == 0:
            os.close(status_write)
            return
        _hold_only(status_write)
        while True:  # process 1 inherits every orphan of the namespace: reap them all until the worker ends
            pid, status = os.waitpid(-1, 0)
            if pid == worker:
                os.write(status_write, status.to_bytes(4, "little"))
                os._exit(0)
    os.close(alive_read)
    os.close(status_write)
    _hold_only(alive_write, status_read)
    _, own = os.waitpid(first, 0)
    reported = os.read(status_read, 4)
    status = int.from_bytes(reported, "little") if len(reported) == 4 else own
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _hold_only(*kept: int) -> None:
    """Close every file descriptor from 3 on but ``kept``."""
    start = 3
    for fd in sorted(kept):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _map_ids(uid: int, gid: int) -> None:
    """Keep the same user and group ids inside the new user namespace (without it they read as 65534)."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as file:
            file.write(text)


def _ports(profile: Profile) -> str:
    def text(ports: list[int] | None) -> str:
        return "any" if ports is None else (", ".join(map(str, sorted(ports))) or "none")

    return f"connect {text(profile.connect_ports)}, bind {text(profile.bind_ports)}"
