"""A seccomp deny-list: system calls a sandboxed extension never needs, refused by the kernel.

The filter is a classic BPF program, built here and installed with ``prctl(PR_SET_SECCOMP)``. It is a
deny-list, not an allow-list: it removes kernel attack surface and the ways out of the other mechanisms
(new namespaces, mounts, tracing other processes, loading kernel code, UNIX sockets that reach services
outside the sandbox); everything else is allowed. Denied calls fail with ``EPERM`` (``ENOSYS`` for those a
library is expected to fall back from: ``clone3``, io_uring), so a library that probes for them copes.
"""

from __future__ import annotations

import ctypes
import errno
import struct

from ._syscalls import (
    AUDIT_ARCHES,
    NAMESPACE_FLAGS,
    NUMBERS,
    PR_SET_SECCOMP,
    SECCOMP_MODE_FILTER,
    TABLE,
    prctl,
)

DENIED = (
    # tracing and reading other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # namespaces and mounts: a way around Landlock and the network namespace
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "open_tree_attr",
    "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # kernel code, keys, tracing, and exploit helpers
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "init_module",
    "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    # the machine itself
    "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "quotactl_fd", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "vhangup", "iopl", "ioperm", "uselib", "lookup_dcookie",
    # file handles bypass path checks
    "name_to_handle_at", "open_by_handle_at",
)  # fmt: skip
"""System calls refused with EPERM."""
FALLBACK = ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register")
"""System calls refused with ENOSYS: C libraries fall back (``clone3`` to ``clone``, io_uring to read/write).
``clone3`` passes its flags in memory seccomp cannot read, so refusing it is what keeps ``clone`` (whose
flags it can read) the only way to create a thread or process."""
SOCKET_FAMILIES = {"AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}
"""The only socket families a worker may create; others (UNIX sockets, packet, vsock, crypto) are refused."""
IP_PROTOCOLS = {"default": 0, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17}
"""The protocols of the IP sockets a worker may create. Landlock's port rules hold for TCP: MPTCP (262),
SCTP and the others would reach any port, so they are refused."""
NETLINK_PROTOCOLS = {"NETLINK_ROUTE": 0}
"""Netlink for reading addresses and routes (name resolution asks for them); not socket diagnostics,
audit, or the kernel's device events."""
SOCKETPAIR_TYPES = {"SOCK_STREAM": 1, "SOCK_SEQPACKET": 5}
"""``socketpair`` of connected UNIX sockets only: a datagram socket of a pair can still ``sendto`` any
UNIX socket on the file system (``/dev/log``, a session bus), which neither Landlock nor a network
namespace stops."""
IOCTLS = {"TIOCSTI": 0x5412, "TIOCLINUX": 0x541C}
"""Terminal ``ioctl`` requests refused: they type into, or read from, the terminal of someone else."""

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_AND = 0x54
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000
_AF_UNIX = 1
_SOCK_TYPE_MASK = 0xF
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARGS = 0, 4, 16


class _Program(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def supported() -> bool:
    """Whether this CPU's system call table is known here (seccomp itself is probed by the caller)."""
    return TABLE is not None


def program() -> bytes:
    """The filter as ``struct sock_filter`` entries (8 bytes each), ready for the kernel."""
    assert TABLE is not None
    code: list[tuple[int, int, int | str, int | str]] = []  # (op, k, jump if true, jump if false)
    eperm, enosys = "eperm", "enosys"

    def load(offset: int) -> None:
        code.append((_LD_W_ABS, offset, 0, 0))

    def jump(op: int, k: int, yes: int | str, no: int | str = 0) -> None:
        code.append((op, k, yes, no))

    load(_OFFSET_ARCH)
    jump(_JEQ, AUDIT_ARCHES[TABLE], 0, enosys)  # another ABI (i386 through int 0x80): refuse all of it
    load(_OFFSET_NR)
    if TABLE == "x86_64":
        jump(_JGE, _X32_BIT, enosys)  # the x32 ABI numbers would slip past the checks below
    for name in DENIED:
        if name in NUMBERS:
            jump(_JEQ, NUMBERS[name], eperm)
    for name in FALLBACK:
        jump(_JEQ, NUMBERS[name], enosys)
    jump(_JEQ, NUMBERS["clone"], "clone")
    jump(_JEQ, NUMBERS["socket"], "socket")
    jump(_JEQ, NUMBERS["socketpair"], "socketpair")
    jump(_JEQ, NUMBERS["ioctl"], "ioctl")
    labels: dict[str, int] = {}

    def label(name: str) -> None:
        labels[name] = len(code)

    code.append((_RET, _ALLOW, 0, 0))  # jumps go forward only: each block below ends with its own allow
    label("clone")  # clone's first argument holds its flags: no new namespaces
    load(_OFFSET_ARGS)
    jump(_JSET, NAMESPACE_FLAGS, eperm)
    code.append((_RET, _ALLOW, 0, 0))
    label("socket")  # the low 32 bits of each argument: the kernel reads family and protocol as ints
    load(_OFFSET_ARGS)
    jump(_JEQ, SOCKET_FAMILIES["AF_INET"], "ip")
    jump(_JEQ, SOCKET_FAMILIES["AF_INET6"], "ip")
    jump(_JEQ, SOCKET_FAMILIES["AF_NETLINK"], "netlink")
    code.append((_RET, _ERRNO | errno.EACCES, 0, 0))
    label("ip")
    load(_OFFSET_ARGS + 16)
    for protocol in IP_PROTOCOLS.values():
        jump(_JEQ, protocol, "allow")
    code.append((_RET, _ERRNO | errno.EACCES, 0, 0))
    label("netlink")
    load(_OFFSET_ARGS + 16)
    for protocol in NETLINK_PROTOCOLS.values():
        jump(_JEQ, protocol, "allow")
    code.append((_RET, _ERRNO | errno.EACCES, 0, 0))
    label("socketpair")
    load(_OFFSET_ARGS)
    jump(_JEQ, _AF_UNIX, 0, "refuse_socket")
    load(_OFFSET_ARGS + 8)
    code.append((_AND, _SOCK_TYPE_MASK, 0, 0))  # without SOCK_NONBLOCK and SOCK_CLOEXEC
    for kind in SOCKETPAIR_TYPES.values():
        jump(_JEQ, kind, "allow")
    label("refuse_socket")
    code.append((_RET, _ERRNO | errno.EACCES, 0, 0))
    label("ioctl")  # the request is an unsigned int to the kernel: its low 32 bits are all that count
    load(_OFFSET_ARGS + 8)
    for request in IOCTLS.values():
        jump(_JEQ, request, eperm)
    code.append((_RET, _ALLOW, 0, 0))
    label("allow")
    code.append((_RET, _ALLOW, 0, 0))
    label(eperm)
    code.append((_RET, _ERRNO | errno.EPERM, 0, 0))
    label(enosys)
    code.append((_RET, _ERRNO | errno.ENOSYS, 0, 0))

    out = bytearray()
    for at, (op, k, yes, no) in enumerate(code):
        targets = [labels[t] - at - 1 if isinstance(t, str) else t for t in (yes, no)]
        assert all(0 <= t < 256 for t in targets), "a jump of the seccomp filter is out of range"
        out += struct.pack("=HBBI", op, targets[0], targets[1], k)
    return bytes(out)


def install() -> int:
    """Install the filter on this thread (and all it creates); return how many system calls it refuses.

    ``no_new_privs`` must already be set. The filter cannot be removed.
    """
    code = program()
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _Program(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog))
    return len([name for name in DENIED if name in NUMBERS]) + len(FALLBACK)
