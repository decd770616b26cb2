"""What discovery finds, as data: a record per extension, the problem that keeps one from being used, and
the catalog of them all. Plain structs that the index stores and every other layer reads.

No ``from __future__ import annotations`` here: msgspec reads a struct's annotations the first time it
decodes one, and strings would have to be compiled then, which cost each process's first discovery
about 0.3 ms for these three."""

from typing import Any

import msgspec

from symphony_core._model._kinds import canonical_id
from symphony_core._model._public import public

_MANIFEST_DECODER = msgspec.msgpack.Decoder()  # reused: a host decodes every manifest on each discover


@public
class Problem(msgspec.Struct, frozen=True):
    """Why a discovered extension cannot be used, in words a person can act on."""

    code: str
    message: str
    hint: str | None = None


@public
class Record(msgspec.Struct, frozen=True):
    """One extension found through its entry point, with its problem if it cannot be used here."""

    id: str
    kind: str
    group: str
    entry_point: str
    distribution: str
    distribution_version: str
    requires_python: str | None
    manifest_file: str | None
    manifest_data: msgspec.Raw
    problem: Problem | None = None
    distribution_sha256: str | None = None
    """SHA-256 of the distribution's ``RECORD`` file; None when the installer wrote none (an egg-info)."""
    environment: str | None = None
    """The managed environment it is installed in (``symphony install``), or None for the host's own."""

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The validated manifest as JSON-ready data (decoded from the index on each access)."""
        data: dict[str, Any] | None = _MANIFEST_DECODER.decode(self.manifest_data)
        return data


def record_key(record: Record) -> str:
    """The key that tells apart two records claiming the same id."""
    return f"{record.distribution}:{record.id}"


@public
class Catalog(msgspec.Struct, frozen=True):
    """Everything discovery found: the extensions and the versions of Symphony's own distributions."""

    records: tuple[Record, ...]
    packages: dict[str, str]
    package_requires: dict[str, tuple[str, ...]]


class Stamp(msgspec.Struct, frozen=True, array_like=True):
    """A file or folder as the discovery index saw it: a changed one makes the index stale."""

    path: str
    mtime_ns: int
    inode: int


class Index(msgspec.Struct, frozen=True):
    """The discovery index of one interpreter and path: the catalog, and what it was built from."""

    format: int
    python: str
    path_stamps: tuple[Stamp | None, ...]
    manifest_stamps: tuple[Stamp, ...]
    catalog: Catalog


def contested(catalog: Catalog) -> dict[str, list[Record]]:
    """The records of every id that several distributions declare, by canonical id."""
    seen: set[str] = set()
    shared: set[str] = set()
    for record in catalog.records:
        key = canonical_id(record.id)
        if key in seen:
            shared.add(key)
        seen.add(key)
    if not shared:  # as almost always: no list is built
        return {}
    claims: dict[str, list[Record]] = {}
    for record in catalog.records:
        key = canonical_id(record.id)
        if key in shared:
            claims.setdefault(key, []).append(record)
    return claims
