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
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from symphony_core._model._kinds import canonical_name
from symphony_core._store._home import Home
from symphony_core._store._state import HostState, _append, _now

from ._discovery import discover
from ._records import Catalog

log = logging.getLogger("symphony.install")

_TABLE = (
    "CREATE TABLE IF NOT EXISTS installs (distribution TEXT PRIMARY KEY, version TEXT NOT NULL,"
    " environment TEXT NOT NULL, wheel TEXT NOT NULL, wheel_sha256 TEXT NOT NULL, source TEXT NOT NULL,"
    " lock TEXT NOT NULL, extensions TEXT NOT NULL, installed_by TEXT NOT NULL, installed_at TEXT NOT NULL)"
)
_COLUMNS = "distribution, version, environment, wheel, wheel_sha256, source, lock, extensions, installed_by, installed_at"


@dataclass(frozen=True, slots=True)
class Installed:
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
    lock: dict[str, str] = field(default_factory=dict)
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


def site_packages(environment: Path) -> Path:
    """The ``site-packages`` folder of a virtual environment made with this host's Python."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return environment / "lib" / version / "site-packages"


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


def discover_all(
    home: Home, state: HostState, *, path: Sequence[str] | None = None, rescan: bool = False
) -> Catalog:
    """The extensions of the host's own environment (on ``path``) and of every managed environment.

    Each managed environment is scanned (and indexed) on its own ``site-packages``, importing nothing;
    only the records of the distribution the host installed there count (its dependencies are not
    extensions of this host). A distribution found in both the host's environment and a managed one is
    used from the host's and the managed copy is ignored, with a warning.
    """
    catalog = discover(home.cache_dir, path=path, rescan=rescan)
    managed = installed(state)
    if not managed:
        return catalog
    in_host = {record.distribution for record in catalog.records}
    records = list(catalog.records)
    for entry in managed:
        if entry.distribution in in_host:
            log.warning(
                "%s is installed both in the host's environment and in %s: the host's copy is used; "
                "uninstall one of them",
                entry.distribution,
                entry.environment,
            )
            continue
        found = discover(home.cache_dir, path=[str(entry.site_packages)], rescan=rescan)
        records += [
            msgspec.structs.replace(record, environment=str(entry.environment))
            for record in found.records
            if record.distribution == entry.distribution
        ]
    return msgspec.structs.replace(catalog, records=tuple(records))


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
