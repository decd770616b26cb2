"""What a grant really reaches on this machine, and where its paths lead without the extension's help.

A person consents to scopes as a manifest writes them (``fs.read {home}/**``). This module says what
each one reaches here, for the consent summary, and resolves the places grants name for the tiers that
enforce them, never following a symlink the extension could have planted:

- ``Roots``: where ``{data}``, ``{cache}`` and ``{home}`` point. An own folder is resolved from
  ``SYMPHONY_HOME``, which the extension cannot write: its parent is resolved, the folder itself is not
  followed (an extension that swaps its ``{cache}`` for a symlink to ``/`` is granted the link, not ``/``).
- ``resolve``: ``os.path.realpath``, except a symlink inside a folder the extension can write stays as
  written, so a grant through it names nothing a resolved path can equal.
- ``opened``: the file or folder a Landlock rule opens for a path. A rule cannot hold a glob, so it
  opens the folder before the first wildcard: ``{data}/*.csv`` opens all of ``{data}``.
- ``reach``: one scope's ``Reach``: the path it names, the folder opened, and notes (code, severity,
  message). A ``refused`` note cannot be consented to: a write grant that covers ``SYMPHONY_HOME``
  beyond the extension's own folders could rewrite the host's grants, policy and trust list.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from symphony_core._store._home import Home

Severity = Literal["refused", "danger", "warning", "info"]
"""``refused``: cannot be granted; ``danger`` and ``warning``: read this before consenting; ``info``."""

PROGRAM_FOLDERS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")
"""The standard program folders: what ``subprocess`` with ``*`` lets an isolated worker run (and so read)."""
_WILDCARDS = "*?["
_MAX_LINKS = 40  # symlinks followed in one path, as Linux allows


@dataclass(frozen=True, slots=True)
class Roots:
    """Where the path variables of one extension point, and the ``SYMPHONY_HOME`` they live in."""

    data: str
    cache: str
    home: str
    symphony_home: str | None = None

    @classmethod
    def of(cls, symphony_home: Home, extension: str, home: str | os.PathLike[str] | None = None) -> Roots:
        """The roots of ``extension`` under ``symphony_home``, with ``home`` (the user's, by default)."""
        return cls.of_folders(
            symphony_home.data_dir(extension),
            symphony_home.extension_cache_dir(extension),
            Path.home() if home is None else home,
            symphony_home.root,
        )

    @classmethod
    def of_folders(
        cls,
        data: str | os.PathLike[str],
        cache: str | os.PathLike[str],
        home: str | os.PathLike[str],
        symphony_home: str | os.PathLike[str] | None = None,
    ) -> Roots:
        """Roots from the folders themselves: ``data`` and ``cache`` are never followed, see ``own_folder``."""
        own_data, own_cache = own = own_folders(data, cache)
        planted = inside_any(own)
        state = None if symphony_home is None else resolve(os.fspath(symphony_home), planted)
        return cls(own_data, own_cache, resolve(os.fspath(home), planted), state)

    def variables(self) -> tuple[tuple[str, str], ...]:
        """``(name, folder)`` of each variable, the longest folder first (the most specific match)."""
        pairs = (("data", self.data), ("cache", self.cache), ("home", self.home))
        return tuple(sorted(pairs, key=lambda pair: -len(pair[1])))

    def expand(self, pattern: str) -> str:
        """``pattern`` with its leading variable replaced by the folder it names."""
        for name, folder in self.variables():
            pattern = pattern.replace("{" + name + "}", folder)
        return pattern

    def own(self, path: str) -> bool:
        """Whether ``path`` is one of the extension's own folders or inside one."""
        return inside(path, self.data) or inside(path, self.cache)

    def host_state(self, path: str) -> bool:
        """Whether ``path`` (and what is beneath it) reaches into ``SYMPHONY_HOME`` beyond the own folders."""
        state = self.symphony_home
        if state is None or self.own(path):
            return False
        return inside(state, path) or inside(path, state)


@dataclass(frozen=True, slots=True)
class Note:
    """One thing to know about a grant's reach: a code for programs, a message for people."""

    code: str
    severity: Severity
    message: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity, "message": self.message}


@dataclass(frozen=True, slots=True)
class Reach:
    """What one consented scope lets the extension touch on this machine."""

    permission: str
    """The permission type, e.g. ``fs.read``."""
    scope: str
    """The scope as the manifest writes it: ``{home}/**``, ``api.example.com:443``, ``*``."""
    path: str | None = None
    """For files: the scope with its variable expanded."""
    opens: str | None = None
    """For files: what the isolated tier's kernel rule opens (a glob opens the folder before it)."""
    notes: tuple[Note, ...] = ()

    @property
    def refused(self) -> Note | None:
        """The note that keeps this scope from being granted, if any."""
        return next((note for note in self.notes if note.severity == "refused"), None)

    @property
    def flagged(self) -> bool:
        """Whether a person must opt in to it one by one: files beyond the extension's own folders, any
        network access, environment variables and programs. Consent dialogs leave these unchecked."""
        return flagged(self.permission, self.notes)

    def as_json(self) -> dict[str, Any]:
        return {
            "permission": self.permission,
            "scope": self.scope,
            "path": self.path,
            "opens": self.opens,
            "flagged": self.flagged,
            "notes": [note.as_json() for note in self.notes],
        }


UNFLAGGED_TYPES = ("gpu",)
"""Permission types that reach nothing a person needs to weigh one by one."""
_BEYOND_OWN = frozenset({"outside", "home", "everything", "symphony-home"})
"""The notes ``_files`` writes for a path beyond the extension's own folders."""


def flagged(permission: str, notes: tuple[Note, ...]) -> bool:
    """See `Reach.flagged`: a file scope is flagged when a note says it reaches beyond ``{data}`` and
    ``{cache}``; every other type but ``gpu`` always is."""
    if permission in ("fs.read", "fs.write"):
        return any(note.code in _BEYOND_OWN for note in notes)
    return permission not in UNFLAGGED_TYPES


def reach(permission: str, scope: str, roots: Roots) -> Reach:
    """What ``permission`` on ``scope`` reaches for the extension whose folders are ``roots``."""
    if permission in ("fs.read", "fs.write"):
        return _files(permission, scope, roots)
    if permission in ("net.connect", "net.listen"):
        return Reach(permission, scope, notes=_network(permission, scope))
    if permission == "subprocess" and scope == "*":
        message = (
            "any program on this machine; in the isolated tier, programs it starts are confined like "
            f"the extension itself, and only those in {', '.join(PROGRAM_FOLDERS)} can start (it may read them)"
        )
        return Reach(permission, scope, notes=(Note("any-program", "danger", message),))
    if permission == "subprocess" and _is_glob(scope):
        message = f"any program whose name matches {scope}, wherever it is"
        return Reach(permission, scope, notes=(Note("programs-matching", "warning", message),))
    if permission == "env" and scope == "*":
        message = "every environment variable of the host, secrets included"
        return Reach(permission, scope, notes=(Note("every-variable", "danger", message),))
    if permission == "env" and _is_glob(scope):
        message = f"every environment variable whose name matches {scope}"
        return Reach(permission, scope, notes=(Note("variables-matching", "warning", message),))
    return Reach(permission, scope)


def _files(permission: str, scope: str, roots: Roots) -> Reach:
    path = os.path.normpath(roots.expand(scope))  # "{data}/../x" is not in {data}
    folder = opened(path)
    notes = []
    if folder == "/":
        notes.append(Note("everything", "danger", "every file on this machine"))
    elif inside(roots.home, folder):
        notes.append(Note("home", "danger", f"all of your home folder, {roots.home}"))
    if roots.host_state(folder):
        state = f"Symphony's own state in {roots.symphony_home}: grants, policy, trust list, every extension's config"
        if permission == "fs.write":
            message = (
                f"covers {state}; writing there would let it grant itself anything, so it cannot be granted"
            )
            notes.append(Note("symphony-home", "refused", message))
        else:
            message = f"covers {state}; the guard keeps it out, the isolated tier cannot"
            notes.append(Note("symphony-home", "danger", message))
    elif not roots.own(path):
        notes.append(Note("outside", "info", "outside the extension's own folders"))
    if path not in (folder, folder.rstrip("/") + "/**"):  # "/**" holds all of the folder anyway
        message = f"the isolated tier opens all of {folder}: a kernel rule cannot hold a glob (the guard checks the glob itself)"
        notes.append(Note("glob-widened", "info", message))
    return Reach(permission, scope, path, folder, tuple(notes))


def _network(permission: str, scope: str) -> tuple[Note, ...]:
    host, _, port = scope.rpartition(":")
    notes = []
    if host == "*" and port == "*":
        notes.append(Note("anywhere", "danger", "any host, any port"))
    elif port == "*":
        notes.append(Note("any-port", "warning", "any port"))
    elif host == "*":
        notes.append(Note("any-host", "warning", "any host"))
    ports = "any TCP port" if port == "*" else f"TCP port {port}"
    verb = "connecting to" if permission == "net.connect" else "listening on"
    message = (
        f"the isolated tier enforces ports, not addresses: {verb} {ports} at any address; "
        "UDP is not restricted by port"
    )
    notes.append(Note("by-port", "info", message))
    return tuple(notes)


def opened(path: str) -> str:
    """The file or folder a Landlock rule opens for ``path``: itself, or the folder before its first wildcard."""
    wildcard = min((path.find(char) for char in _WILDCARDS if char in path), default=-1)
    if wildcard < 0:
        return path
    return os.path.dirname(path[:wildcard]) or "/"


def own_folder(folder: str | os.PathLike[str]) -> str:
    """An extension's own folder as ``SYMPHONY_HOME`` names it: its parent resolved, itself not followed.

    The extension may write inside its folders, never beside them, so it can plant a symlink where the
    folder should be but cannot change the folders above it.
    """
    return own_folders(folder)[0]


def own_folders(*folders: str | os.PathLike[str]) -> tuple[str, ...]:
    """`own_folder` of each of ``folders``; a parent they share (``{data}`` and ``{cache}`` do) is
    resolved once."""
    parents: dict[str, str] = {}
    own = []
    for folder in folders:
        path = os.path.abspath(folder)
        parent = os.path.dirname(path)
        if parent not in parents:
            parents[parent] = os.path.realpath(parent)
        own.append(os.path.join(parents[parent], os.path.basename(path)))
    return tuple(own)


def resolve(path: str, planted: Callable[[str], bool]) -> str:
    """``os.path.realpath(path)``, except that a symlink for which ``planted`` is true is not followed.

    From such a symlink on, the path stays as written: it names a place no resolved path can equal.
    """
    if not path.startswith("/"):
        path = os.path.join(os.getcwd(), path)
    pending = [part for part in reversed(path.split("/")) if part not in ("", ".")]
    resolved = "/"
    followed = 0
    while pending:
        part = pending.pop()
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        if not os.path.islink(candidate):
            resolved = candidate
            continue
        try:
            target = os.readlink(candidate)
        except OSError:
            target = None
        if target is None or planted(candidate) or followed >= _MAX_LINKS:
            return "/".join([candidate, *reversed(pending)])
        followed += 1
        if target.startswith("/"):
            resolved = "/"
        pending.extend(part for part in reversed(target.split("/")) if part not in ("", "."))
    return resolved


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or beneath it (both absolute, neither ending in ``/`` but ``/``)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def inside_any(folders: tuple[str, ...]) -> Callable[[str], bool]:
    """A ``planted`` test for ``resolve``: whether a path is in one of ``folders``."""
    return lambda path: any(inside(path, folder) for folder in folders)


def _is_glob(scope: str) -> bool:
    return any(char in scope for char in _WILDCARDS)
