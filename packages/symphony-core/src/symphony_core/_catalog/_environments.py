"""Managed environments: extensions installed by the host into virtual environments of their own.

Each managed distribution lives in ``$SYMPHONY_HOME/envs/<distribution>/<version>-<token>/``, a virtual
environment made by uv for that distribution alone (its kit, the core and its dependencies resolved for
it). The state database says which environment is current for each distribution (table ``installs``),
with the wheel's SHA-256 and the versions uv resolved; a new version is built beside the current one and
takes its place in one transaction, so a failed install leaves the previous one as it was.

Discovery covers these environments as it covers the host's own: through entry points and static
manifests, importing nothing. Each record found in one carries its environment (`Record.environment`),
which keeps it out of the host's process: its workers import from that environment only.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from symphony_core._model._kinds import canonical_name
from symphony_core._store._home import Home
from symphony_core._store._state import HostState, _append, _now

from ._discovery import _scan, discover, index_key
from ._records import Catalog, Record

log = logging.getLogger("symphony.install")

_TABLE = (
    "CREATE TABLE IF NOT EXISTS installs (distribution TEXT PRIMARY KEY, version TEXT NOT NULL,"
    " environment TEXT NOT NULL, wheel TEXT NOT NULL, wheel_sha256 TEXT NOT NULL, source TEXT NOT NULL,"
    " lock TEXT NOT NULL, extensions TEXT NOT NULL, installed_by TEXT NOT NULL, installed_at TEXT NOT NULL)"
)
_COLUMNS = "distribution, version, environment, wheel, wheel_sha256, source, lock, extensions, installed_by, installed_at"


class Installed(msgspec.Struct, frozen=True):
    """One distribution the host installed into an environment of its own."""

    distribution: str
    """Its name, normalised (PEP 503)."""
    version: str
    environment: Path
    """The root of its virtual environment."""
    wheel: str
    """The file name of the wheel it was installed from."""
    wheel_sha256: str
    """SHA-256 of that wheel, checked against the index's hash when the index gave one."""
    source: str
    """Where the wheel came from: the index URL, or the local file."""
    lock: dict[str, str] = msgspec.field(default_factory=dict)
    """Every distribution in its environment and the version uv resolved, by normalised name."""
    extensions: tuple[str, ...] = ()
    """The ids of the extensions it ships."""
    installed_by: str = ""
    installed_at: datetime | None = None

    @property
    def site_packages(self) -> Path:
        """Where its environment's distributions are installed (the environment has this host's Python)."""
        return site_packages(self.environment)

    def as_json(self) -> dict[str, Any]:
        return {
            "distribution": self.distribution,
            "version": self.version,
            "environment": str(self.environment),
            "wheel": self.wheel,
            "wheel_sha256": self.wheel_sha256,
            "source": self.source,
            "lock": dict(self.lock),
            "extensions": list(self.extensions),
            "installed_by": self.installed_by,
            "installed_at": None if self.installed_at is None else self.installed_at.isoformat(),
        }


def envs_dir(home: Home) -> Path:
    """Where the host keeps its managed environments."""
    return home.root / "envs"


_SITE_PACKAGES = os.path.join(
    "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages"
)


def site_packages(environment: Path) -> Path:
    """The ``site-packages`` folder of a virtual environment made with this host's Python."""
    return environment / _SITE_PACKAGES


def installed(state: HostState) -> list[Installed]:
    """Every distribution installed into an environment of its own, by name."""
    with state._using() as conn:
        if not _has_table(conn):
            return []
        rows = conn.execute(f"SELECT {_COLUMNS} FROM installs ORDER BY distribution").fetchall()
    return [_installed(row) for row in rows]


def installed_one(state: HostState, distribution: str) -> Installed | None:
    """The managed installation of ``distribution``, if the host made one."""
    with state._using() as conn:
        if not _has_table(conn):
            return None
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM installs WHERE distribution = ?", (canonical_name(distribution),)
        ).fetchone()
    return None if row is None else _installed(row)


def record_install(state: HostState, entry: Installed, *, actor: str, previous: Installed | None) -> None:
    """Make ``entry`` the current installation of its distribution, and audit it (``installed`` or
    ``upgraded``, for each extension it ships)."""
    event = "installed" if previous is None else "upgraded"
    with state._transaction() as conn:
        conn.execute(_TABLE)
        conn.execute(
            f"INSERT OR REPLACE INTO installs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.distribution,
                entry.version,
                str(entry.environment),
                entry.wheel,
                entry.wheel_sha256,
                entry.source,
                json.dumps(entry.lock, sort_keys=True),
                json.dumps(list(entry.extensions)),
                actor,
                _now(),
            ),
        )
        detail: dict[str, Any] = {
            "distribution": entry.distribution,
            "version": entry.version,
            "wheel_sha256": entry.wheel_sha256,
            "source": entry.source,
        }
        if previous is not None:
            detail["from_version"] = previous.version
        for extension in entry.extensions or (None,):
            _append(conn, _now(), event, extension, actor, detail)


def restore_install(state: HostState, distribution: str, previous: Installed | None) -> None:
    """Put back what `record_install` replaced (a later step of the install failed)."""
    with state._transaction() as conn:
        conn.execute(_TABLE)
        conn.execute("DELETE FROM installs WHERE distribution = ?", (distribution,))
        if previous is not None:
            conn.execute(
                f"INSERT INTO installs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    previous.distribution,
                    previous.version,
                    str(previous.environment),
                    previous.wheel,
                    previous.wheel_sha256,
                    previous.source,
                    json.dumps(previous.lock, sort_keys=True),
                    json.dumps(list(previous.extensions)),
                    previous.installed_by,
                    _now() if previous.installed_at is None else previous.installed_at.isoformat(),
                ),
            )


def forget_install(state: HostState, entry: Installed, *, actor: str, purged: bool) -> None:
    """Remove the record of a managed installation, and audit it (``uninstalled``)."""
    with state._transaction() as conn:
        conn.execute(_TABLE)
        conn.execute("DELETE FROM installs WHERE distribution = ?", (entry.distribution,))
        detail = {"distribution": entry.distribution, "version": entry.version, "purged": purged}
        for extension in entry.extensions or (None,):
            _append(conn, _now(), "uninstalled", extension, actor, detail)


def remove_environment(environment: Path) -> None:
    """Delete a managed environment's folder; what cannot be deleted is logged, never raised."""
    import shutil

    shutil.rmtree(environment, onerror=lambda *args: log.warning("cannot remove %s: %s", args[1], args[2][1]))


class _Managed(msgspec.Struct, frozen=True, array_like=True):
    """What one managed environment declares."""

    distribution: str
    environment: str
    records: tuple[Record, ...]


class _ManagedIndex(msgspec.Struct, frozen=True):
    format: int
    python: str
    entries: tuple[_Managed, ...]


_MANAGED_FORMAT = 1


def discover_all(
    home: Home, state: HostState, *, path: Sequence[str] | None = None, rescan: bool = False
) -> Catalog:
    """The extensions of the host's own environment (on ``path``) and of every managed environment.

    Each managed environment is scanned on its own ``site-packages``, importing nothing; only the records
    of the distribution the host installed there count (its dependencies are not extensions of this
    host). What was found is kept in one index for all managed environments, keyed by environment: the
    host never changes an environment in place (an upgrade builds a new one beside it, in a folder of its
    own), so a warm discovery reads the list of installs and one file, and touches no environment.
    ``rescan`` scans every environment again (``symphony list --rescan``: after changing one by hand). A
    distribution found in both the host's environment and a managed one is used from the host's and the
    managed copy is ignored, with a warning.
    """
    catalog = discover(home.cache_dir, path=path, rescan=rescan)
    managed = _current(state)
    if not managed:
        return catalog
    in_host = {record.distribution for record in catalog.records}
    index_file = _managed_index_file(home)
    known = {} if rescan else _load_managed(index_file)
    entries: list[_Managed] = []
    scanned = False
    for distribution, environment in managed:
        if distribution in in_host:
            log.warning(
                "%s is installed both in the host's environment and in %s: the host's copy is used; "
                "uninstall one of them",
                distribution,
                environment,
            )
            continue
        entry = known.get(environment)
        if entry is None or entry.distribution != distribution:
            entry = _scan_managed(distribution, environment)
            scanned = True
        entries.append(entry)
    if scanned or len(entries) != len(known):  # keep the index to what is installed now
        _save_managed(index_file, entries)
    records = [*catalog.records, *(record for entry in entries for record in entry.records)]
    return msgspec.structs.replace(catalog, records=tuple(records))


def _current(state: HostState) -> list[tuple[str, str]]:
    """Each managed distribution and its current environment, by name (what discovery needs, no more)."""
    with state._using() as conn:
        if not _has_table(conn):
            return []
        rows = conn.execute("SELECT distribution, environment FROM installs ORDER BY distribution").fetchall()
    return [(str(distribution), str(environment)) for distribution, environment in rows]


def _scan_managed(distribution: str, environment: str) -> _Managed:
    found, _ = _scan([os.path.join(environment, _SITE_PACKAGES)])
    records = tuple(
        msgspec.structs.replace(record, environment=environment)
        for record in found.records
        if record.distribution == distribution
    )
    return _Managed(distribution, environment, records)


def _managed_index_file(home: Home) -> Path:
    return home.cache_dir / f"managed-{index_key(sys.executable)}.msgpack"


def _load_managed(index_file: Path) -> dict[str, _Managed]:
    try:
        index = msgspec.msgpack.decode(index_file.read_bytes(), type=_ManagedIndex)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return {}
    if index.format != _MANAGED_FORMAT or index.python != sys.version:
        return {}
    return {entry.environment: entry for entry in index.entries}


def _save_managed(index_file: Path, entries: list[_Managed]) -> None:
    index = _ManagedIndex(_MANAGED_FORMAT, sys.version, tuple(entries))
    try:
        index_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(msgspec.msgpack.encode(index))
        os.replace(tmp, index_file)
    except OSError:
        pass  # the index is only a cache: without it the next discovery scans again


def _has_table(conn: Any) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'installs'").fetchone()
    return row is not None


def _installed(row: tuple[Any, ...]) -> Installed:
    distribution, version, environment, wheel, sha256, source, lock, extensions, by, at = row
    return Installed(
        distribution,
        version,
        Path(environment),
        wheel,
        sha256,
        source,
        json.loads(lock),
        tuple(json.loads(extensions)),
        by,
        datetime.fromisoformat(at),
    )
