"""Find installed extensions through their entry points and static manifests, importing none of them.

A cold scan lists the distributions on ``sys.path`` itself rather than through
``importlib.metadata.entry_points()``: it reads each ``entry_points.txt`` once and parses only those
that mention a Symphony group; for a distribution that is no extension that costs less than the
standard library's scan. An extension costs more: its manifest is read, validated and checked for
compatibility (the results go into the index, so a warm discovery redoes none of it).

The result is cached in an index keyed by the interpreter and ``sys.path``. The index is valid while
every ``sys.path`` folder keeps its modification time (installing, upgrading or removing a distribution
changes it) and every manifest outside its distribution's folder keeps its own (an author editing an
editable install). Manifests stay encoded in the index until someone asks for one.

Each record also carries the SHA-256 of its distribution's ``RECORD`` file, the installer's list of every
file it wrote with their hashes: it tells one installed artifact from another with the same name and
version, so trust and grants can be bound to what is really installed.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import stat
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from symphony_core._model._errors import EntryPointError, ManifestError
from symphony_core._model._kinds import CORE_DISTRIBUTION, KIND_BY_GROUP, KINDS, MANIFEST_FILE, canonical_name
from symphony_core._model._public import public
from symphony_core._model._sizes import MAX_MANIFEST_BYTES

from ._entry_points import read_entry_points
from ._recorded import RECORDED_FILE, RecordedExtension, decode_recorded
from ._records import Catalog, Index, Problem, Record, Stamp, record_key

if TYPE_CHECKING:
    from symphony_core._model._manifest import Manifest

INDEX_FORMAT = 3
_WATCHED = frozenset({CORE_DISTRIBUTION, *(kind.package for kind in KINDS.values())})


@public
def discover(
    cache_dir: Path | None = None, *, path: Sequence[str] | None = None, rescan: bool = False
) -> Catalog:
    """Return the installed extensions, from the index when it is still valid, else by a full scan."""
    entries = sys.path if path is None else list(path)
    index_file = _index_file(cache_dir, entries) if cache_dir is not None else None
    if index_file is not None and not rescan:
        catalog = _load_index(index_file, entries)
        if catalog is not None:
            return catalog
    path_stamps = tuple(_stamp(entry) for entry in entries)
    catalog, manifest_stamps = _scan(entries)
    if index_file is not None:
        _save_index(index_file, path_stamps, manifest_stamps, catalog)
    return catalog


def scan(path: Sequence[str]) -> Catalog:
    """Scan ``path`` for distributions that declare Symphony entry points and read their manifests."""
    return _scan(path)[0]


def _scan(path: Sequence[str]) -> tuple[Catalog, tuple[Stamp, ...]]:
    """The catalog, and each manifest's stamp taken before it was read (so an edit during the scan shows)."""

    from ._compat import check_compat

    stamps: list[Stamp] = []
    records: list[Record] = []
    packages: dict[str, str] = {}
    package_requires: dict[str, tuple[str, ...]] = {}
    packages_on_path = _Packages(path)
    for name, version, info in _distributions(path):
        if name in _WATCHED:
            packages[name] = version
            package_requires[name] = _requires(info)
        try:
            text = _read(f"{info}{os.sep}entry_points.txt").decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if "[symphony." not in text:
            continue
        points = list(read_entry_points(text, KIND_BY_GROUP))
        listed = _read_optional(f"{info}{os.sep}RECORD")
        sha256 = None if listed is None else _sha256(listed)
        copies = _copies(info, points, listed, packages_on_path)
        requires_python = _requires_python(info) if copies is None else copies.requires_python
        for group, ep_name, value, _ in points:
            if copies is not None:
                found = _from_copy(
                    copies.extensions[group, ep_name], name, version, requires_python, sha256, info
                )
            else:
                found = _record(
                    group, ep_name, value, name, version, requires_python, sha256, path, packages_on_path
                )
            manifest = found.record.manifest_file
            # Stamped before reading (an edit during the scan shows). A manifest inside the folder that
            # holds its distribution's metadata changes only with a reinstall, which that folder's own
            # stamp sees, so only editable installs' manifests need stamps of their own.
            if (
                found.stamp is not None
                and manifest
                and not manifest.startswith(os.path.dirname(info) + os.sep)
            ):
                stamps.append(found.stamp)
            records.append(found.record)
    catalog = Catalog(records=tuple(records), packages=packages, package_requires=package_requires)
    problems = check_compat(catalog)
    checked = tuple(
        msgspec.structs.replace(record, problem=problems[record_key(record)])
        if record.problem is None and record_key(record) in problems
        else record
        for record in catalog.records
    )
    return msgspec.structs.replace(catalog, records=checked), tuple(stamps)


def _distributions(path: Sequence[str]) -> Iterator[tuple[str, str, str]]:
    """Yield (canonical name, version, metadata folder) per distribution; the first on the path wins."""
    seen: set[str] = set()
    for entry in path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            if folder.endswith(".dist-info"):
                stem = folder[: -len(".dist-info")]
            elif folder.endswith(".egg-info"):
                stem = folder[: -len(".egg-info")]
            else:
                continue
            raw_name, _, rest = stem.partition("-")
            name = canonical_name(raw_name)
            if name in seen:
                continue
            seen.add(name)
            info = os.path.join(entry or ".", folder)
            version = rest.split("-", 1)[0] if rest else _version_from_metadata(info)
            yield name, version, info


def _requires_python(info: str) -> str | None:
    """The Requires-Python header."""
    found = _headers(info).get("requires-python")
    return (found[0] or None) if found else None


def _requires(info: str) -> tuple[str, ...]:
    """The Requires-Dist headers of a wheel's metadata; an egg's ``requires.txt`` through
    ``importlib_metadata``, which turns its sections into markers."""
    if not info.endswith(".egg-info"):
        return tuple(_headers(info).get("requires-dist", ()))
    import importlib_metadata

    return tuple(importlib_metadata.PathDistribution(Path(info)).requires or ())


def _headers(info: str) -> dict[str, list[str]]:
    """The metadata's headers by lower-case name (RFC 822 style: a line that starts with white space
    continues the one before), read up to the first empty line: the long description after them can be
    large."""
    for name in ("METADATA", "PKG-INFO"):
        try:
            text = _read(f"{info}{os.sep}{name}", until=b"\n\n")
        except OSError:
            continue
        headers: dict[str, list[str]] = {}
        values: list[str] | None = None
        for line in text.decode("utf-8", "replace").splitlines():
            if not line:  # the first empty line ends them; one of white space only continues a value
                break
            if line[0] in " \t":
                if values:
                    values[-1] = f"{values[-1]} {line.strip()}"
                continue
            key, sep, value = line.partition(":")
            if not sep:
                values = None
                continue
            values = headers.setdefault(key.strip().lower(), [])
            values.append(value.strip())
        return headers
    return {}


def _read_optional(file: str) -> bytes | None:
    try:
        return _read(file)
    except OSError:
        return None


class _Copies(msgspec.Struct, frozen=True):
    requires_python: str | None
    extensions: dict[tuple[str, str], RecordedExtension]


def _copies(
    info: str, points: list[tuple[str, str, str, int]], listed: bytes | None, packages: _Packages
) -> _Copies | None:
    """The distribution's recorded manifests (`_recorded`), when every one of its entry points has one that
    its installed files vouch for. Otherwise None, and the scan reads the manifests themselves.

    An entry vouched for is the entry point ``entry_points.txt`` declares; its top-level package is a
    regular package installed from this distribution (``RECORD`` lists its ``__init__.py``) beside the
    metadata, which no folder earlier on the path shadows, so it is the one an import finds; and the
    manifest it names is the one the scan would read (the nearest to the module that ``RECORD`` lists),
    with the hash ``RECORD`` lists for it.
    """
    if listed is None or info.endswith(".egg-info"):
        return None
    # Bounded (twice a manifest's limit): a distribution writes what it wants there.
    try:
        fd = os.open(f"{info}{os.sep}{RECORDED_FILE}", _READ)
    except OSError:
        return None
    try:
        content = _read_fd(fd, limit=2 * MAX_MANIFEST_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    recorded = decode_recorded(content)
    if recorded is None:
        return None
    by_point = {(entry.group, entry.name): entry for entry in recorded.extensions}
    site = os.path.dirname(info)
    for group, ep_name, value, _ in points:
        entry = by_point.get((group, ep_name))
        if entry is None or entry.value != value:
            return None
        name, colon, attr = value.partition(":")
        module = name.strip().split(".")
        if not colon or not attr.strip() or not all(map(str.isidentifier, module)):
            return None  # malformed: reported by reading its manifest the usual way (`module_parts`)
        folder, _, file = entry.manifest_file.rpartition("/")
        depth = folder.count("/") + 1
        if (
            file != MANIFEST_FILE
            or folder.split("/") != module[:depth]
            or not _lists(listed, f"{entry.manifest_file},{entry.manifest_hash},")
            or not _lists(listed, f"{module[0]}/__init__.py,")
            or any(
                _lists(listed, f"{'/'.join(module[:nearer])}/{MANIFEST_FILE},")
                for nearer in range(depth + 1, len(module) + 1)
            )
            or packages.shadowed(module[0], site)
        ):
            return None
    return _Copies(recorded.requires_python, by_point)


def _lists(listed: bytes, row: str) -> bool:
    """Whether ``RECORD`` has a line that starts with ``row``."""
    start = listed.find(row.encode())
    while start > 0 and listed[start - 1] != 10:  # not at a line's start: look further
        start = listed.find(row.encode(), start + 1)
    return start >= 0


def _read(file: str, *, until: bytes | None = None) -> bytes:
    """The bytes of a small file, or of its start up to ``until`` (and a little after); with plain file
    descriptors, which cost a third of ``open()``'s buffered file objects, for a scan's thousands."""
    fd = os.open(file, _READ)
    try:
        return _read_fd(fd, until=until)
    finally:
        os.close(fd)


def _read_fd(fd: int, *, until: bytes | None = None, limit: int | None = None) -> bytes:
    chunks, size = [], 0
    while chunk := os.read(fd, 16384):
        chunks.append(chunk)
        size += len(chunk)
        if until is not None and until in chunk:
            break
        if limit is not None and size > limit:
            raise OSError(f"it grew past {limit} bytes while read")
    return b"".join(chunks)


def _version_from_metadata(info: str) -> str:
    import importlib_metadata

    return importlib_metadata.PathDistribution(Path(info)).version or "0"


class _Found(msgspec.Struct, frozen=True):
    record: Record
    stamp: Stamp | None = None


def _record(
    group: str,
    ep_name: str,
    value: str,
    dist: str,
    version: str,
    requires_python: str | None,
    sha256: str | None,
    path: Sequence[str],
    packages: _Packages,
) -> _Found:
    """An extension's record from the manifest nearest to its entry point's module, read and validated."""
    from symphony_core._model._manifest import parse_manifest, read_manifest

    found = (group, ep_name, value, dist, version, requires_python, sha256)
    stamp = None
    own = path is not sys.path
    manifest_file: str | None = None
    try:
        if own:  # the folders of the package are known from the listings: open the nearest manifest
            manifest_file, content, stamp = _read_nearest(ep_name, value, dist, path, packages)
            manifest = parse_manifest(content, file=manifest_file, distribution_version=version)
        else:
            located = locate_manifest(ep_name, value, dist)
            manifest_file = str(located)
            stamp = _stamp(manifest_file)
            manifest = read_manifest(located, distribution_version=version)
    except EntryPointError as exc:
        return _Found(_make_record(*found, None, None, _problem("entry-point", exc)), stamp)
    except ManifestError as exc:
        return _Found(_make_record(*found, manifest_file, None, _problem("manifest", exc)), stamp)
    return _Found(_make_record(*found, manifest_file, manifest), stamp)


def _from_copy(
    entry: RecordedExtension,
    dist: str,
    version: str,
    requires_python: str | None,
    sha256: str | None,
    info: str,
) -> _Found:
    """An extension's record from its recorded manifest (`_copies`), validated again as if read from its
    TOML: the same checks, the same record."""
    from symphony_core._model._manifest import validate_manifest

    found = (entry.group, entry.name, entry.value, dist, version, requires_python, sha256)
    manifest_file = os.path.join(os.path.dirname(info), *entry.manifest_file.split("/"))
    try:
        manifest = validate_manifest(dict(entry.manifest), file=manifest_file, distribution_version=version)
    except ManifestError as exc:
        return _Found(_make_record(*found, manifest_file, None, _problem("manifest", exc)))
    return _Found(_make_record(*found, manifest_file, manifest))


def _make_record(
    group: str,
    ep_name: str,
    value: str,
    dist: str,
    version: str,
    requires_python: str | None,
    sha256: str | None,
    manifest_file: str | None,
    manifest: Manifest | None,
    problem: Problem | None = None,
) -> Record:
    kind = KIND_BY_GROUP[group].name
    if manifest is not None and manifest.kind != kind:
        problem = Problem(
            "manifest",
            f"{manifest_file}: kind is '{manifest.kind}' but the entry point is in group '{group}'",
            f"register it under [{KINDS[manifest.kind].group}] or fix `kind`",
        )
    elif manifest is not None and manifest.id != ep_name:
        problem = Problem(
            "manifest",
            f"{manifest_file}: id '{manifest.id}' differs from the entry point's name '{ep_name}'",
            "use the manifest id as the entry point's name",
        )
    data = None if manifest is None else manifest.model_dump(mode="json", by_alias=True)
    return Record(
        id=ep_name,
        kind=kind,
        group=group,
        entry_point=value,
        distribution=dist,
        distribution_version=version,
        requires_python=requires_python,
        manifest_file=manifest_file,
        manifest_data=msgspec.Raw(msgspec.msgpack.encode(data)),
        problem=problem,
        distribution_sha256=sha256,
    )


def _read_nearest(
    ep_name: str, value: str, dist: str, path: Sequence[str], packages: _Packages
) -> tuple[str, bytes, Stamp]:
    """The nearest manifest of an entry point's module, as `locate_manifest` finds it, with its bytes and
    its stamp (taken as it is opened, so an edit after that shows): one ``open`` per candidate instead of
    a ``stat`` per folder and candidate, as a scan does this a thousand times."""
    parts = module_parts(ep_name, value, dist)
    for root in _package_folders(ep_name, dist, parts, path, packages):
        folders = [root]
        for part in parts[1:]:
            folders.append(f"{folders[-1]}{os.sep}{part}")
        for folder in reversed(folders):  # a missing folder fails its candidate's open like a missing file
            candidate = f"{folder}{os.sep}{MANIFEST_FILE}"
            try:
                found = _read_manifest_file(candidate)
            except OSError as exc:
                raise ManifestError(
                    f"cannot read manifest {candidate}: {exc}", file=candidate, hint="make the file readable"
                ) from None
            if found is not None:
                return candidate, *found
    raise _no_manifest(ep_name, dist, ".".join(parts))


def _read_manifest_file(file: str) -> tuple[bytes, Stamp] | None:
    """A manifest's bytes and stamp, or None when ``file`` is no regular file (missing, a folder, a
    pipe: opened without blocking and never read). Larger than `MAX_MANIFEST_BYTES` is an error."""
    try:
        fd = os.open(file, _READ)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > MAX_MANIFEST_BYTES:
            raise OSError(f"it is {st.st_size} bytes, more than a manifest may be ({MAX_MANIFEST_BYTES})")
        content = _read_fd(fd, limit=MAX_MANIFEST_BYTES)
    finally:
        os.close(fd)
    return content, Stamp(file, st.st_mtime_ns, st.st_ino)


def _problem(code: str, exc: ManifestError) -> Problem:
    return Problem(code, exc.message, exc.hint)


def locate_manifest(
    ep_name: str,
    value: str,
    dist: str,
    *,
    path: Sequence[str] | None = None,
    packages: _Packages | None = None,
) -> Path:
    """Find the manifest of an entry point's module on disk, without importing anything of it.

    The manifest is the ``symphony.toml`` nearest to the module, searching from the module's own
    package up to its top-level package. With ``path`` the package is looked for in those folders
    only; without it, through the full import machinery (which sees editable installs). ``packages``
    finds them on ``path`` from one listing of each folder (a scan's many lookups).
    """
    parts = module_parts(ep_name, value, dist)
    for root in _package_folders(ep_name, dist, parts, path, packages):
        folder = Path(root)
        for part in parts[1:]:
            if not (folder / part).is_dir():
                break
            folder = folder / part
        top = Path(root)
        while True:
            candidate = folder / MANIFEST_FILE
            if candidate.is_file():
                return candidate
            if folder == top:
                break
            folder = folder.parent
    raise _no_manifest(ep_name, dist, ".".join(parts))


def module_parts(ep_name: str, value: str, dist: str) -> list[str]:
    """The dotted parts of the module an entry point names; `EntryPointError` when it is malformed."""
    module, sep, attr = value.partition(":")
    parts = module.strip().split(".")
    if not sep or not attr.strip() or not all(part.isidentifier() for part in parts):
        raise EntryPointError(
            f"entry point '{ep_name} = {value}' of distribution '{dist}' is malformed",
            extension=ep_name,
            hint="write it as 'package.module:ClassName'",
        )
    return parts


def _package_folders(
    ep_name: str, dist: str, parts: list[str], path: Sequence[str] | None, packages: _Packages | None
) -> list[str]:
    """The folders of the module's top-level package; `EntryPointError` when it is missing or a module."""
    locations = packages.find(parts[0]) if packages is not None else _UNKNOWN
    if locations is _UNKNOWN:
        try:
            if path is None:
                spec = importlib.util.find_spec(parts[0])
            else:
                spec = importlib.machinery.PathFinder.find_spec(parts[0], list(path))
        except (ImportError, ValueError):
            spec = None
        locations = None if spec is None else list(spec.submodule_search_locations or [])
    if locations is None:
        raise EntryPointError(
            f"entry point '{ep_name}' of distribution '{dist}' names module '{'.'.join(parts)}', which is not installed",
            extension=ep_name,
            hint=f"reinstall '{dist}'; if it is yours, check the package is included in its wheel",
        )
    if not locations:
        raise EntryPointError(
            f"entry point '{ep_name}' names '{parts[0]}', a single-file module; an extension must be a package",
            extension=ep_name,
            hint=f"move the code into a folder '{parts[0]}/' with __init__.py and {MANIFEST_FILE}",
        )
    return list(locations)


def _no_manifest(ep_name: str, dist: str, module: str) -> EntryPointError:
    return EntryPointError(
        f"extension '{ep_name}' of distribution '{dist}' ships no {MANIFEST_FILE} next to module '{module}'",
        extension=ep_name,
        hint=f"put {MANIFEST_FILE} in the package folder and make sure the build includes it",
    )


_UNKNOWN: Any = object()
_READ = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
"""How the scan opens the small files it reads: ``O_BINARY`` matters on Windows only; ``O_NONBLOCK``
keeps a named pipe where a file should be from blocking the scan (its read then fails or finds nothing)."""
_SUFFIXES = tuple(importlib.machinery.all_suffixes())


class _Packages:
    """Where top-level packages lie on a path of folders, found as the path finder finds them (the first
    regular package or module wins; folders without ``__init__`` are namespace portions), from one
    listing of each folder: a scan looks up hundreds of packages on the same few folders."""

    def __init__(self, path: Sequence[str]) -> None:
        self.path = tuple(path)
        self._listings: dict[str, frozenset[str] | None] = {}

    def find(self, top: str) -> list[str] | None:
        """The folders of package ``top`` (empty for a single-file module), None when it is not on the
        path, or ``_UNKNOWN`` when an entry is not a folder (a zip file: the import system knows)."""
        portions: list[str] = []
        for entry in self.path:
            names = self._listing(entry)
            if names is None:
                if os.path.exists(entry or "."):
                    return _UNKNOWN  # type: ignore[no-any-return]
                continue
            folder = f"{entry or '.'}{os.sep}{top}"
            namespace = False
            if top in names:
                if any(os.path.isfile(f"{folder}{os.sep}__init__{suffix}") for suffix in _SUFFIXES):
                    return [folder]  # a file in it: a folder, so a regular package
                namespace = os.path.isdir(folder)
            if any(f"{top}{suffix}" in names for suffix in _SUFFIXES):
                return []
            if namespace:
                portions.append(folder)
        return portions or None

    def shadowed(self, top: str, site: str) -> bool:
        """Whether a folder on the path before ``site`` holds a package or module ``top`` (or is no
        folder, so only the import system would know); True as well when ``site`` is not on the path."""
        for entry in self.path:
            if (entry or ".").rstrip(os.sep) == site.rstrip(os.sep):
                return False
            names = self._listing(entry)
            if names is None:
                if os.path.exists(entry or "."):
                    return True
                continue
            if top in names or any(f"{top}{suffix}" in names for suffix in _SUFFIXES):
                return True
        return True

    def _listing(self, entry: str) -> frozenset[str] | None:
        if entry not in self._listings:
            try:
                self._listings[entry] = frozenset(os.listdir(entry or "."))
            except OSError:
                self._listings[entry] = None
        return self._listings[entry]


def _stamp(entry: str) -> Stamp | None:
    try:
        st = os.stat(entry or ".")
    except OSError:
        return None
    return Stamp(entry, st.st_mtime_ns, st.st_ino)


def _sha256(data: bytes) -> str:
    import hashlib  # here: only a cold scan hashes (hashlib's import costs a warm start about 3 ms)

    return hashlib.sha256(data).hexdigest()


def index_key(text: str) -> str:
    """A short name for an index file kept for ``text`` (an interpreter and its path).

    Not a digest anyone relies on: an index records the stamps of what it was built from, with their
    paths, and one whose stamps differ is scanned again, so two keys that collide only cost a scan.
    """
    data = text.encode(errors="surrogateescape")
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def _index_file(cache_dir: Path, entries: Sequence[str]) -> Path:
    key = index_key("\0".join([sys.executable, *entries]))
    return cache_dir / f"discovery-{key}.msgpack"


def _load_index(index_file: Path, entries: Sequence[str]) -> Catalog | None:
    try:
        index = msgspec.msgpack.decode(index_file.read_bytes(), type=Index)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if index.format != INDEX_FORMAT or index.python != sys.version:
        return None
    if len(index.path_stamps) != len(entries):
        return None
    for entry, stamp in zip(entries, index.path_stamps, strict=False):
        if _stamp(entry) != stamp:
            return None
    for stamp in index.manifest_stamps:
        if _stamp(stamp.path) != stamp:
            return None
    return index.catalog


def _save_index(
    index_file: Path,
    path_stamps: tuple[Stamp | None, ...],
    manifest_stamps: tuple[Stamp, ...],
    catalog: Catalog,
) -> None:
    index = Index(INDEX_FORMAT, sys.version, path_stamps, manifest_stamps, catalog)
    try:
        index_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = index_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(msgspec.msgpack.encode(index))
        os.replace(tmp, index_file)
    except OSError:
        pass  # the index is only a cache: without it the next discovery scans again
