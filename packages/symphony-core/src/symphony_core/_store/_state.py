"""The host's persistent state: enablement, permission grants, config overrides and an audit log.

Everything lives in one SQLite file that several host processes may share. Each change is one
``BEGIN IMMEDIATE`` transaction that also appends its audit record, so the log and the state never
disagree, and a write that has returned is on disk (WAL journal, ``synchronous=FULL``). Records of what
happened only (an extension's lifecycle, written on each start and stop) do not wait for the disk: see
`State.record_many`.

The store keeps values as given and never looks inside them. Callers must never pass secrets (tokens,
passwords, keys) in audit ``detail``: the log is append-only and is shown to people. For the same reason
config-override records name the key but not the value.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from symphony_core._model._errors import StateError
from symphony_core._model._kinds import canonical_name

__all__ = ["AuditRecord", "Grant", "HostState"]

_SCHEMA_VERSION = 3
_QUARANTINE_TABLE = (
    "CREATE TABLE quarantine (ext_id TEXT NOT NULL, version TEXT NOT NULL, reason TEXT NOT NULL,"
    " at TEXT NOT NULL, PRIMARY KEY (ext_id, version))"
)
# Grants name the distribution they were made to ('' for those made before they did) and, where its
# installer wrote one, the SHA-256 of its RECORD file; the key grows to hold one grant per distribution.
_BOUND_GRANTS = (
    "CREATE TABLE grants_bound (ext_id TEXT NOT NULL, version TEXT NOT NULL, distribution TEXT NOT NULL,"
    " sha256 TEXT, permissions TEXT NOT NULL, granted_by TEXT NOT NULL, granted_at TEXT NOT NULL,"
    " audit_seq INTEGER NOT NULL, PRIMARY KEY (ext_id, version, distribution))",
    "INSERT INTO grants_bound SELECT ext_id, version, '', NULL, permissions, granted_by, granted_at,"
    " audit_seq FROM grants",
    "DROP TABLE grants",
    "ALTER TABLE grants_bound RENAME TO grants",
)
# What each schema version adds to the one before it; a new file runs them all.
_MIGRATIONS: dict[int, tuple[str, ...]] = {2: (_QUARANTINE_TABLE,), 3: _BOUND_GRANTS}
_SCHEMA = (
    "CREATE TABLE enablement (ext_id TEXT PRIMARY KEY, enabled INTEGER NOT NULL)",
    "CREATE TABLE grants (ext_id TEXT NOT NULL, version TEXT NOT NULL, permissions TEXT NOT NULL,"
    " granted_by TEXT NOT NULL, granted_at TEXT NOT NULL, audit_seq INTEGER NOT NULL,"
    " PRIMARY KEY (ext_id, version))",
    "CREATE TABLE config_overrides (ext_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (ext_id, key))",
    "CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, ext_id TEXT,"
    " event TEXT NOT NULL, actor TEXT NOT NULL, detail TEXT NOT NULL)",
    "CREATE INDEX audit_by_extension ON audit (ext_id, seq)",
)
# Other hosts hold the write lock only for one short transaction; waiting beats failing.
_BUSY_TIMEOUT_S = 10.0
_GRANT_COLUMNS = "ext_id, version, permissions, granted_by, granted_at, distribution, sha256"


class Grant(msgspec.Struct, frozen=True):
    """The permissions a person granted to one version of an extension, as one distribution ships it."""

    ext_id: str
    version: str
    permissions: list[dict[str, Any]]
    granted_by: str
    granted_at: datetime
    distribution: str | None = None
    """None for a grant made before grants named their distribution."""
    sha256: str | None = None
    """SHA-256 of the distribution's ``RECORD`` file when granted; None when unknown."""


def current_grant(
    state: HostState, extension: str, version: str, distribution: str, sha256: str | None
) -> Grant | None:
    """The grant this installed version holds: made to its version, distribution and installed files.

    Here rather than in ``_grants`` so that starting an extension reads its grant without building the
    policy models."""
    return next((g for g in state.grants(extension) if binds(g, version, distribution, sha256)), None)


def binds(grant: Grant, version: str, distribution: str, sha256: str | None) -> bool:
    """Whether ``grant`` was made to this version, distribution and set of installed files."""
    return (
        grant.version == version
        and grant.distribution is not None
        and same_distribution(grant.distribution, distribution)
        and grant.sha256 == sha256
    )


def same_distribution(a: str, b: str) -> bool:
    """Whether two distribution names are one (compared as PEP 503 normalises them)."""
    return canonical_name(a) == canonical_name(b)


class AuditRecord(msgspec.Struct, frozen=True):
    """One entry of the append-only audit log; ``seq`` only grows, across every host sharing the file."""

    seq: int
    at: datetime
    ext_id: str | None
    event: str
    actor: str
    detail: dict[str, Any]


class HostState:
    """The state a Symphony host keeps between runs, in one SQLite file that several hosts may share.

    Changes append these audit events: ``enabled``, ``disabled``, ``granted``, ``revoked``, ``config_set``,
    ``config_cleared``, ``config_replaced``, ``quarantined`` and ``quarantine_lifted``, besides whatever
    callers pass to :meth:`record`.
    One instance may be used from several threads.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.read_only: str | None = None
        """Why the state cannot be changed (its file or folder is read-only), or None when it can.

        Such a state is read from a copy taken when it was opened: enablement, grants, config overrides
        and the audit log as they were then (all empty when there was no file). Every change raises a
        `StateError` that says the state is read-only."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if not _unwritable(exc):
                raise StateError(
                    f"cannot create the folder of the host state file {self.path} ({exc})",
                    hint="make sure that folder can be created and written to, or set SYMPHONY_HOME to another "
                    "place",
                ) from exc
            self._open_read_only(exc)
            return
        try:
            with _translated(self.path):
                self._conn = sqlite3.connect(
                    self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
            try:
                self._prepare()
            except BaseException:
                self._conn.close()
                raise
        except StateError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, (OSError, sqlite3.OperationalError)) and _unwritable(cause)):
                raise
            self._open_read_only(cause)

    def is_enabled(self, ext_id: str) -> bool:
        """Whether the extension may load; an extension nobody has disabled is enabled."""
        with self._using() as conn:
            row = conn.execute("SELECT enabled FROM enablement WHERE ext_id = ?", (ext_id,)).fetchone()
        return row is None or bool(row[0])

    def set_enabled(self, ext_id: str, enabled: bool, *, actor: str) -> None:
        """Enable or disable an extension."""
        with self._transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO enablement VALUES (?, ?)", (ext_id, enabled))
            _append(conn, _now(), "enabled" if enabled else "disabled", ext_id, actor, {})

    def enablement(self) -> dict[str, bool]:
        """Every explicit enable/disable choice by extension id; extensions not listed are enabled."""
        with self._using() as conn:
            rows = conn.execute("SELECT ext_id, enabled FROM enablement ORDER BY ext_id").fetchall()
        return {ext_id: bool(enabled) for ext_id, enabled in rows}

    def grant(
        self,
        ext_id: str,
        version: str,
        permissions: list[dict[str, Any]],
        *,
        actor: str,
        distribution: str | None = None,
        sha256: str | None = None,
    ) -> None:
        """Record the permissions granted to one version of an extension from ``distribution``, replacing
        that version's earlier grant from it.

        The first grant naming a distribution also drops the extension's grants made before grants
        named one: they served to carry over to it, and must not carry over to another distribution.
        """
        with self._transaction() as conn:
            at = _now()
            detail = {"version": version, "permissions": permissions}
            seq = _append(conn, at, "granted", ext_id, actor, detail)
            if distribution:
                conn.execute("DELETE FROM grants WHERE ext_id = ? AND distribution = ''", (ext_id,))
            conn.execute(
                f"INSERT OR REPLACE INTO grants ({_GRANT_COLUMNS}, audit_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (ext_id, version, json.dumps(permissions), actor, at, distribution or "", sha256, seq),
            )

    def revoke(self, ext_id: str, *, actor: str) -> None:
        """Withdraw every grant the extension holds, for all of its versions."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT version FROM grants WHERE ext_id = ? ORDER BY audit_seq", (ext_id,))
            versions = [version for (version,) in rows]
            conn.execute("DELETE FROM grants WHERE ext_id = ?", (ext_id,))
            _append(conn, _now(), "revoked", ext_id, actor, {"versions": versions})

    def granted(self, ext_id: str, version: str, distribution: str | None = None) -> Grant | None:
        """The grant made to this exact version of the extension from ``distribution`` (None: a grant
        made before grants named their distribution), if any."""
        with self._using() as conn:
            row = conn.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants WHERE ext_id = ? AND version = ? AND distribution = ?",
                (ext_id, version, distribution or ""),
            ).fetchone()
        return None if row is None else _grant(row)

    def grants(self, ext_id: str) -> list[Grant]:
        """Every grant the extension holds, for any version and distribution, oldest first."""
        with self._using() as conn:
            rows = conn.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants WHERE ext_id = ? ORDER BY audit_seq", (ext_id,)
            ).fetchall()
        return [_grant(row) for row in rows]

    def latest_grant(self, ext_id: str) -> Grant | None:
        """The most recently made grant for any version of the extension, to diff an upgrade against."""
        with self._using() as conn:
            row = conn.execute(
                f"SELECT {_GRANT_COLUMNS} FROM grants WHERE ext_id = ? ORDER BY audit_seq DESC LIMIT 1",
                (ext_id,),
            ).fetchone()
        return None if row is None else _grant(row)

    def config_overrides(self, ext_id: str) -> dict[str, Any]:
        """The config values a person set for the extension, by key."""
        with self._using() as conn:
            rows = conn.execute(
                "SELECT key, value FROM config_overrides WHERE ext_id = ? ORDER BY key", (ext_id,)
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def set_config_override(self, ext_id: str, key: str, value: Any, *, actor: str) -> None:
        """Override one config key of the extension with a JSON value."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO config_overrides VALUES (?, ?, ?)", (ext_id, key, json.dumps(value))
            )
            _append(conn, _now(), "config_set", ext_id, actor, {"key": key})

    def clear_config_override(self, ext_id: str, key: str, *, actor: str) -> None:
        """Drop one config override so the extension's own default applies again."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM config_overrides WHERE ext_id = ? AND key = ?", (ext_id, key))
            _append(conn, _now(), "config_cleared", ext_id, actor, {"key": key})

    def clear_config_overrides(self, ext_id: str, keys: Sequence[str], *, actor: str) -> list[str]:
        """Drop the extension's overrides of ``keys`` in one change; returns those that were stored."""
        with self._transaction() as conn:
            removed = [
                key
                for key in keys
                if conn.execute(
                    "DELETE FROM config_overrides WHERE ext_id = ? AND key = ?", (ext_id, key)
                ).rowcount
            ]
            if removed:
                _append(conn, _now(), "config_cleared", ext_id, actor, {"keys": removed})
        return removed

    def replace_config_overrides(self, ext_id: str, overrides: Mapping[str, Any], *, actor: str) -> None:
        """Make ``overrides`` the extension's whole set of config overrides."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM config_overrides WHERE ext_id = ?", (ext_id,))
            conn.executemany(
                "INSERT INTO config_overrides VALUES (?, ?, ?)",
                ((ext_id, key, json.dumps(value)) for key, value in overrides.items()),
            )
            _append(conn, _now(), "config_replaced", ext_id, actor, {"keys": sorted(overrides)})

    def quarantine(self, ext_id: str, version: str, reason: str, *, actor: str) -> None:
        """Keep this version of the extension from starting, in every host sharing the file, until lifted."""
        with self._transaction() as conn:
            at = _now()
            conn.execute(
                "INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?)", (ext_id, version, reason, at)
            )
            _append(conn, at, "quarantined", ext_id, actor, {"version": version, "reason": reason})

    def quarantined(self) -> dict[tuple[str, str], str]:
        """The reason of every quarantine, by (extension id, version)."""
        with self._using() as conn:
            rows = conn.execute("SELECT ext_id, version, reason FROM quarantine").fetchall()
        return {(ext_id, version): reason for ext_id, version, reason in rows}

    def lift_quarantine(self, ext_id: str, *, actor: str) -> bool:
        """Let every version of the extension start again; whether one was quarantined."""
        with self._transaction() as conn:
            lifted = conn.execute("DELETE FROM quarantine WHERE ext_id = ?", (ext_id,)).rowcount
            if lifted:
                _append(conn, _now(), "quarantine_lifted", ext_id, actor, {})
        return bool(lifted)

    def record(
        self, event: str, *, ext_id: str | None = None, actor: str, detail: Mapping[str, Any] | None = None
    ) -> int:
        """Append an audit record that goes with no change to the state, and return its ``seq``."""
        with self._transaction() as conn:
            return _append(conn, _now(), event, ext_id, actor, detail or {})

    def record_many(
        self, records: Sequence[tuple[str, str | None, str, Mapping[str, Any]]], *, durable: bool = True
    ) -> None:
        """Append several (event, ext_id, actor, detail) audit records in one transaction.

        Not ``durable``: the commit does not wait for the disk (``synchronous=NORMAL`` for it). It is in
        the file for every other process at once and survives this one crashing; only a power failure
        or an operating-system crash before the next durable commit or checkpoint may lose it, and the
        file stays whole either way. For records of what happened only (an extension's lifecycle),
        never for a change of the state or a decision about permissions.
        """
        if not records:
            return
        with self._transaction(durable=durable) as conn:
            at = _now()
            for event, ext_id, actor, detail in records:
                _append(conn, at, event, ext_id, actor, detail)

    def audit_log(
        self,
        ext_id: str | None = None,
        *,
        since_seq: int = 0,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """The audit records after ``since_seq`` (and at or after ``since``, an aware datetime), oldest
        first, for one extension or (``None``) for all."""
        query = "SELECT seq, at, ext_id, event, actor, detail FROM audit WHERE seq > ?"
        params: list[object] = [since_seq]
        if ext_id is not None:
            query += " AND ext_id = ?"
            params.append(ext_id)
        if since is not None:  # stored as UTC ISO text, which sorts as time does
            query += " AND at >= ?"
            params.append(since.astimezone(timezone.utc).isoformat())
        params.append(-1 if limit is None else limit)  # SQLite reads a negative LIMIT as "no limit"
        with self._using() as conn:
            rows = conn.execute(query + " ORDER BY seq LIMIT ?", params).fetchall()
        return [
            AuditRecord(seq, datetime.fromisoformat(at), ext, event, actor, json.loads(detail))
            for seq, at, ext, event, actor, detail in rows
        ]

    def close(self) -> None:
        """Release the database file; the instance cannot be used afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> HostState:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _open_read_only(self, why: BaseException) -> None:
        """Read the state from a copy in memory: its file (or folder) cannot be written."""
        self.read_only = _why_read_only(self.path, why)
        memory = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        try:
            if self.path.exists():
                with _translated(self.path):
                    _copy_read_only(self.path, memory)
            self._conn = memory
            self._prepare(in_place=False)
        except BaseException:
            memory.close()
            raise

    def _prepare(self, *, in_place: bool = True) -> None:
        with self._using() as conn:
            if in_place:
                _switch_to_wal(conn)
                conn.execute("PRAGMA synchronous = FULL")
            version = _user_version(conn)
        if version > _SCHEMA_VERSION:
            raise StateError(
                f"the host state file {self.path} was written by a newer Symphony (state schema {version}; "
                f"this one knows up to {_SCHEMA_VERSION})",
                hint="upgrade symphony-sdk-core, or move the file aside to start over with a new one",
            )
        if version < _SCHEMA_VERSION:
            with self._transaction(changing=False) as conn:  # in a read-only state, its copy is migrated
                version = _user_version(conn)  # another host may have done it while we waited for the lock
                if version == 0:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    version = 1
                for step in range(version + 1, _SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step]:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _translated(self.path):
            yield self._conn

    @contextmanager
    def _transaction(self, *, changing: bool = True, durable: bool = True) -> Iterator[sqlite3.Connection]:
        if changing and self.read_only is not None:
            raise StateError(
                f"cannot change the host state {self.path}: it is read-only ({self.read_only})",
                hint="reading it works; to change enablement, grants, config or quarantines, make it writable "
                "or set SYMPHONY_HOME to a folder that can be written to",
            )
        with self._using() as conn:
            lazy = not durable and self.read_only is None
            if lazy:
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                if lazy:
                    conn.execute("PRAGMA synchronous = FULL")


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turn SQLite's failures to use the file into a StateError that says what to do."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise StateError(
            f"cannot use the host state file {path} ({exc})",
            hint="check that it and its folder are readable and writable and that no stuck host holds it; "
            "if it is damaged, move it aside and the host will create a new one",
        ) from exc
    except sqlite3.DatabaseError as exc:
        if type(exc) is not sqlite3.DatabaseError:  # a misuse of the API, not a problem with the file
            raise
        raise StateError(
            f"the host state file {path} is damaged or is not a Symphony state database ({exc})",
            hint="move it aside; the host will create a new one, with every extension enabled and no "
            "permission grants or config overrides",
        ) from exc


def _unwritable(exc: BaseException) -> bool:
    """Whether ``exc`` says the state file or its folder cannot be written (but may still be read)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    text = str(exc).lower()
    return "readonly" in text or "read-only" in text or "unable to open database file" in text


def _why_read_only(path: Path, exc: BaseException) -> str:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK):
        return f"{folder} cannot be written"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path.name} cannot be written"
    return str(exc) or type(exc).__name__


def _copy_read_only(path: Path, into: sqlite3.Connection) -> None:
    """Copy the database at ``path`` into ``into`` without writing anything next to it.

    Read-only, SQLite still needs the WAL index file beside the database; when it cannot make one in a
    read-only folder, the file is read as immutable (a host that crashed may have left changes in the
    WAL file that this copy then misses)."""
    uri = path.resolve().as_uri()
    for mode in ("mode=ro", "mode=ro&immutable=1"):
        source = sqlite3.connect(f"{uri}?{mode}", uri=True, check_same_thread=False)
        try:
            source.execute("PRAGMA user_version").fetchone()
            source.backup(into)
            return
        except sqlite3.OperationalError:
            if mode.endswith("immutable=1"):
                raise
        finally:
            source.close()


def _append(
    conn: sqlite3.Connection, at: str, event: str, ext_id: str | None, actor: str, detail: Mapping[str, Any]
) -> int:
    cursor = conn.execute(
        "INSERT INTO audit (at, ext_id, event, actor, detail) VALUES (?, ?, ?, ?, ?)",
        (at, ext_id, event, actor, json.dumps(dict(detail))),
    )
    seq = cursor.lastrowid
    assert seq is not None  # an INSERT into a rowid table always sets it
    return seq


def _grant(row: tuple[str, str, str, str, str, str, str | None]) -> Grant:
    ext_id, version, permissions, granted_by, granted_at, distribution, sha256 = row
    return Grant(
        ext_id,
        version,
        json.loads(permissions),
        granted_by,
        datetime.fromisoformat(granted_at),
        distribution or None,
        sha256,
    )


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    # Turning a new file to WAL needs an exclusive lock, and SQLite reports a busy file at once here
    # instead of waiting, so hosts that create the file together retry until the busy timeout.
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
