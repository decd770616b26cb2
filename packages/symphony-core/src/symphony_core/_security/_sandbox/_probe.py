"""What this kernel and platform can enforce for an isolated worker, found by trying each mechanism.

Nothing is assumed from version numbers: Landlock is asked for its ABI, seccomp and ``no_new_privs`` are
queried through ``prctl``, namespaces are created in a short-lived child process, and a test cgroup is made
and removed. The result says what a worker started now would enforce, and what it would not.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from . import _cgroups, _landlock, _seccomp
from ._syscalls import (
    CLONE_NEWNET,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    LINUX,
    MACHINE,
    PR_GET_NO_NEW_PRIVS,
    PR_GET_SECCOMP,
    TABLE,
    prctl,
)

_NAMESPACE_PROBE = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
codes = []
for flags in map(int, sys.argv[1:]):
    pid = os.fork()
    if pid == 0:
        os._exit(0 if libc.unshare(flags) == 0 else (ctypes.get_errno() or 1))
    codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print(" ".join(map(str, codes)))
"""


@dataclass(frozen=True)
class Mechanism:
    """One kernel mechanism: whether a worker can use it here, and what was found."""

    available: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"available": self.available, "detail": self.detail}


@dataclass(frozen=True)
class Capabilities:
    """What the isolated tier can enforce on this machine, mechanism by mechanism and concern by concern."""

    platform: str
    machine: str
    kernel: str
    root: bool
    landlock_abi: int
    mechanisms: dict[str, Mechanism] = field(default_factory=dict)

    @property
    def supported(self) -> bool:
        """Whether isolated workers can run here at all (Linux; elsewhere nothing would be enforced)."""
        return self.platform == "linux"

    def has(self, mechanism: str) -> bool:
        found = self.mechanisms.get(mechanism)
        return found is not None and found.available

    def enforced(self) -> dict[str, str]:
        """Concern: what a worker started now enforces about it (only what the probe found)."""
        if not self.supported:
            return {}
        abi = self.landlock_abi
        found: dict[str, str] = {}
        if abi:
            found["files"] = (
                f"Landlock ABI {abi}: reading, writing and listing outside the grant are refused by the kernel, "
                "native code included (a glob in a grant opens its whole folder to the kernel)"
            )
            found["programs"] = "Landlock: only granted programs can be started (exec)"
        if self.has("network_namespace"):
            found["network"] = "with no network grant: a network namespace of its own, no interface up"
        if self.has("pid_namespace"):
            found["processes_outside"] = (
                "a PID namespace of its own: no other process can be seen, signalled, limited, reniced or "
                "pinned, and all the worker starts is killed with it, even when the host is killed outright"
            )
        if abi >= 4:
            found["tcp_ports"] = (
                "with a network grant: TCP connect and bind only to the granted ports (Landlock)"
            )
        if abi >= 6:
            found["signals_and_abstract_sockets"] = (
                "Landlock scoping: no signals to, and no abstract UNIX sockets of, processes outside the worker"
            )
        if self.has("seccomp"):
            found["system_calls"] = (
                f"seccomp: {len(_seccomp.DENIED) + len(_seccomp.FALLBACK)} system calls refused (namespaces, "
                "mounts, ptrace, bpf, kernel modules, keyrings...); sockets other than TCP/UDP over IPv4/IPv6, "
                "netlink routes and connected UNIX socket pairs refused"
            )
        if self.has("no_new_privs"):
            privileges = "no_new_privs (set-user-id programs give nothing)"
            if self.has("user_namespace") or self.root:
                privileges += "; every capability dropped, root included"
            found["privileges"] = privileges
        if self.has("cgroup_memory"):
            found["memory"] = f"a ceiling per worker: {self.mechanisms['cgroup_memory'].detail}"
        if self.has("cgroup_pids"):
            found["processes"] = (
                f"a ceiling on processes and threads per worker: {self.mechanisms['cgroup_pids'].detail}"
            )
        elif not self.root:
            found["processes"] = "RLIMIT_NPROC (counts every process of the user, not only the worker's)"
        found["cpu_time"] = "RLIMIT_CPU"
        found["open_files"] = "RLIMIT_NOFILE"
        found["file_size"] = "RLIMIT_FSIZE: a write past it fails with EFBIG"
        found["disk"] = "a quota on the extension's {data} and {cache} together, counted by the host"
        found["environment"] = (
            "scrubbed: only granted variables, PATH, HOME, LANG, TMPDIR and POLARS_OOC_SPILL_DIR"
        )
        return found

    def not_enforced(self) -> list[str]:
        """What a worker started now does not enforce, in words a person can act on."""
        if not self.supported:
            return [
                f"nothing: the isolated tier needs Linux; on {self.platform} extensions run under the in-process "
                "guard only, which is not a sandbox"
            ]
        gaps = []
        abi = self.landlock_abi
        if not abi:
            gaps.append(f"files: Landlock is not available ({self.mechanisms['landlock'].detail})")
        if not self.has("network_namespace"):
            gaps.append(f"network: no network namespace ({self.mechanisms['network_namespace'].detail})")
        if not self.has("pid_namespace"):
            gaps.append(
                f"other processes: no PID namespace ({self.mechanisms['pid_namespace'].detail}): a worker can "
                "limit or renice processes of the same user, and what it starts can outlive a host killed outright"
            )
        if abi < 4:
            gaps.append("TCP ports: a network grant opens every port (Landlock ABI >= 4 needed)")
        gaps.append(
            "network grants: host names and addresses are not enforced, only TCP ports; UDP is not restricted"
        )
        if abi < 6:
            gaps.append("signals and abstract UNIX sockets: not scoped (Landlock ABI >= 6 needed)")
        if not self.has("seccomp"):
            gaps.append(f"system calls: no seccomp filter ({self.mechanisms['seccomp'].detail})")
        if not self.has("cgroup_memory"):
            gaps.append(f"memory: not limited ({self.mechanisms['cgroup_memory'].detail})")
        if not self.has("cgroup_pids"):
            gaps.append(
                "processes: not limited for root (RLIMIT_NPROC does not apply to root)"
                if self.root
                else f"processes: only RLIMIT_NPROC ({self.mechanisms['cgroup_pids'].detail})"
            )
        gaps.append(
            "GPU grants: device files are opened to the worker, but this has not been tested on a GPU"
        )
        gaps.append("file metadata (stat) and already open file descriptors are not restricted by Landlock")
        gaps.append(
            "disk: the quota is counted from outside, every 0.5 s and after each call; a burst between two "
            "counts can pass it by one file size limit per file written"
        )
        return gaps

    def summary(self) -> str:
        """One line: which mechanisms an isolated worker uses here and which are missing."""
        if not self.supported:
            return self.not_enforced()[0]
        names = {
            "landlock": f"Landlock ABI {self.landlock_abi}",
            "seccomp": "seccomp",
            "no_new_privs": "no_new_privs",
            "user_namespace": "a user namespace",
            "network_namespace": "a network namespace",
            "pid_namespace": "a PID namespace",
            "cgroup_memory": "a cgroup memory limit",
            "cgroup_pids": "a cgroup process limit",
        }
        used = [text for name, text in names.items() if self.has(name)]
        missing = [text.removeprefix("a ") for name, text in names.items() if not self.has(name)]
        return (
            "Host(isolation='isolated'): worker processes restricted by the kernel with "
            + ", ".join(used)
            + ", resource limits and a "
            "scrubbed environment" + (f"; not available here: {', '.join(missing)}" if missing else "")
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "machine": self.machine,
            "kernel": self.kernel,
            "root": self.root,
            "supported": self.supported,
            "landlock_abi": self.landlock_abi,
            "mechanisms": {name: mechanism.as_json() for name, mechanism in self.mechanisms.items()},
            "enforced": self.enforced(),
            "not_enforced": self.not_enforced(),
        }


@cache
def probe() -> Capabilities:
    """Find out what this machine enforces (once per process: it starts a child and makes a test cgroup)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not LINUX:
        return Capabilities(sys.platform, MACHINE, platform.release(), root, 0)
    abi = _probe_landlock()
    mechanisms = {
        "landlock": Mechanism(
            abi > 0, f"ABI {abi}" if abi else "not offered by this kernel (or disabled at boot: lsm=landlock)"
        ),
        "seccomp": _probe_seccomp(),
        "no_new_privs": _probe_no_new_privs(),
        **_probe_namespaces(root),
    }
    available, reasons = _cgroups.places()
    for controller in _cgroups.CONTROLLERS:
        place = available.get(controller)
        mechanisms[f"cgroup_{controller}"] = (
            Mechanism(True, place.describe())
            if place
            else Mechanism(False, reasons.get(controller, "not found"))
        )
    return Capabilities("linux", MACHINE, platform.release(), root, abi, mechanisms)


def _probe_landlock() -> int:
    try:
        return _landlock.abi()
    except OSError:
        return 0


def _probe_seccomp() -> Mechanism:
    if not _seccomp.supported():
        return Mechanism(False, f"no system call table for {MACHINE} in Symphony's filter")
    try:
        prctl(PR_GET_SECCOMP)
    except OSError as exc:
        return Mechanism(False, f"prctl(PR_GET_SECCOMP): {exc.strerror}")
    try:
        with open("/proc/sys/kernel/seccomp/actions_avail", encoding="ascii") as file:
            actions = file.read().split()
    except OSError:
        actions = ["errno"]  # the file is newer than seccomp filters; without it, errno is still there
    if "errno" not in actions:
        return Mechanism(False, "the kernel's seccomp has no errno action")
    return Mechanism(True, f"filter mode, {TABLE} system call table")


def _probe_no_new_privs() -> Mechanism:
    try:
        prctl(PR_GET_NO_NEW_PRIVS)
    except OSError as exc:
        return Mechanism(False, f"prctl(PR_GET_NO_NEW_PRIVS): {exc.strerror}")
    return Mechanism(True, "prctl(PR_SET_NO_NEW_PRIVS)")


def _probe_namespaces(root: bool) -> dict[str, Mechanism]:
    tries = {
        "user+net": CLONE_NEWUSER | CLONE_NEWNET,
        "user": CLONE_NEWUSER,
        "net": CLONE_NEWNET,
        "user+pid": CLONE_NEWUSER | CLONE_NEWPID,
        "pid": CLONE_NEWPID,
    }
    command = [sys.executable, "-I", "-S", "-c", _NAMESPACE_PROBE, *map(str, tries.values())]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
        codes = dict(zip(tries, map(int, done.stdout.split()), strict=True))
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        failed = Mechanism(False, f"the probe child failed: {exc}")
        return {"user_namespace": failed, "network_namespace": failed, "pid_namespace": failed}

    def why(code: int) -> str:
        return os.strerror(code) if code > 0 else f"exit status {code}"

    user = (
        Mechanism(True, "unshare(CLONE_NEWUSER) works")
        if codes["user"] == 0
        else Mechanism(False, f"unshare(CLONE_NEWUSER): {why(codes['user'])}")
    )
    if codes["user+net"] == 0:
        network = Mechanism(True, "unshare(CLONE_NEWUSER | CLONE_NEWNET) works")
    elif codes["net"] == 0 and root:
        network = Mechanism(True, "unshare(CLONE_NEWNET) works as root (no user namespace)")
    else:
        network = Mechanism(False, f"unshare(CLONE_NEWNET): {why(codes['net'] or codes['user+net'])}")
    if codes["user+pid"] == 0:
        pid = Mechanism(True, "unshare(CLONE_NEWUSER | CLONE_NEWPID) works")
    elif codes["pid"] == 0 and root:
        pid = Mechanism(True, "unshare(CLONE_NEWPID) works as root (no user namespace)")
    else:
        pid = Mechanism(False, f"unshare(CLONE_NEWPID): {why(codes['pid'] or codes['user+pid'])}")
    return {"user_namespace": user, "network_namespace": network, "pid_namespace": pid}
