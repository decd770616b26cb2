"""Build and sign a marketplace: what ``symphony catalog build / refresh / rotate`` do for its operator.

**Build** lists the index's projects (the simple API, PEP 503 or PEP 691), downloads their wheels (wheels
only, each checked against the index's hash), and reads each with `read_wheel`, running nothing. Every
extension becomes one `Listing` of the catalog; a wheel that `read_wheel` refuses (a manifest that does not
validate, a RECORD that does not match, a name of 300 characters) is left out and reported with why, and
an id two distributions claim is left out for both. Libraries (wheels with no Symphony entry point) are
skipped.

**Sign**: the marketplace is a TUF repository in the output folder, written with python-tuf's metadata and
repository API, every key an ed25519 key of securesystemslib's ``CryptoSigner``::

    OUT/metadata/1.root.json …  N.root.json, root.json   root: the keys of each role (root.json: the latest)
    OUT/metadata/N.targets.json                           catalog.json and every listed wheel, with hashes
    OUT/metadata/N.snapshot.json                          the version of targets
    OUT/metadata/timestamp.json                           the version of snapshot; short-lived
    OUT/targets/<sha256>.catalog.json                     the catalog (consistent snapshots)

Serve ``OUT`` as it is (any static file server, or a shared folder); give hosts ``metadata/1.root.json``
(or any later root) out of band. The private keys, one PEM file per role (``root.pem``, ``targets.pem``,
``snapshot.pem``, ``timestamp.pem``), stay in the keys folder and are never written to ``OUT``; a first
build makes them. Files are replaced in an order that keeps the published state consistent at every
moment: the catalog, then targets, snapshot, and the timestamp last.

**Refresh** re-signs the timestamp (and snapshot) so hosts keep accepting an unchanged catalog; run it
more often than the timestamp expires. **Rotate** replaces the keys of some roles: a new root, signed by the
old root keys and the new, names the new keys, so hosts that pinned the old root follow.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.parser import HeaderParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symphony_core._model._errors import InstallError, SymphonyError
from symphony_core._model._kinds import KIND_BY_GROUP, canonical_name

from ._install import TIMEOUT, Release, Wheel, _dist_info, _index_files, _Links, download, read_wheel
from ._listings import (
    CATALOG_TARGET,
    WHEELS,
    ListedFile,
    ListedVersion,
    Listing,
    Listings,
    listing,
)
from ._marketplace import EXTRA, MarketplaceError

if TYPE_CHECKING:
    from securesystemslib.signer import Signer
    from tuf.api.metadata import Metadata, MetaFile

ROLES = ("root", "targets", "snapshot", "timestamp")
LIFETIMES = {
    "root": timedelta(days=365),
    "targets": timedelta(days=365),
    "snapshot": timedelta(days=30),
    "timestamp": timedelta(days=1),
}
"""How long each role's metadata stays valid by default; the timestamp's is set per build or refresh."""
MAX_README = 200_000
"""Characters of a README the catalog keeps; a longer one is cut (and says so)."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Refusal:
    """A wheel (or an id) left out of the catalog, and why."""

    file: str
    why: str

    def as_json(self) -> dict[str, str]:
        return {"file": self.file, "why": self.why}


@dataclass(frozen=True)
class Published:
    """What a build, refresh or rotation wrote."""

    out: Path
    versions: Mapping[str, int]
    """The version of each role's metadata now published."""
    listings: Listings | None = None
    refused: tuple[Refusal, ...] = ()
    skipped: tuple[str, ...] = ()
    """Wheels that are not extensions (libraries), left out."""
    created_keys: tuple[str, ...] = ()
    rotated: tuple[str, ...] = ()
    expires: str = ""
    """When the timestamp just signed expires (ISO 8601, UTC)."""

    @property
    def root(self) -> Path:
        """The first root: what a host pins (any later ``N.root.json`` works too)."""
        return self.out / "metadata" / "1.root.json"

    def as_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "root": str(self.root),
            "versions": dict(self.versions),
            "extensions": None if self.listings is None else len(self.listings),
            "refused": [refusal.as_json() for refusal in self.refused],
            "skipped": list(self.skipped),
            "created_keys": list(self.created_keys),
            "rotated": list(self.rotated),
            "timestamp_expires": self.expires,
        }


# Building the catalog


def build(
    index: str,
    out: Path,
    keys: Path,
    *,
    timestamp_lifetime: timedelta = LIFETIMES["timestamp"],
    progress: Progress | None = None,
) -> Published:
    """Build the catalog of the extensions ``index`` publishes and publish it, signed, in ``out``."""
    signing = _Signing.open(out, keys)
    say = progress or (lambda _message: None)
    projects = list_projects(index)
    say(f"{len(projects)} project(s) on {index}")
    read: list[tuple[Wheel, dict[str, Any], ListedFile]] = []
    refused: list[Refusal] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="symphony-catalog-") as staging:
        for project in projects:
            for wheel, meta, file, problem in _read_project(index, project, Path(staging)):
                if problem is not None:
                    refused.append(problem)
                elif wheel is None:
                    skipped.append(file.filename)
                else:
                    read.append((wheel, meta, file))
    listings, conflicts = _listings(read, index)
    refused += conflicts
    say(
        f"{len(listings)} extension(s) listed, {len(refused)} left out, {len(skipped)} other wheel(s) skipped"
    )
    data = json.dumps(listings.as_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    versions, expires = signing.publish(
        data.encode("utf-8"),
        {file.filename: file for listed in listings for version in listed.versions for file in version.files},
        timestamp_lifetime,
    )
    return Published(
        out, versions, listings, tuple(refused), tuple(skipped), signing.created, expires=expires
    )


def list_projects(index: str) -> list[str]:
    """The names of the projects on a simple-API index (its root page, PEP 691 JSON or PEP 503 HTML)."""
    url = index.rstrip("/") + "/"
    request = urllib.request.Request(
        url, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read()
            kind = response.headers.get("Content-Type", "")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InstallError(
            f"cannot list the projects of the package index {index} ({reason}); nothing was published",
            hint="check that the index is up and its address right (the simple API's root, e.g. …/simple/)",
        ) from None
    if "json" in kind:
        return sorted({canonical_name(item["name"]) for item in json.loads(body).get("projects", [])})
    links = _Links()
    links.feed(body.decode("utf-8", errors="replace"))
    return sorted({canonical_name(text.strip()) for _, _, text in links.found if text.strip()})


def _read_project(
    index: str, project: str, staging: Path
) -> Iterator[tuple[Wheel | None, dict[str, Any], ListedFile, Refusal | None]]:
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    for found in _index_files(index, project):
        if found.yanked or not found.filename.endswith(".whl"):
            continue
        try:
            _, version, _, _ = parse_wheel_filename(found.filename)
        except InvalidWheelFilename:
            continue
        release = Release(project, str(version), found.filename, found.url, found.sha256, index)
        folder = Path(tempfile.mkdtemp(dir=staging))
        try:
            path = download(release, folder)
            listed = ListedFile(found.filename, _sha256(path), path.stat().st_size)
            if not _declares_extension(path):
                yield None, {}, listed, None
                continue
            try:
                wheel = read_wheel(path)
            except SymphonyError as exc:  # an InstallError, or the ManifestError of a manifest that is wrong
                yield None, {}, listed, Refusal(found.filename, " ".join(exc.message.split()))
                continue
            yield wheel, _metadata(path), listed, None
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _declares_extension(path: Path) -> bool:
    """Whether a wheel's ``entry_points.txt`` has a Symphony group (`read_wheel` then reads it properly)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt")]
            text = "".join(archive.read(name).decode("utf-8", "replace") for name in names)
    except (zipfile.BadZipFile, OSError, EOFError):
        return True  # read_wheel says what is wrong with it
    return any(f"[{group}]" in text for group in KIND_BY_GROUP)


def _metadata(path: Path) -> dict[str, Any]:
    """The wheel's README (long description) and links (Project-URL, Home-page), read as text."""
    with zipfile.ZipFile(path) as archive:
        files = {info.filename: info for info in archive.infolist()}
        info_dir = _dist_info(files, path, path.name)
        text = archive.read(f"{info_dir}/METADATA").decode("utf-8", "replace")
    message = HeaderParser().parsestr(text)
    readme = message.get_payload()
    if not isinstance(readme, str) or not readme.strip():
        readme = message.get("Description", "") or ""
    truncated = len(readme) > MAX_README
    links: dict[str, str] = {}
    if message.get("Home-page"):
        links["Homepage"] = str(message["Home-page"])
    for entry in message.get_all("Project-URL") or ():
        label, _, url = str(entry).partition(",")
        if url.strip():
            links[label.strip()] = url.strip()
    return {
        "readme": readme[:MAX_README] + ("\n\n[README cut: too long]" if truncated else ""),
        "readme_type": str(message.get("Description-Content-Type") or "text/plain").split(";")[0].strip(),
        "links": links,
    }


def _listings(
    read: Sequence[tuple[Wheel, dict[str, Any], ListedFile]], index: str
) -> tuple[Listings, list[Refusal]]:
    """One listing per extension id; an id declared by more than one distribution is refused for all."""
    from packaging.version import Version

    from symphony_core._model._spoofing import manifest_suspicions

    by_id: dict[str, list[tuple[Wheel, dict[str, Any], ListedFile, int]]] = {}
    for wheel, meta, file in read:
        for number, extension in enumerate(wheel.extensions):
            by_id.setdefault(extension.id, []).append((wheel, meta, file, number))
    listings: list[Listing] = []
    refused: list[Refusal] = []
    for ext_id, entries in sorted(by_id.items()):
        owners = sorted({wheel.distribution for wheel, _, _, _ in entries})
        if len(owners) > 1:
            refused.append(
                Refusal(
                    ext_id, f"the id {ext_id} is declared by more than one distribution ({', '.join(owners)})"
                )
            )
            continue
        versions: dict[str, list[tuple[Wheel, dict[str, Any], ListedFile, int]]] = {}
        for entry in entries:
            versions.setdefault(entry[0].version, []).append(entry)
        ordered = sorted(versions, key=Version)
        listed = []
        for version in ordered:
            wheel, _, _, number = versions[version][0]
            manifest = wheel.extensions[number].manifest
            listed.append(
                ListedVersion(
                    version,
                    str(manifest["targets"]),
                    tuple(wheel.extensions[number].permissions),
                    tuple(sorted({file for _, _, file, _ in versions[version]}, key=lambda f: f.filename)),
                    wheel.requires_python,
                )
            )
        wheel, meta, _, number = versions[ordered[-1]][0]
        extension = wheel.extensions[number]
        name, summary = str(extension.manifest["name"]), str(extension.manifest["summary"])
        listings.append(
            listing(
                ext_id=ext_id,
                kind=extension.kind,
                name=name,
                summary=summary,
                distribution=wheel.distribution,
                index=index,
                versions=listed,
                readme=meta["readme"],
                readme_type=meta["readme_type"],
                links=meta["links"],
                warnings=[found.as_json() for found in manifest_suspicions(name, extension.permissions)],
            )
        )
    generated = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return Listings(tuple(listings), generated, index), refused


# Refreshing and rotating


def refresh(out: Path, keys: Path, *, timestamp_lifetime: timedelta = LIFETIMES["timestamp"]) -> Published:
    """Re-sign the snapshot and timestamp (and targets, if it expires within a month) of a published
    marketplace, so hosts keep accepting its catalog."""
    signing = _Signing.open(out, keys, create=False)
    versions, expires = signing.refresh(timestamp_lifetime)
    return Published(out, versions, expires=expires)


def rotate(
    out: Path,
    keys: Path,
    roles: Iterable[str] = ROLES,
    *,
    timestamp_lifetime: timedelta = LIFETIMES["timestamp"],
) -> Published:
    """Replace the keys of ``roles`` with new ones: a new root version names them, signed by the previous
    root keys and the new; targets, snapshot and timestamp are signed again. The old private keys move
    to ``keys/retired/``."""
    chosen = tuple(dict.fromkeys(roles))
    unknown = [role for role in chosen if role not in ROLES]
    if unknown or not chosen:
        raise MarketplaceError(
            f"cannot rotate {', '.join(unknown) or 'nothing'}: the roles are {', '.join(ROLES)}",
            hint="name one or more roles: --role root --role timestamp",
        )
    signing = _Signing.open(out, keys, create=False)
    versions, expires = signing.rotate(chosen, timestamp_lifetime)
    return Published(out, versions, rotated=chosen, expires=expires)


def parse_lifetime(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h`` or ``7d`` as a span of time."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    try:
        seconds = float(number) * units[unit]
    except (KeyError, ValueError):
        raise MarketplaceError(
            f"'{text}' is not a span of time", hint="write a number and a unit: 90s, 30m, 12h or 7d"
        ) from None
    if seconds <= 0:
        raise MarketplaceError(f"'{text}' is not a positive span of time", hint="e.g. 1d")
    return timedelta(seconds=seconds)


# The TUF repository in the output folder


def _require_signing() -> None:
    try:
        import tuf.repository  # noqa: F401
        from securesystemslib.signer import CryptoSigner  # noqa: F401
        from securesystemslib.signer._crypto_signer import CRYPTO_IMPORT_ERROR
    except ImportError:
        raise MarketplaceError(
            "building a marketplace needs python-tuf and securesystemslib, which are not installed",
            hint=f"pip install '{EXTRA}'",
        ) from None
    if CRYPTO_IMPORT_ERROR:
        raise MarketplaceError(
            "signing a marketplace needs the cryptography package, which is not installed",
            hint=f"pip install '{EXTRA}'",
        )


def _repository_class() -> type[Any]:
    from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
    from tuf.api.serialization.json import JSONSerializer
    from tuf.repository import Repository

    kinds: dict[str, type[Any]] = {
        "root": Root,
        "targets": Targets,
        "snapshot": Snapshot,
        "timestamp": Timestamp,
    }

    class FolderRepository(Repository):
        """The marketplace's metadata in ``out/metadata``, signed with the keys at hand."""

        def __init__(self, folder: Path, signers: dict[str, list[Signer]]) -> None:
            self.folder = folder
            self.signers = signers
            self.also_sign_root: list[Signer] = []
            """The previous root keys, which sign a new root during a rotation."""
            self.lifetimes = dict(LIFETIMES)
            self.written: dict[str, Metadata[Any]] = {}
            self.infos: dict[str, MetaFile] = {}

        def _read(self, name: str) -> Metadata[Any] | None:
            try:
                return Metadata.from_bytes((self.folder / name).read_bytes())
            except FileNotFoundError:
                return None

        def _current(self, role: str) -> Metadata[Any] | None:
            if role in self.written:
                return self.written[role]
            if role in ("root", "timestamp"):
                return self._read(f"{role}.json")
            timestamp = self._current("timestamp")
            if timestamp is None:
                return None
            if role == "snapshot":
                return self._read(f"{timestamp.signed.snapshot_meta.version}.snapshot.json")
            snapshot = self._current("snapshot")
            if snapshot is None:
                return None
            return self._read(f"{snapshot.signed.meta['targets.json'].version}.targets.json")

        def open(self, role: str) -> Metadata[Any]:
            found = self._current(role)
            if found is not None:
                return copy.deepcopy(found)
            fresh = Metadata(kinds[role](consistent_snapshot=True) if role == "root" else kinds[role]())
            fresh.signed.version = 0
            return fresh

        def close(self, role: str, md: Metadata[Any]) -> None:
            md.signed.version += 1
            md.signed.expires = (datetime.now(timezone.utc) + self.lifetimes[role]).replace(microsecond=0)
            md.signatures.clear()
            signers = self.signers[role] + (self.also_sign_root if role == "root" else [])
            for signer in signers:
                md.sign(signer, append=True)
            self._check(role, md)
            data = md.to_bytes(JSONSerializer(compact=True))
            if role == "root":
                _write(self.folder / f"{md.signed.version}.root.json", data)
                _write(self.folder / "root.json", data)
            elif role == "timestamp":
                _write(self.folder / "timestamp.json", data)
            else:
                _write(self.folder / f"{md.signed.version}.{role}.json", data)
                self.infos[role] = MetaFile(md.signed.version, len(data), {"sha256": _digest(data)})
            self.written[role] = md

        def _check(self, role: str, md: Metadata[Any]) -> None:
            if role == "root":
                previous = self._current("root")
                result: Any = md.signed.get_root_verification_result(
                    None if previous is None else previous.signed, md.signed_bytes, md.signatures
                )
            else:
                result = self.root().get_verification_result(role, md.signed_bytes, md.signatures)
            if not result:
                raise MarketplaceError(
                    f"the {role} metadata would not verify with the keys at hand",
                    hint="check that the keys folder holds the keys the published root names",
                )

        @property
        def targets_infos(self) -> dict[str, MetaFile]:
            if "targets" not in self.infos:
                current = self._current("snapshot")
                if current is not None:
                    return {"targets.json": current.signed.meta["targets.json"]}
            return {"targets.json": self.infos["targets"]}

        @property
        def snapshot_info(self) -> MetaFile:
            return self.infos["snapshot"]

    return FolderRepository


@dataclass
class _Signing:
    """The output folder as a TUF repository, and the keys that sign it."""

    out: Path
    keys: Path
    repository: Any
    created: tuple[str, ...] = ()
    signers: dict[str, list[Signer]] = field(default_factory=dict)

    @classmethod
    def open(cls, out: Path, keys: Path, *, create: bool = True) -> _Signing:
        _require_signing()
        metadata = out / "metadata"
        if not (metadata / "root.json").exists() and not create:
            raise MarketplaceError(
                f"{out} holds no marketplace (no metadata/root.json)",
                hint="build one first: symphony catalog build --index URL --out DIR --keys DIR",
            )
        if keys.resolve().is_relative_to(out.resolve()):
            raise MarketplaceError(
                f"the keys folder {keys} is inside the published folder {out}: its private keys would be "
                "published",
                hint="keep the keys elsewhere (--keys DIR outside --out)",
            )
        metadata.mkdir(parents=True, exist_ok=True)
        (out / "targets").mkdir(parents=True, exist_ok=True)
        signers, created = _load_keys(keys, create=not (metadata / "root.json").exists())
        repository = _repository_class()(metadata, signers)
        signing = cls(out, keys, repository, created, signers)
        if not (metadata / "root.json").exists():
            with repository.edit_root() as root:
                for role in ROLES:
                    root.add_key(signers[role][0].public_key, role)
        else:
            signing._check_keys()
        return signing

    def _check_keys(self) -> None:
        root = self.repository.root()
        for role in ROLES:
            ours = {signer.public_key.keyid for signer in self.signers[role]}
            if not ours & set(root.roles[role].keyids):
                raise MarketplaceError(
                    f"the {role} key in {self.keys} is not one the published root ({self.out}/metadata/root.json) "
                    "names",
                    hint="use the keys folder this marketplace was built with, or rotate its keys "
                    "(symphony catalog rotate) with the old ones at hand",
                )

    def publish(
        self, catalog: bytes, wheels: Mapping[str, ListedFile], lifetime: timedelta
    ) -> tuple[dict[str, int], str]:
        from tuf.api.metadata import TargetFile

        _write(self.out / "targets" / f"{_digest(catalog)}.{CATALOG_TARGET}", catalog)
        with self.repository.edit_targets() as targets:
            targets.targets = {CATALOG_TARGET: TargetFile.from_data(CATALOG_TARGET, catalog)}
            for name, file in sorted(wheels.items()):
                path = WHEELS + name
                targets.targets[path] = TargetFile(file.size, {"sha256": file.sha256}, path)
        return self._sign_rest(lifetime, force=True)

    def refresh(self, lifetime: timedelta) -> tuple[dict[str, int], str]:
        targets = self.repository.open("targets").signed
        if targets.expires - datetime.now(timezone.utc) < timedelta(days=30):
            with self.repository.edit_targets():
                pass
        return self._sign_rest(lifetime, force=True)

    def rotate(self, roles: Sequence[str], lifetime: timedelta) -> tuple[dict[str, int], str]:
        from securesystemslib.signer import CryptoSigner

        old = {role: list(self.signers[role]) for role in roles}
        new = {role: CryptoSigner.generate_ed25519() for role in roles}
        if "root" in roles:
            self.repository.also_sign_root = old["root"]
        with self.repository.edit_root() as root:
            for role in roles:
                for signer in old[role]:
                    root.revoke_key(signer.public_key.keyid, role)
                root.add_key(new[role].public_key, role)
                self.signers[role][:] = [new[role]]
        self.repository.also_sign_root = []
        retired = self.keys / "retired"
        retired.mkdir(exist_ok=True, mode=0o700)
        for role in roles:
            for signer in old[role]:
                current = self.keys / f"{role}.pem"
                os.replace(current, retired / f"{role}-{signer.public_key.keyid[:16]}.pem")
            _save_key(self.keys / f"{role}.pem", new[role])
        with self.repository.edit_targets():
            pass
        return self._sign_rest(lifetime, force=True)

    def _sign_rest(self, lifetime: timedelta, *, force: bool) -> tuple[dict[str, int], str]:
        self.repository.lifetimes["timestamp"] = lifetime
        self.repository.lifetimes["snapshot"] = max(LIFETIMES["snapshot"], lifetime)
        self.repository.do_snapshot(force=force)
        self.repository.do_timestamp(force=force)
        versions = {role: self.repository.open(role).signed.version for role in ROLES}
        expires = self.repository.open("timestamp").signed.expires
        return versions, expires.isoformat().replace("+00:00", "Z")


def _load_keys(keys: Path, *, create: bool) -> tuple[dict[str, list[Signer]], tuple[str, ...]]:
    """Each role's signer from ``keys/<role>.pem``; with ``create``, missing keys are made."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    signers: dict[str, list[Signer]] = {}
    created = []
    for role in ROLES:
        file = keys / f"{role}.pem"
        if file.exists():
            try:
                private = load_pem_private_key(file.read_bytes(), None)
                signers[role] = [CryptoSigner(private)]
            except (ValueError, TypeError) as exc:
                raise MarketplaceError(
                    f"{file} is not an unencrypted PEM private key ({exc})",
                    hint="restore the key from its backup",
                ) from None
        elif create:
            keys.mkdir(parents=True, exist_ok=True, mode=0o700)
            signer = CryptoSigner.generate_ed25519()
            _save_key(file, signer)
            signers[role] = [signer]
            created.append(role)
        else:
            raise MarketplaceError(
                f"the {role} key is missing from {keys} ({file.name})",
                hint="give the keys folder this marketplace was built with (--keys DIR)",
            )
    return signers, tuple(created)


def _save_key(file: Path, signer: Any) -> None:
    descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(signer.private_bytes)


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` at once: a reader sees the old file or the new, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
