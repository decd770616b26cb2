"""From an extension's grant to a worker's restrictions: paths, ports, programs, devices, environment.

The host resolves everything here (the variables ``{data}``, ``{cache}``, ``{home}`` the way the guard
expands them, symlinks outside the extension's reach, program names, where the worker's code is) so the
worker only applies plain rules, opening each path without following symlinks. Landlock rules name files
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

from symphony_core._security._reach import PROGRAM_FOLDERS, inside_any, opened, own_folder, resolve
from symphony_core._store._home import Home

from ._bytecode import folder as shared_folder
from ._protocol import Limits, Profile

if TYPE_CHECKING:
    from symphony_core._model._permissions import Permission

PATH = "/usr/local/bin:/usr/bin:/bin"
CORE_FOLDER = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
"""The ``symphony_core`` package folder (this module is ``symphony_core/_security/_sandbox/_profile.py``)."""
_GPU_DEVICES = ("/dev/nvidia*", "/dev/nvidiactl", "/dev/nvidia-uvm*", "/dev/dri", "/dev/kfd")
_LOADERS = ("/lib64/ld-linux-*.so*", "/lib/ld-linux*.so*", "/lib/ld-musl-*.so*")
DEFAULT_INLINE_LIMIT = 512 << 10
"""Below this size a value's round trip through the pipe beats shared memory (whose file, memfd and mapping
cost a fixed few hundred microseconds); above it, the pipe's 64 KiB at a time and polars' streams lose,
several times over by a few MiB. Measured for arrays and frames, with and without text columns."""


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
    environment: str | None = None
    """The managed environment the extension is installed in: its workers import from that environment's
    ``site-packages`` only, never from the host's (``path`` is then ignored)."""

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
    """The restrictions of ``spec``'s worker: what it was granted, its own folders and the code it runs."""
    from symphony_core._security._guard import Policy
    from symphony_core._store._config import config_file

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
    # The extension can plant symlinks wherever it can write: those are never followed to make a rule.
    own = [own_folder(folder) for folder in (spec.data_dir, spec.cache_dir)]
    write = [_beneath(policy._expand(entry), notes) for entry in found["fs.write"]]
    writable = (*own, *(resolve(path, inside_any(tuple(own))) for path in write))
    planted = inside_any(writable)
    write = [resolve(path, planted) for path in write]
    read = [resolve(_beneath(policy._expand(entry), notes), planted) for entry in found["fs.read"]]
    bytecode = pycache = ""
    if spec.environment is None:
        import_path = [*site_folders(), *spec.path]
        packages = _packages(spec, import_path)
        bytecode = _shared_bytecode(spec.home)
        read += [*interpreter_folders(), *import_path, *packages.values(), bytecode]
    else:  # the core it booted from stays readable: it goes on importing its own modules
        import_path, packages = managed_folders(spec.environment), {}
        read += [*interpreter_folders(managed=True), *import_path, *_boot_packages()]
        pycache = str(spec.cache_dir / "pycache")
    read += [resolve(str(config_file(spec.home, spec.extension)), planted), own[1]]
    write.append(own[1])
    connect, bind = _ports(found["net.connect"]), _ports(found["net.listen"])
    return Profile(
        read=_unique(read),
        write=_unique(write),
        execute=_unique(_programs(commands, notes)),
        devices=_unique(os.path.realpath(path) for p in _GPU_DEVICES for path in glob.glob(p)) if gpu else [],
        exchange=exchange,
        connect_ports=connect,
        bind_ports=bind,
        network=bool(found["net.connect"] or found["net.listen"]),
        limits=spec.limits,
        bytecode=bytecode,
        pycache=pycache,
        import_path=import_path,
        packages=packages,
        notes=notes,
        only_import_path=spec.environment is not None,
    )


def environment_for(spec: WorkerSpec, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The worker's whole environment: the granted variables and a minimal ``PATH``, ``HOME``, ``LANG``,
    ``TMPDIR`` and ``POLARS_OOC_SPILL_DIR`` (polars' own spill folder is outside any grant and panics)."""
    names = [name for p in spec.permissions if p.type == "env" for name in p.names]
    env = {
        "PATH": PATH,
        "HOME": str(Path.home()),  # what {home} in grants names; the password file is not readable
        "LANG": "C.UTF-8",
        "TMPDIR": str(spec.tmp_dir),
        "POLARS_OOC_SPILL_DIR": str(spec.cache_dir / "polars-spill"),
    }
    env.update({key: value for key, value in environ.items() if any(fnmatchcase(key, n) for n in names)})
    return env


def config_environ(spec: WorkerSpec, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The variables that configure the extension (``SYMPHONY_<ID>__...``): the host passes their values
    for the config, not the variables themselves. The host refuses, before a worker starts, variables
    whose prefix another installed extension's id shares."""
    from symphony_core._store._config import config_variables

    return config_variables(spec.extension, environ)


def _beneath(path: str, notes: list[str]) -> str:
    """The folder a Landlock rule needs for a granted path or glob (the grant's own semantics in the guard)."""
    folder = opened(path)
    if folder != path:
        notes.append(f"{path}: the kernel allows all of {folder} (Landlock rules cannot hold a glob)")
    return folder


def site_folders() -> list[str]:
    """The environment's ``site-packages`` folders: what a worker imports installed distributions from.

    Workers start without the ``site`` module, so no ``.pth`` file of an installed distribution runs in
    them or adds a folder to their path; these folders are given to them explicitly instead.
    """
    import site

    return _unique(folder for folder in site.getsitepackages() if os.path.isdir(folder))


def _shared_bytecode(home: Home) -> str:
    os.makedirs(shared_folder(home), exist_ok=True)
    return shared_folder(home)


def interpreter_folders(*, managed: bool = False) -> list[str]:
    """The interpreter's own folders (standard library, extension modules, shared library); with
    ``managed``, those of the base interpreter only, not the host's virtual environment (whose
    ``site-packages`` a worker of a managed extension never reads)."""
    found = {sys.base_prefix, sys.base_exec_prefix}
    if not managed:
        found |= {sys.prefix, sys.exec_prefix}
    return _unique(path for path in found if path and os.path.isabs(path))


def managed_folders(environment: str) -> list[str]:
    """The import path of a worker of an extension installed in a managed environment: that
    environment's ``site-packages`` alone."""
    from symphony_core._catalog._environments import site_packages

    return [str(site_packages(Path(environment)))]


def _boot_packages() -> list[str]:
    """The folders of the packages a worker imports before it is restricted (the host's core and msgspec)."""
    import msgspec

    return [CORE_FOLDER, os.path.dirname(os.path.realpath(msgspec.__file__))]


_WORKER_PACKAGES = (
    "symphony_core",
    "msgspec",
    "symphony_instruments",
    "symphony_operators",
    "symphony_motifs",
)
"""Top-level packages every worker may need: the core and what it imports before it is restricted, the kits."""


def _packages(spec: WorkerSpec, import_path: list[str]) -> dict[str, str]:
    """Top-level name: location of each package the worker needs that is not on its import path
    (editable installs), found without importing anything.

    Only regular packages and modules are mapped, by name: a namespace package is a folder of any name
    anywhere, so one outside ``site-packages`` would open unrelated folders (beside the host's script, say)
    to the worker. The host's script folder and working folder are never searched.
    """
    names = {spec.entry_point.partition(":")[0].strip().split(".")[0], *_WORKER_PACKAGES}
    config = spec.manifest.get("config")
    if isinstance(config, str):
        names.add(config.partition(":")[0].strip().split(".")[0])
    searched = [*spec.path, *(folder for folder in sys.path[1:] if folder and os.path.isabs(folder))]
    inside = tuple(os.path.join(os.path.realpath(folder), "") for folder in import_path)
    found: dict[str, str] = {}
    for name in sorted(names):
        try:  # nothing is imported, and the host's sys.path is left as it is
            where = importlib.machinery.PathFinder.find_spec(name, searched) or importlib.util.find_spec(name)
        except (ImportError, ValueError):
            where = None
        if where is None or not where.origin or not os.path.isabs(where.origin):
            continue  # not installed here, built in, or a namespace package
        location = os.path.realpath(
            where.submodule_search_locations[0] if where.submodule_search_locations else where.origin
        )
        if not location.startswith(inside):
            found[name] = location
    return found


def _programs(commands: list[str], notes: list[str]) -> list[str]:
    """The programs a ``subprocess`` grant lets the worker start, and the dynamic loader they need.

    ``*`` means the programs in the standard program folders, not every file: an execute rule also lets the
    worker read what it covers. A folder named as a command is refused for the same reason.
    """
    if not commands:
        return []
    programs: list[str] = []
    for command in commands:
        if command == "*":
            programs += [folder for folder in PROGRAM_FOLDERS if os.path.isdir(folder)]
            continue
        found = shutil.which(command, path=PATH) or command
        if not os.path.isabs(found) or not os.path.isfile(found):
            notes.append(f"{command}: not a program on this machine (PATH={PATH}), so it gets no rule")
            continue
        programs.append(found)
    loaders = [path for pattern in _LOADERS for path in glob.glob(pattern)]
    return [os.path.realpath(path) for path in (*programs, *loaders)]


def _ports(hosts: list[str]) -> list[int] | None:
    """The TCP ports of ``host:port`` grants; None when any grant allows every port."""
    ports: set[int] = set()
    for entry in hosts:
        port = entry.rpartition(":")[2]
        if not port.isdigit():
            return None
        ports.add(int(port))
    return sorted(ports)


def _unique(paths: Any) -> list[str]:
    return sorted({path for path in paths if path})
