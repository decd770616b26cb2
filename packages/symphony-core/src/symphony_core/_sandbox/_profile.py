"""From an extension's grant to a worker's restrictions: paths, ports, programs, devices, environment.

The host resolves everything here (the variables ``{data}``, ``{cache}``, ``{home}`` the way the guard
expands them, symlinks, program names) so the worker only applies plain rules. Landlock rules name files
and folders, not patterns: a glob in a grant opens the folder before its first wildcard, which is broader
than the grant, and ``notes`` says so for each one. Paths that do not exist when the worker starts get no
rule, so they stay denied.
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symphony_core._home import Home

from ._protocol import Limits, Profile

if TYPE_CHECKING:
    from symphony_core._permissions import Permission

PATH = "/usr/local/bin:/usr/bin:/bin"
_GPU_DEVICES = ("/dev/nvidia*", "/dev/nvidiactl", "/dev/nvidia-uvm*", "/dev/dri", "/dev/kfd")
_LOADERS = ("/lib64/ld-linux-*.so*", "/lib/ld-linux*.so*", "/lib/ld-musl-*.so*")
DEFAULT_INLINE_LIMIT = 8 << 20
"""Below this size the pipe beats shared memory here (file, memfd and mapping costs); measured in the benchmark."""


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    """Everything needed to start one extension in an isolated worker."""

    extension: str
    entry_point: str
    """``module:Class`` of the extension, as in its entry point."""
    home: Home
    version: str = "0"
    permissions: tuple[Permission, ...] = ()
    """What the extension's version was granted; nothing else is allowed."""
    manifest: Mapping[str, Any] = field(default_factory=dict)
    path: tuple[str, ...] = ()
    """Extra folders to import from (readable by the worker), like the host's ``path``."""
    config_overrides: Mapping[str, Any] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    inline_limit: int = DEFAULT_INLINE_LIMIT
    """Bulk values under this many bytes travel inside messages instead of shared memory."""

    @property
    def data_dir(self) -> Path:
        return self.home.data_dir(self.extension)

    @property
    def cache_dir(self) -> Path:
        return self.home.extension_cache_dir(self.extension)

    @property
    def tmp_dir(self) -> Path:
        """The worker's ``TMPDIR``, inside its cache folder."""
        return self.cache_dir / "tmp"


def profile_for(spec: WorkerSpec, exchange: str) -> Profile:
    """The restrictions of ``spec``'s worker: what it was granted, its own folders and the extension's code."""
    from symphony_core._config import config_file
    from symphony_core._guard import Policy

    policy = Policy.for_extension(spec.extension, spec.permissions, spec.home)
    found: dict[str, list[str]] = {"fs.read": [], "fs.write": [], "net.connect": [], "net.listen": []}
    commands: list[str] = []
    gpu = False
    for permission in spec.permissions:
        if permission.type in ("fs.read", "fs.write"):
            found[permission.type] += permission.paths
        elif permission.type in ("net.connect", "net.listen"):
            found[permission.type] += permission.hosts
        elif permission.type == "subprocess":
            commands += permission.commands
        elif permission.type == "gpu":
            gpu = True
    notes: list[str] = []
    read = [_beneath(policy._expand(entry), notes) for entry in found["fs.read"]]
    write = [_beneath(policy._expand(entry), notes) for entry in found["fs.write"]]
    read += [*_code_paths(spec), *spec.path, str(config_file(spec.home, spec.extension))]
    read.append(str(spec.cache_dir))
    write.append(str(spec.cache_dir))
    connect, bind = _ports(found["net.connect"]), _ports(found["net.listen"])
    return Profile(
        read=_real(read),
        write=_real(write),
        execute=_real(_programs(commands)),
        devices=_real(path for pattern in _GPU_DEVICES for path in glob.glob(pattern)) if gpu else [],
        exchange=exchange,
        connect_ports=connect,
        bind_ports=bind,
        network=bool(found["net.connect"] or found["net.listen"]),
        limits=spec.limits,
        pycache=str(spec.cache_dir / "pycache"),
        notes=notes,
    )


def environment_for(spec: WorkerSpec, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The worker's whole environment: the granted variables and a minimal ``PATH``, ``LANG``, ``TMPDIR``
    and ``POLARS_OOC_SPILL_DIR`` (polars' own spill folder is outside any grant and panics)."""
    names = [name for p in spec.permissions if p.type == "env" for name in p.names]
    env = {
        "PATH": PATH,
        "LANG": "C.UTF-8",
        "TMPDIR": str(spec.tmp_dir),
        "POLARS_OOC_SPILL_DIR": str(spec.cache_dir / "polars-spill"),
    }
    env.update({key: value for key, value in environ.items() if any(fnmatchcase(key, n) for n in names)})
    return env


def config_environ(spec: WorkerSpec, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables that configure the extension (``SYMPHONY_<ID>__...``): the host passes their values
    for the config, not the variables themselves."""
    from symphony_core._config import env_prefix

    prefix = env_prefix(spec.extension)
    return {key: value for key, value in environ.items() if key.startswith(prefix)}


def _beneath(path: str, notes: list[str]) -> str:
    """The folder a Landlock rule needs for a granted path or glob (the grant's own semantics in the guard)."""
    wildcard = min((path.find(c) for c in "*?[" if c in path), default=-1)
    if wildcard < 0:
        return path
    folder = os.path.dirname(path[:wildcard]) or "/"
    notes.append(f"{path}: the kernel allows all of {folder} (Landlock rules cannot hold a glob)")
    return folder


def _code_paths(spec: WorkerSpec) -> list[str]:
    """Where the extension's top-level package is, found without importing it."""
    top = spec.entry_point.partition(":")[0].strip().split(".")[0]
    try:  # nothing is imported, and the host's sys.path is left as it is
        found = importlib.machinery.PathFinder.find_spec(top, [*spec.path, *sys.path])
        found = found or importlib.util.find_spec(top)  # editable installs with their own finder
    except (ImportError, ValueError):
        found = None
    if found is None:
        return []
    locations = list(found.submodule_search_locations or [])
    if not locations and found.origin and os.path.isabs(found.origin):
        locations = [found.origin]
    return locations


def _programs(commands: list[str]) -> list[str]:
    """The programs a ``subprocess`` grant lets the worker start, and the dynamic loader they need."""
    if not commands:
        return []
    if "*" in commands:
        return ["/"]
    programs = [shutil.which(command, path=PATH) or command for command in commands]
    loaders = [path for pattern in _LOADERS for path in glob.glob(pattern)]
    return [path for path in programs if os.path.isabs(path)] + loaders


def _ports(hosts: list[str]) -> list[int] | None:
    """The TCP ports of ``host:port`` grants; None when any grant allows every port."""
    ports: set[int] = set()
    for entry in hosts:
        port = entry.rpartition(":")[2]
        if not port.isdigit():
            return None
        ports.add(int(port))
    return sorted(ports)


def _real(paths: Any) -> list[str]:
    return sorted({os.path.realpath(path) for path in paths if path})
