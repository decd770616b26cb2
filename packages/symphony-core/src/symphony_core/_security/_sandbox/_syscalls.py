"""The Linux system calls the sandbox needs and Python does not wrap, called through ctypes.

Only the standard library is used, so a worker can call these before it imports anything that could
start a thread. Every wrapper raises ``OSError`` with the kernel's errno when the call fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
from typing import Any

LINUX = sys.platform.startswith("linux")
MACHINE = platform.machine().lower()

# System call numbers: x86-64 has its own table; arm64 and the other newer ports share the generic one.
_X86_64 = """
    ioctl 16 socket 41 socketpair 53 clone 56 ptrace 101 syslog 103 capset 126 uselib 134 personality 135 vhangup 153
    pivot_root 155 adjtimex 159 chroot 161 acct 163 settimeofday 164 mount 165 umount2 166 swapon 167
    swapoff 168 reboot 169 iopl 172 ioperm 173 init_module 175 delete_module 176 quotactl 179
    lookup_dcookie 212 clock_settime 227 kexec_load 246 add_key 248 request_key 249 keyctl 250 unshare 272
    perf_event_open 298 name_to_handle_at 303 open_by_handle_at 304 clock_adjtime 305 setns 308
    process_vm_readv 310 process_vm_writev 311 kcmp 312 finit_module 313 kexec_file_load 320 bpf 321
    userfaultfd 323 io_uring_setup 425 io_uring_enter 426 io_uring_register 427 open_tree 428 move_mount 429
    fsopen 430 fsconfig 431 fsmount 432 fspick 433 clone3 435 pidfd_getfd 438 mount_setattr 442
    quotactl_fd 443 landlock_create_ruleset 444 landlock_add_rule 445 landlock_restrict_self 446
    open_tree_attr 467
"""
_GENERIC = """
    lookup_dcookie 18 ioctl 29 umount2 39 mount 40 pivot_root 41 chroot 51 vhangup 58 quotactl 60 acct 89
    capset 91 personality 92 unshare 97 kexec_load 104 init_module 105 delete_module 106 clock_settime 112
    syslog 116 ptrace 117 reboot 142 settimeofday 170 adjtimex 171 socket 198 socketpair 199 add_key 217 request_key 218
    keyctl 219 clone 220 swapon 224 swapoff 225 perf_event_open 241 name_to_handle_at 264
    open_by_handle_at 265 clock_adjtime 266 setns 268 process_vm_readv 270 process_vm_writev 271 kcmp 272
    finit_module 273 bpf 280 userfaultfd 282 kexec_file_load 294 io_uring_setup 425 io_uring_enter 426
    io_uring_register 427 open_tree 428 move_mount 429 fsopen 430 fsconfig 431 fsmount 432 fspick 433
    clone3 435 pidfd_getfd 438 mount_setattr 442 quotactl_fd 443 landlock_create_ruleset 444
    landlock_add_rule 445 landlock_restrict_self 446 open_tree_attr 467
"""
_NUMBERS = {
    table: {name: int(number) for name, number in zip(text.split()[::2], text.split()[1::2], strict=True)}
    for table, text in (("x86_64", _X86_64), ("generic", _GENERIC))
}
_TABLES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "generic", "arm64": "generic"}
AUDIT_ARCHES = {"x86_64": 0xC000003E, "generic": 0xC00000B7}  # the seccomp ``arch`` of each table

TABLE: str | None = _TABLES.get(MACHINE) if LINUX and sys.maxsize > 2**32 else None
"""Which system call table this machine uses, or None where the sandbox knows none (32-bit, other CPUs)."""
NUMBERS: dict[str, int] = _NUMBERS[TABLE] if TABLE else {}

# prctl options
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

# unshare(2) flags
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)

_libc: Any = None


def libc() -> Any:
    """The C library of this process, loaded once, with errno kept for ``ctypes.get_errno``."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
        _libc.prctl.restype = ctypes.c_int
        _libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _libc.unshare.restype = ctypes.c_int
        _libc.unshare.argtypes = [ctypes.c_int]
    return _libc


def _checked(result: int, what: str) -> int:
    if result < 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")
    return result


def syscall(name: str, *args: Any) -> int:
    """Call a system call by name (ctypes arguments), raising ``OSError`` when it fails."""
    number = NUMBERS.get(name)
    if number is None:
        raise OSError(38, f"{name}: not known on {MACHINE}")  # ENOSYS
    return _checked(int(libc().syscall(ctypes.c_long(number), *args)), name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """``prctl(2)``, raising ``OSError`` when it fails."""
    return _checked(int(libc().prctl(option, arg2, arg3, arg4, arg5)), f"prctl({option})")


def unshare(flags: int) -> None:
    """``unshare(2)``: move this (single-threaded) process into new namespaces."""
    _checked(int(libc().unshare(flags)), "unshare")


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def drop_capabilities() -> None:
    """Give up every capability: bounding set, ambient set, then effective, permitted and inheritable.

    After this even a process whose user id is 0 cannot override file permissions, and running a program
    cannot give capabilities back (the bounding set is empty).
    """
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as file:
        last = int(file.read())
    for capability in range(last + 1):
        try:
            prctl(PR_CAPBSET_DROP, capability)
        except OSError:  # EPERM without CAP_SETPCAP: nothing can be gained through exec anyway then
            break
    with contextlib.suppress(OSError):
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    syscall("capset", ctypes.byref(header), ctypes.byref(data))
