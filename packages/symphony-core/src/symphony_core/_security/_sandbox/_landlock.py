"""Landlock: the kernel's per-process access control for files, TCP ports and IPC scopes.

A ruleset lists what is *handled* (denied unless a rule allows it); rules allow rights beneath a folder
(or on one file) and on TCP ports. ``restrict`` applies it to the calling thread and every thread and
process it creates afterwards, for good. What each ABI version adds:

1. files: execute, read, write, list, create and remove each kind of entry;
2. renaming and linking across folders (``refer``);
3. truncating;
4. TCP ``bind`` and ``connect`` by port (not by address, not UDP);
5. ``ioctl`` on devices;
6. scoping: no signals to, and no abstract UNIX sockets of, processes outside the sandbox;
7. denials can be logged by the kernel's audit subsystem (nothing new to restrict).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from ._syscalls import LINUX, NUMBERS, syscall

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
BIND_TCP = 1 << 0  # ABI 4
CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

READ = READ_FILE | READ_DIR
WRITE = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SYM | MAKE_FIFO | REFER | TRUNCATE
"""Create, change and delete: what ``fs.write`` means (no devices, no sockets)."""
EXCHANGE = READ | WRITE_FILE | REMOVE_FILE | MAKE_REG | TRUNCATE
"""The shared-memory exchange folder: plain files only, no links, no folders."""
DEVICE = READ | WRITE_FILE | IOCTL_DEV
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_RULE_NET_PORT = 2


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _NetPortAttr(ctypes.Structure):
    _fields_ = (("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64))


def abi() -> int:
    """The Landlock ABI version this kernel offers; 0 when Landlock is missing or disabled."""
    if not LINUX or "landlock_create_ruleset" not in NUMBERS:
        return 0
    try:
        return syscall(
            "landlock_create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION)
        )
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP):
            return 0
        raise


def handled_fs(version: int) -> int:
    """Every file right the given ABI version knows: all of them are denied unless a rule allows them."""
    return _FS_BY_ABI.get(version, (1 << 16) - 1) if version > 0 else 0


@dataclass
class Ruleset:
    """What a worker may do, as Landlock rules; ``restrict`` applies it to the calling process."""

    version: int
    paths: dict[str, int] = field(default_factory=dict)
    """Path: rights beneath it (or on it, for a file)."""
    bind_ports: set[int] | None = field(default_factory=set)
    """Ports the worker may bind; None leaves binding unrestricted."""
    connect_ports: set[int] | None = field(default_factory=set)
    """Ports the worker may connect to; None leaves connecting unrestricted."""
    skipped: list[str] = field(default_factory=list)
    """Paths that had no rule because they did not exist or could not be opened (so they stay denied)."""

    def allow(self, paths: Iterable[str], rights: int) -> None:
        for path in paths:
            self.paths[path] = self.paths.get(path, 0) | rights

    def restrict(self) -> None:
        """Apply the rules to this process, for good. ``no_new_privs`` must already be set."""
        fs_rights = handled_fs(self.version)
        net_rights = 0
        if self.version >= 4:
            net_rights = (0 if self.bind_ports is None else BIND_TCP) | (
                0 if self.connect_ports is None else CONNECT_TCP
            )
        scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if self.version >= 6 else 0
        attr = _RulesetAttr(fs_rights, net_rights, scoped)
        size = ctypes.sizeof(_RulesetAttr) if self.version >= 6 else (16 if self.version >= 4 else 8)
        ruleset = syscall(
            "landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
        )
        try:
            for path, rights in sorted(self.paths.items()):
                self._add_path(ruleset, path, rights & fs_rights)
            ports = {BIND_TCP: self.bind_ports or set(), CONNECT_TCP: self.connect_ports or set()}
            for right, numbers in ports.items():
                for port in sorted(numbers) if net_rights & right else ():
                    rule = _NetPortAttr(right, port)
                    syscall(
                        "landlock_add_rule", ruleset, _RULE_NET_PORT, ctypes.byref(rule), ctypes.c_uint32(0)
                    )
            syscall("landlock_restrict_self", ruleset, ctypes.c_uint32(0))
        finally:
            os.close(ruleset)

    def _add_path(self, ruleset: int, path: str, rights: int) -> None:
        try:
            fd = open_without_symlinks(path)
        except OSError:
            self.skipped.append(path)
            return
        try:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                rights &= _FILE_RIGHTS
            if rights:
                rule = _PathBeneathAttr(rights, fd)
                syscall(
                    "landlock_add_rule", ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)
                )
        finally:
            os.close(fd)


def open_without_symlinks(path: str) -> int:
    """An ``O_PATH`` descriptor of absolute ``path``, refusing (``ELOOP``) a symlink at any of its steps.

    A rule holds for what its descriptor names: following a symlink that the extension planted in its own
    folders would hand it wherever the link points. Walked one step at a time with ``O_NOFOLLOW``, which
    every kernel with Landlock has (``openat2``'s ``RESOLVE_NO_SYMLINKS`` would do it in one call).
    """
    if not os.path.isabs(path):
        raise OSError(errno.EINVAL, f"not an absolute path: {path}")
    fd = os.open("/", os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
    try:
        for part in filter(None, path.split("/")):
            if part in (".", ".."):
                raise OSError(errno.EINVAL, f"a rule's path must be normal: {path}")
            step = os.open(part, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = step
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise OSError(errno.ELOOP, f"a symlink on the way to {path}")
    except BaseException:
        os.close(fd)
        raise
    return fd
