"""The guard: in-process permission checks for trusted extensions, and a learning mode that proposes them.

The guard is NOT a sandbox. It sees only what CPython's audit hooks report, and stops only what it sees:

- ``open`` (``open()``, ``io.open_code``, ``os.open``): ``fs.read`` and/or ``fs.write``, from the flags;
- ``os.remove``, ``os.rename``/``os.replace``, ``os.mkdir``, ``os.rmdir``, ``os.chmod``, ``os.chown``,
  ``os.link``, ``os.symlink``, ``os.truncate``, ``os.utime``: ``fs.write``;
- ``socket.connect`` and ``socket.sendto`` (``net.connect``), ``socket.bind`` (``net.listen``) for IPv4 and
  IPv6. A host name in a grant covers the addresses it resolves to when the extension looks it up (the
  guard repeats the lookup; round-robin DNS can make the two answers differ). A UNIX socket path is a file:
  connecting or binding needs ``fs.write`` on it. Other addresses (abstract UNIX names, netlink) count as
  host ``repr(address)``, port 0: only a ``*:*`` grant lets them through;
- ``subprocess.Popen``, ``os.exec*``, ``os.posix_spawn*``, ``os.spawn*``, ``os.system``: ``subprocess``;
  ``os.system`` starts a shell, so it needs ``sh`` (or ``*``). ``os.fork`` is allowed: the child runs the
  same code under the same guard, and its ``exec`` is checked.

It cannot see, so it cannot stop: native code doing its own I/O (polars and onnxruntime open files
themselves, ``ctypes`` calls libc directly), environment variable reads (CPython audits neither
``os.getenv`` nor ``os.environ``: ``env`` grants are not enforced here), GPU use, ``stat`` and folder
listings, and ``_posixsubprocess.fork_exec`` called directly (multiprocessing's spawn and forkserver).
CPython's ``open`` event leaves out ``dir_fd``, so ``os.open(name, dir_fd=...)`` (``shutil.rmtree``) is
judged as if ``name`` were relative to the current folder. Use the isolated tier for code you do not trust.

Always allowed, so the interpreter keeps working: reading ``sys.prefix``, ``sys.exec_prefix``,
``sys.base_prefix``, ``sys.base_exec_prefix`` and the ``sys.path`` folders (as they are when the policy is
built), ``/dev/null`` and ``/dev/urandom``; writing ``/dev/null`` and bytecode caches (the ``__pycache__``
folders under those, and ``sys.pycache_prefix``). Paths are POSIX; ``dir_fd`` is resolved through ``/proc``.

Symlinks: what an extension uses is resolved when it is checked, so a link leads where it points and is
judged there. What a grant names is resolved when the policy is built, without following any link in a
folder the extension can write (its ``{data}`` and ``{cache}``, and the folders its write grants open),
nor a ``{data}`` or ``{cache}`` that is itself a link: those it could have planted, and a grant must not
grow with them. Beyond ``{data}`` and ``{cache}``, no grant reaches into ``SYMPHONY_HOME`` (the host's
grants, policy and config), whatever it covers.

Identity: code runs under an extension's identity inside ``acting_as(policy)``. Nested calls apply the
innermost policy, ``acting_as(None)`` runs host code unchecked, asyncio tasks created inside inherit the
identity (so does ``asyncio.to_thread``), new threads and ``run_in_executor`` do not.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from symphony_core._model._errors import GuardDenied
from symphony_core._model._hooks import PermissionEvent
from symphony_core._model._public import public
from symphony_core._store._home import Home

from ._reach import Roots, inside_any, opened, resolve

if TYPE_CHECKING:
    from symphony_core._model._permissions import Permission

Access = tuple[str, str]
"""One use of a resource: a permission kind (``fs.read``...) and the resource (path, ``host:port``...)."""

_FIELDS = {  # the manifest field that lists the resources of each kind
    "fs.read": "paths",
    "fs.write": "paths",
    "net.connect": "hosts",
    "net.listen": "hosts",
    "subprocess": "commands",
}
_SHELL = "/bin/sh"
_GLOBS = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
_REASON = "TODO: say why"
_BELOW = "(?:/.*)?"  # the pattern of a plain path: itself and everything below it
_NOT_A_SANDBOX = "the in-process guard is not a sandbox: it checks only what Python reports"


@dataclass(frozen=True, eq=False, kw_only=True)
class Policy:
    """What one extension may touch, compiled once for the guard's checks on every audited call."""

    extension: str
    permissions: tuple[Permission, ...] = ()
    data: Path
    cache: Path
    home: Path = field(default_factory=Path.home)
    symphony_home: Path | None = None
    """The host's own folder: beyond ``data`` and ``cache``, no grant reaches into it."""
    on_event: Callable[[PermissionEvent], object] | None = None
    """Called with each denial (for the audit log and ``symphony_permission_event``), unchecked."""
    _roots: Roots = field(init=False, repr=False)
    _variables: tuple[tuple[str, str], ...] = field(init=False, repr=False)
    _always: dict[str, _Paths] = field(init=False, repr=False)
    _granted: dict[str, _Paths] = field(init=False, repr=False)
    _hosts: dict[str, list[tuple[str, str]]] = field(init=False, repr=False)
    _commands: tuple[str, ...] = field(init=False, repr=False)
    _names: dict[str, str] = field(init=False, repr=False, default_factory=dict)  # address: host name

    @classmethod
    def for_extension(
        cls,
        extension: str,
        permissions: tuple[Permission, ...],
        symphony_home: Home,
        on_event: Callable[[PermissionEvent], object] | None = None,
    ) -> Policy:
        """The policy of an extension whose ``{data}`` and ``{cache}`` live under ``symphony_home``."""
        return cls(
            extension=extension,
            permissions=permissions,
            data=symphony_home.data_dir(extension),
            cache=symphony_home.extension_cache_dir(extension),
            symphony_home=symphony_home.root,
            on_event=on_event,
        )

    def __post_init__(self) -> None:
        found: dict[str, list[str]] = {kind: [] for kind in _FIELDS}
        for permission in self.permissions:
            if permission.type in _FIELDS:  # env and gpu grants cannot be checked here
                found[permission.type] += getattr(permission, _FIELDS[permission.type])
        roots = Roots.of_folders(self.data, self.cache, self.home, self.symphony_home)
        object.__setattr__(self, "_roots", roots)
        object.__setattr__(self, "_variables", roots.variables())
        # Grants are resolved without following a symlink where the extension can write (it could have
        # planted it): its own folders, and the folders its write grants open.
        own = inside_any((roots.data, roots.cache))
        writable = (
            roots.data,
            roots.cache,
            *(resolve(opened(roots.expand(p)), own) for p in found["fs.write"]),
        )
        compiled = {
            "_always": _interpreter_needs(tuple(sys.path), sys.pycache_prefix, writable),
            "_granted": {
                kind: _compile(map(roots.expand, found[kind]), inside_any(writable))
                for kind in ("fs.read", "fs.write")
            },
            "_hosts": {
                kind: [_split(entry) for entry in found[kind]] for kind in ("net.connect", "net.listen")
            },
            "_commands": tuple(found["subprocess"]),
        }
        for name, value in compiled.items():
            object.__setattr__(self, name, value)

    def allows_read(self, path: str | os.PathLike[str]) -> bool:
        """Whether the extension may read ``path`` (symlinks resolved, interpreter folders included)."""
        return self._allows("fs.read", os.path.realpath(path))

    def allows_write(self, path: str | os.PathLike[str]) -> bool:
        """Whether the extension may create, change or delete ``path`` (symlinks resolved)."""
        return self._allows("fs.write", os.path.realpath(path))

    def allows_connect(self, host: str, port: int) -> bool:
        """Whether the extension may connect to ``host:port``."""
        return self._allows("net.connect", _join(host, port))

    def allows_listen(self, host: str, port: int) -> bool:
        """Whether the extension may bind (and so listen) on ``host:port``."""
        return self._allows("net.listen", _join(host, port))

    def allows_subprocess(self, executable: str | os.PathLike[str]) -> bool:
        """Whether the extension may start ``executable`` (a program name or a path)."""
        return self._allows("subprocess", os.fsdecode(executable))

    def _allows(self, kind: str, resource: str) -> bool:
        if kind == "subprocess":
            return _runs(self._commands, resource)
        if kind in self._hosts:
            return self._reaches(self._hosts[kind], resource)
        if self._always[kind].match(resource):
            return True
        return self._granted[kind].match(resource) and not self._roots.host_state(resource)

    def _expand(self, path: str) -> str:
        return self._roots.expand(path)

    def _reaches(self, patterns: list[tuple[str, str]], resource: str) -> bool:
        host, port = _split(resource)
        hosts = (host, self._names.get(host, host))
        return any(fnmatchcase(port, p) and any(fnmatchcase(h, hp) for h in hosts) for hp, p in patterns)

    def _portable(self, kind: str, resource: str) -> str:
        """How a manifest names ``resource``: variables for the extension's folders, host names, programs."""
        if kind == "subprocess":
            return os.path.basename(resource)
        if kind.startswith("net."):
            host, port = _split(resource)
            return _join(self._names.get(host, host), port)
        for name, root in self._variables:
            if resource == root or resource.startswith(root + "/"):
                return "{" + name + "}" + resource[len(root) :]
        return resource

    def _deny(self, kind: str, resource: str) -> NoReturn:
        value = json.dumps(self._portable(kind, resource))
        error = GuardDenied(
            f"{kind} of {resource} was not granted ({_NOT_A_SANDBOX})",
            extension=self.extension,
            hint=f"ask for it in symphony.toml: [[permissions]] type = '{kind}' {_FIELDS[kind]} = [{value}]",
        )
        error.errno = errno.EACCES
        try:
            if self.on_event is not None:
                self.on_event(PermissionEvent(self.extension, "denied", kind, resource, actor="guard"))
        finally:
            raise error  # even when the observer fails: its error must not replace the denial


class Recorder:
    """What an extension touched while learning, and the manifest permissions that would allow it."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.accesses: set[Access] = set()

    def proposal(self) -> list[dict[str, Any]]:
        """The permissions to ask for, as manifest data.

        Files are grouped by folder, and the extension's own folders become ``{data}``, ``{cache}`` and
        ``{home}``; each reason is a placeholder the manifest's permission models refuse until the author
        writes why the extension needs the access.
        """
        roots = {"{" + name + "}" for name, _ in self.policy._variables}
        wanted: dict[str, set[str]] = {kind: set() for kind in _FIELDS}
        for kind, resource in self.accesses:
            value = self.policy._portable(kind, resource)
            wanted[kind].add(
                os.path.dirname(value) if kind.startswith("fs.") and value not in roots else value
            )
        proposal = []
        for kind, values in wanted.items():
            kept: list[str] = []
            for value in sorted(values):
                if not any(value.startswith(outer + "/") for outer in kept):
                    kept.append(value)
            if kept:
                proposal.append({"type": kind, _FIELDS[kind]: kept, "reason": _REASON})
        return proposal

    def toml(self) -> str:
        """The proposal as ``[[permissions]]`` tables to paste into ``symphony.toml``."""
        import tomli_w

        return (
            "# Proposed by Symphony's learning mode from one run. The guard is not a sandbox: it saw only\n"
            "# what Python reported, not native code, environment variables or GPU use. Review every entry.\n"
            "\n" + tomli_w.dumps({"permissions": self.proposal()})
        )

    def _see(self, kind: str, resource: str) -> None:
        if kind not in self.policy._always or not self.policy._always[kind].match(resource):
            # a host name is recorded as the extension used it, before later lookups can rename the address
            self.accesses.add(
                (kind, self.policy._portable(kind, resource) if kind.startswith("net.") else resource)
            )


_ACTIVE: ContextVar[tuple[Policy, Recorder | None] | None] = ContextVar("symphony_guard", default=None)
_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Add the guard's audit hook to this process, once.

    It cannot be removed; outside ``acting_as`` and ``learn`` it costs one ContextVar read per audited event.
    """
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True


@contextlib.contextmanager
def acting_as(policy: Policy | None) -> Iterator[None]:
    """Run the body under ``policy``'s extension identity, denying what it was not granted.

    ``None`` runs the body as the host, unchecked (for host code an extension calls back into).
    The guard is not a sandbox: see this module's documentation for what it cannot see.
    """
    with _activate(None if policy is None else (policy, None)):
        yield


@contextlib.contextmanager
def learn(policy: Policy, recorder: Recorder | None = None) -> Iterator[Recorder]:
    """Run the body under ``policy``'s extension identity, allowing everything and recording what it uses.

    Pass the ``recorder`` of an earlier ``learn`` to go on recording into it.
    """
    recorder = recorder or Recorder(policy)
    with _activate((policy, recorder)):
        yield recorder


@contextlib.contextmanager
def _activate(active: tuple[Policy, Recorder | None] | None) -> Iterator[None]:
    if active is not None and not _installed:  # without the hook, nothing is checked: as under None
        install()
    token = _ACTIVE.set(active)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@public
def check_access(kind: str, path: str | os.PathLike[str]) -> None:
    """Refuse (``GuardDenied``) unless the extension whose code is running may use ``path`` as ``kind``.

    ``kind`` is ``fs.read`` or ``fs.write``. The public packages call this before handing a path to
    native code the audit hooks cannot see (a polars scan, an onnxruntime model load), so grants hold
    for those paths too. Symlinks are resolved first. Outside extension code it allows everything; in
    learning mode it records the use.
    """
    active = _ACTIVE.get()
    if active is None:
        return
    policy, recorder = active
    resource = os.path.realpath(os.fspath(path))
    token = _ACTIVE.set(None)
    try:
        if recorder is not None:
            recorder._see(kind, resource)
        elif not policy._allows(kind, resource):
            policy._deny(kind, resource)
    finally:
        _ACTIVE.reset(token)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    active = _ACTIVE.get()
    if active is None:
        return
    check = _CHECKS.get(event)
    if check is None:
        return
    policy, recorder = active
    token = _ACTIVE.set(None)  # what the check does itself (realpath, lookups, on_event) is not checked
    try:
        for kind, resource in check(policy, args):
            if recorder is not None:
                recorder._see(kind, resource)
            elif not policy._allows(kind, resource):
                policy._deny(kind, resource)
    finally:
        _ACTIVE.reset(token)


def _real(path: Any, dir_fd: Any = None) -> str | None:
    """The resolved absolute path an audited call names; None for a file descriptor already open."""
    if isinstance(path, int):
        return None
    name = os.fsdecode(path)
    if isinstance(dir_fd, int) and dir_fd >= 0:
        name = os.path.join(f"/proc/self/fd/{dir_fd}", name)
    return os.path.realpath(name)


def _on_open(policy: Policy, args: tuple[Any, ...]) -> list[Access]:
    path, flags = _real(args[0]), args[2]
    if path is None:
        return []
    access = flags & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
    uses = []
    if access != os.O_WRONLY:
        uses.append(("fs.read", path))
    if access != os.O_RDONLY or flags & (os.O_CREAT | os.O_TRUNC | os.O_APPEND):
        uses.append(("fs.write", path))
    return uses


def _on_change(
    places: tuple[tuple[int, int | None], ...], policy: Policy, args: tuple[Any, ...]
) -> list[Access]:
    paths = (_real(args[at], None if fd is None else args[fd]) for at, fd in places)
    return [("fs.write", path) for path in paths if path is not None]


def _on_socket(kind: str, policy: Policy, args: tuple[Any, ...]) -> list[Access]:
    address = args[1]
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
        return [(kind, _join(str(address[0]) or "0.0.0.0", address[1]))]
    if isinstance(address, (str, bytes)) and os.fsdecode(address)[:1] not in ("", "\0"):
        return [("fs.write", os.path.realpath(os.fsdecode(address)))]
    return [(kind, _join(repr(address), 0))]


def _on_lookup(policy: Policy, args: tuple[Any, ...]) -> list[Access]:
    import socket  # here: a host whose extensions never look up a name does not import it at their start

    host = args[0].decode() if isinstance(args[0], bytes) else args[0]
    if isinstance(host, str):
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            return []
        with contextlib.suppress(OSError):
            for *_, address in socket.getaddrinfo(host, args[1]):
                policy._names[str(address[0])] = host
    return []


def _on_program(at: int, policy: Policy, args: tuple[Any, ...]) -> list[Access]:
    return [("subprocess", os.fsdecode(args[at]))]


_CHANGES: dict[str, tuple[tuple[int, int | None], ...]] = {  # event: (path index, dir_fd index), ...
    "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),),
    "os.link": ((1, 3),),
    "os.mkdir": ((0, 2),),
    "os.remove": ((0, 1),),
    "os.rename": ((0, 2), (1, 3)),
    "os.rmdir": ((0, 1),),
    "os.symlink": ((1, 2),),
    "os.truncate": ((0, None),),
    "os.utime": ((0, 3),),
}
_CHECKS: dict[str, Callable[[Policy, tuple[Any, ...]], list[Access]]] = {
    **{event: partial(_on_change, places) for event, places in _CHANGES.items()},
    "open": _on_open,
    "socket.connect": partial(_on_socket, "net.connect"),
    "socket.sendto": partial(_on_socket, "net.connect"),
    "socket.bind": partial(_on_socket, "net.listen"),
    "socket.getaddrinfo": _on_lookup,
    "subprocess.Popen": partial(_on_program, 0),
    "os.exec": partial(_on_program, 0),
    "os.posix_spawn": partial(_on_program, 0),
    "os.spawn": partial(_on_program, 1),
    "os.system": lambda policy, args: [("subprocess", _SHELL)],
}


def prepare() -> None:
    """Resolve what the interpreter itself reads and writes, as the first guarded start of a process
    would (`Host.prepare`)."""
    _interpreter_needs_anywhere(tuple(sys.path), sys.pycache_prefix)


def _interpreter_needs(
    path: tuple[str, ...], pycache_prefix: str | None, writable: tuple[str, ...]
) -> dict[str, _Paths]:
    """What the interpreter itself must read and write (imports, bytecode); ``writable`` as for ``_compile``.

    Resolved once for every extension, following every symlink (the first start of each extension
    paid for it again), and resolved again only for ``writable`` that holds one of the symlinks followed:
    ``resolve`` asks ``planted`` about nothing else, so for any other ``writable`` the result is the same."""
    needs, links = _interpreter_needs_anywhere(path, pycache_prefix)
    if any(map(inside_any(writable), links)):
        return _interpreter_needs_beside(path, pycache_prefix, writable)
    return needs


@functools.lru_cache(maxsize=8)
def _interpreter_needs_anywhere(
    path: tuple[str, ...], pycache_prefix: str | None
) -> tuple[dict[str, _Paths], frozenset[str]]:
    """``_interpreter_needs`` with every symlink followed, and the symlinks followed."""
    links: set[str] = set()

    def followed(link: str) -> bool:  # resolve asks about each symlink it would follow
        links.add(link)
        return False

    return _interpreter_paths(path, pycache_prefix, followed), frozenset(links)


@functools.lru_cache(maxsize=64)
def _interpreter_needs_beside(
    path: tuple[str, ...], pycache_prefix: str | None, writable: tuple[str, ...]
) -> dict[str, _Paths]:
    """``_interpreter_needs`` for folders reached through a symlink in ``writable``, not followed there."""
    return _interpreter_paths(path, pycache_prefix, inside_any(writable))


def _interpreter_paths(
    path: tuple[str, ...], pycache_prefix: str | None, planted: Callable[[str], bool]
) -> dict[str, _Paths]:
    interpreter = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, *path} - {""}
    caches = [f"{folder}/**/__pycache__{tail}" for folder in interpreter for tail in ("", "/*")]
    bytecode = [pycache_prefix or "", "/dev/null"]
    resolved: dict[str, str] = {}  # both lists name the same folders: each is resolved once
    return {
        "fs.read": _compile([*interpreter, *bytecode, "/dev/urandom"], planted, resolved),
        "fs.write": _compile([*caches, *bytecode], planted, resolved),
    }


class _Paths:
    """Granted paths, as ``_compile`` reads them: folders granted with everything below them, matched by
    their prefix, and one regex for the other patterns, compiled when a path first needs it.

    Most grants, and everything the interpreter reads, are such folders. A policy is built on each
    extension's first start, where compiling them into one regex cost more than the rest of the start."""

    __slots__ = ("_below", "_folders", "_regex", "_source")

    def __init__(self, folders: Iterable[str], source: str) -> None:
        self._folders = frozenset(folders)
        self._below = tuple(folder + "/" for folder in self._folders)
        self._source = source  # "" when every entry is a folder
        self._regex: re.Pattern[str] | None = None

    def match(self, path: str) -> bool:
        """Whether ``path`` is granted."""
        if path in self._folders:
            return True
        if (
            path.startswith(self._below)
            and (
                "\n" not in path  # what lies below a folder is matched as by ".*", which stops at a newline
                or any(path.startswith(below) and "\n" not in path[len(below) :] for below in self._below)
            )
        ):
            return True
        if not self._source:
            return False
        regex = self._regex
        if regex is None:  # a race compiles it twice, to the same pattern
            regex = self._regex = re.compile(self._source)
        return regex.fullmatch(path) is not None


def _compile(
    entries: Iterable[str], planted: Callable[[str], bool], resolved: dict[str, str] | None = None
) -> _Paths:
    """The granted paths: a plain path grants itself and everything below it; in a glob, ``*`` and ``?``
    stay within one folder and ``**`` crosses folders.

    The folder before the first wildcard is resolved, except for the symlinks ``planted`` is true of
    (``inside_any(writable)``: those in the folders the extension can write, which it could have
    planted, and a grant must not grow with them). ``resolved`` keeps the folders resolved so far, for
    calls with the same ``planted``.

    Entries with the same pattern after their folder share one alternative of the regex, and a folder
    beneath another that already grants everything below it is left out, so the regex stays short."""
    known: dict[str, str] = {} if resolved is None else resolved
    heads: dict[str, list[str]] = {}  # pattern after the folder: the resolved folders it follows
    for entry in filter(None, entries):
        star = min((entry.find(c) for c in "*?" if c in entry), default=len(entry))
        cut = entry.rfind("/", 0, star) if star < len(entry) else len(entry)
        head, tail = (entry[:cut], entry[cut:]) if cut >= 0 else (".", "/" + entry)
        tokens = re.split(r"(\*\*/|\*\*|\*|\?)", tail) if tail else []
        pattern = "".join(_GLOBS.get(token, re.escape(token)) for token in tokens) or _BELOW
        folder = head or "/"
        if folder not in known:
            known[folder] = resolve(folder, planted).rstrip("/")
        heads.setdefault(pattern, []).append(known[folder])
    folders = _outermost(heads.pop(_BELOW, []))
    alternatives = []
    for pattern, found in heads.items():
        # "/(?:.*/)?..." matches below a folder whatever lies between: its subfolders add nothing
        kept = _outermost(found) if pattern.startswith("/(?:.*/)?") else list(dict.fromkeys(found))
        alternatives.append(f"(?:(?:{'|'.join(map(re.escape, kept))}){pattern})")
    return _Paths(folders, "|".join(alternatives))


def _outermost(folders: Iterable[str]) -> list[str]:
    """The folders that are not beneath (or equal to) another of them; ``""`` is the root."""
    kept: list[str] = []
    for folder in sorted(set(folders), key=len):
        if not any(folder == outer or folder.startswith(outer + "/") for outer in kept):
            kept.append(folder)
    return kept


def _runs(commands: tuple[str, ...], executable: str) -> bool:
    """Whether ``executable`` is granted: by name (``git``, globs allowed) or by path (symlinks resolved)."""
    name = os.path.basename(executable)
    if any(fnmatchcase(name, command) for command in commands if "/" not in command):
        return True
    paths = {os.path.realpath(command) for command in commands if "/" in command}
    return bool(paths) and os.path.realpath(shutil.which(executable) or executable) in paths


def _join(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _split(resource: str) -> tuple[str, str]:
    host, _, port = resource.rpartition(":")
    return host.removeprefix("[").removesuffix("]").lower(), port
