"""Install extensions into environments of their own: what ``symphony install / upgrade / uninstall`` do.

Installing is a consented, checked act, in this order:

1. **Find** the release on the host's index (``$SYMPHONY_HOME/install.toml``, else the environment's
   ``UV_DEFAULT_INDEX``, ``UV_INDEX_URL`` or ``PIP_INDEX_URL``, else PyPI; a distribution may be pinned to an
   index of its own), wheels only: an sdist would run build code, so a release without a wheel for this
   Python is refused. A local wheel (``--from``) skips this step.
2. **Download** the wheel and check it against the hash the index published.
3. **Read** the wheel as a zip file, running and importing nothing: its metadata, every file against its
   ``RECORD`` hash, its Symphony entry points and each extension's ``symphony.toml``. Files outside the
   extension's own packages (``.pth`` files, other top-level modules, scripts and data) are refused unless
   the caller allows them; files inside Symphony's own packages always are.
4. **Ask**: the consent summary (each permission, its reason, what it reaches here) goes to ``confirm``;
   nothing is created before it says yes. When the install is decided before it is asked (no
   ``confirm``, or a `GrantChooser`, as with ``symphony install --yes``), uv starts step 5 as soon as the
   wheel's files have passed step 3, while the manifests are validated and the grants planned; a manifest
   that does not validate then removes what uv made. Nothing of the wheel runs in the meantime.
5. **Create** the environment with uv (``uv venv`` and ``uv pip install`` of that very wheel and its
   dependencies, never building anything), beside the current one if there is one, check what was
   installed, then record it (wheel hash and resolved versions) and the grant, bound to the distribution
   and its installed ``RECORD``. Any failure, Ctrl-C included, removes the new environment and leaves the
   previous installation as it was.

uv is found as the ``uv`` Python package's binary when that package is installed, else as ``uv`` on
``PATH``; the core does not depend on it.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import errno
import fcntl
import hashlib
import http.client
import io
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from symphony_core._catalog._environments import (
    Installed,
    envs_dir,
    forget_install,
    installed,
    installed_one,
    record_install,
    remove_environment,
    restore_install,
    site_packages,
)
from symphony_core._model._errors import InstallError, SymphonyError
from symphony_core._model._kinds import (
    CORE_DISTRIBUTION,
    KIND_BY_GROUP,
    KINDS,
    MANIFEST_FILE,
    canonical_id,
    canonical_name,
)
from symphony_core._model._public import public

if TYPE_CHECKING:
    from packaging.version import Version

    from symphony_core._catalog._records import Record
    from symphony_core._security._grants import Consent
    from symphony_core._store._home import Home

    from ._host import Host

SETTINGS_FILE = "install.toml"
DEFAULT_INDEX = "https://pypi.org/simple"
SQUATTED = frozenset({"symphony-core"})
"""Names that look like Symphony's but belong to someone else on PyPI: never installed as an extension."""
PROTECTED = frozenset({"symphony_core", "msgspec", *(kind.module for kind in KINDS.values())})
"""Top-level packages no extension's wheel may write into: workers run the core and msgspec before they
are restricted, and the kits are Symphony's own."""
TIMEOUT = 30.0
"""Seconds to wait for the index to answer, per request (``timeout`` in ``install.toml``)."""
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_UV_TIMEOUT = 900.0


# Settings


@dataclass(frozen=True, slots=True)
class InstallSettings:
    """Where a host installs extensions from (``$SYMPHONY_HOME/install.toml``)."""

    index: str = DEFAULT_INDEX
    """The simple-API index names are resolved on, and dependencies come from."""
    pins: Mapping[str, str] = field(default_factory=dict)
    """Distribution name: the index it alone comes from (normalised names)."""
    file: Path | None = None
    marketplace: Mapping[str, Any] | None = None
    """The ``[marketplace]`` table, read by ``_marketplace``; None when there is none."""
    timeout: float = TIMEOUT
    """Seconds to wait for the index to answer, per request, here and in uv."""

    def index_for(self, distribution: str) -> str:
        return self.pins.get(canonical_name(distribution), self.index)


def read_settings(home: Home) -> InstallSettings:
    """The host's install settings: ``install.toml`` in its home, else the environment's index variables."""
    import tomli as tomllib

    file = home.root / SETTINGS_FILE
    default = (
        os.environ.get("UV_DEFAULT_INDEX")
        or os.environ.get("UV_INDEX_URL")
        or os.environ.get("PIP_INDEX_URL")
        or DEFAULT_INDEX
    )
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return InstallSettings(index=default)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InstallError(
            f"cannot read the install settings {file}: {exc}", hint="fix or remove the file"
        ) from None
    index = data.pop("index", default)
    pins = data.pop("pins", {})
    marketplace = data.pop("marketplace", None)
    timeout = data.pop("timeout", TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise InstallError(
            f"invalid install settings {file}: `timeout` must be a number of seconds, above 0 and at most 3600",
            hint=f"write e.g. timeout = {TIMEOUT:g}",
        )
    if (
        not isinstance(index, str)
        or not isinstance(pins, dict)
        or not all(isinstance(value, str) for value in pins.values())
        or not (marketplace is None or isinstance(marketplace, dict))
    ):
        raise InstallError(
            f"invalid install settings {file}: `index` must be a URL and `[pins]` map names to URLs",
            hint='write e.g. index = "https://pypi.org/simple" and [pins] "acme-weather" = "https://..."',
        )
    if data:
        raise InstallError(
            f"invalid install settings {file}: unknown key(s) {', '.join(sorted(data))}",
            hint="the keys are `index`, `timeout` and the tables `[pins]` and `[marketplace]`",
        )
    return InstallSettings(
        index, {canonical_name(name): url for name, url in pins.items()}, file, marketplace, float(timeout)
    )


# The index


@dataclass(frozen=True, slots=True)
class _File:
    filename: str
    url: str
    sha256: str | None
    requires_python: str | None
    yanked: bool


@dataclass(frozen=True, slots=True)
class Release:
    """The wheel chosen for one release on an index."""

    distribution: str
    version: str
    filename: str
    url: str
    sha256: str | None
    """What the index says the file's SHA-256 is; None when it publishes no hash."""
    index: str


def find_release(index: str, name: str, specifier: str = "", *, timeout: float = TIMEOUT) -> Release:
    """The newest release of ``name`` on ``index`` that ``specifier`` admits, as the wheel for this Python
    and platform; an sdist-only release, or one with no wheel for here, is an `InstallError`."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.tags import sys_tags
    from packaging.utils import (
        InvalidSdistFilename,
        InvalidWheelFilename,
        parse_sdist_filename,
        parse_wheel_filename,
    )

    distribution = canonical_name(name)
    try:
        wanted = SpecifierSet(specifier)
    except InvalidSpecifier:
        raise InstallError(
            f"'{specifier}' is not a version specifier",
            distribution=distribution,
            hint="write NAME==1.2.0 or NAME>=1.2",
        ) from None
    files = [file for file in _index_files(index, distribution, timeout=timeout) if not file.yanked]
    wheels: dict[Version, list[tuple[_File, frozenset[Any]]]] = {}
    sdists: set[Version] = set()
    for file in files:
        try:
            if file.filename.endswith(".whl"):
                _, version, _, tags = parse_wheel_filename(file.filename)
                wheels.setdefault(version, []).append((file, tags))
            else:
                sdists.add(parse_sdist_filename(file.filename)[1])
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
    versions = sorted(set(wheels) | sdists)
    admitted = list(wanted.filter(versions))
    if not admitted:
        have = ", ".join(str(version) for version in versions[-10:]) or "none"
        raise InstallError(
            f"{distribution} has no release {specifier or ''} on {index} (releases there: {have})".replace(
                "  ", " "
            ),
            distribution=distribution,
            hint=f"pick one of the releases listed: symphony install {distribution}==VERSION",
        )
    chosen = max(admitted)
    if chosen not in wheels:
        raise InstallError(
            f"{distribution} {chosen} is published on {index} only as a source distribution (sdist); "
            "installing it would mean building it, which runs its code: refused",
            distribution=distribution,
            hint="ask its authors to publish a wheel, or install a release that has one "
            f"(symphony install {distribution}==VERSION)",
        )
    here = {tag: rank for rank, tag in enumerate(sys_tags())}
    python = ".".join(map(str, sys.version_info[:3]))
    fitting = sorted(
        (min(here[tag] for tag in tags if tag in here), file)
        for file, tags in wheels[chosen]
        if any(tag in here for tag in tags) and _admits_python(file.requires_python, python)
    )
    if not fitting:
        names = ", ".join(file.filename for file, _ in wheels[chosen])
        raise InstallError(
            f"{distribution} {chosen} has no wheel for this Python ({python}) and platform ({sys.platform}) "
            f"on {index}; it has: {names}",
            distribution=distribution,
            hint="install a release built for this Python and platform, or run the host on one it supports",
        )
    file = fitting[0][1]
    return Release(distribution, str(chosen), file.filename, file.url, file.sha256, index)


def _admits_python(spec: str | None, python: str) -> bool:
    if not spec:
        return True
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        return SpecifierSet(spec).contains(python, prereleases=True)
    except InvalidSpecifier:
        return False


def _index_files(index: str, distribution: str, *, timeout: float = TIMEOUT) -> list[_File]:
    """The files the index lists for a distribution (PEP 691 JSON, or the PEP 503 HTML page)."""
    url = index.rstrip("/") + f"/{distribution}/"
    request = urllib.request.Request(
        url, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
            kind = response.headers.get("Content-Type", "")
            where = response.geturl()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise InstallError(
                f"{distribution} is not on the package index {index}",
                distribution=distribution,
                hint="check the name; a name the configured index does not have is never looked up elsewhere "
                f"(set the index, or pin this name to its own, in {SETTINGS_FILE} in the host's home)",
            ) from None
        raise _unreachable(index, distribution, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _unreachable(index, distribution, exc, timeout) from None
    if "json" in kind:
        data = json.loads(body)
        return [
            _File(
                item["filename"],
                urllib.parse.urljoin(where, item["url"]),
                (item.get("hashes") or {}).get("sha256"),
                item.get("requires-python"),
                bool(item.get("yanked")),
            )
            for item in data.get("files", [])
        ]
    links = _Links()
    links.feed(body.decode("utf-8", errors="replace"))
    found = []
    for href, attributes, text in links.found:
        absolute = urllib.parse.urljoin(where, href)
        address, _, fragment = absolute.partition("#")
        algorithm, _, digest = fragment.partition("=")
        filename = text.strip() or urllib.parse.unquote(address.rsplit("/", 1)[-1])
        found.append(
            _File(
                filename,
                address,
                digest.lower() if algorithm == "sha256" else None,
                attributes.get("data-requires-python"),
                "data-yanked" in attributes,
            )
        )
    return found


def _unreachable(
    index: str, distribution: str, reason: str | BaseException, timeout: float = TIMEOUT
) -> InstallError:
    cause = getattr(reason, "reason", reason)
    if isinstance(cause, TimeoutError):
        return _too_slow(index, distribution, timeout)
    return InstallError(
        f"cannot reach the package index {index} ({reason}); nothing was installed",
        distribution=distribution,
        hint=f"check that the index is up and its address right ({SETTINGS_FILE} in the host's home, else "
        "UV_DEFAULT_INDEX, UV_INDEX_URL or PIP_INDEX_URL), then try again",
    )


def _too_slow(index: str, distribution: str, timeout: float) -> InstallError:
    return InstallError(
        f"the package index {index} did not answer within {timeout:g} s; nothing was installed",
        distribution=distribution,
        hint=f"try again later; on a slow link, raise `timeout` (seconds) in {SETTINGS_FILE} in the host's home",
    )


def _no_space(where: Path, distribution: str, exc: OSError) -> InstallError:
    return InstallError(
        f"no space left to install {distribution} under {where} ({exc.strerror or exc}); nothing was installed",
        distribution=distribution,
        hint="free some space on that disk (or move SYMPHONY_HOME to a larger one), then try again",
    )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], str]] = []
        self._open: tuple[str, dict[str, str]] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            attributes = {key: value or "" for key, value in attrs}
            if "href" in attributes:
                self._open, self._text = (attributes["href"], attributes), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.found.append((*self._open, "".join(self._text)))
            self._open = None


def download(release: Release, folder: Path, *, timeout: float = TIMEOUT) -> Path:
    """Download the release's wheel into ``folder``, checking it against the index's hash."""
    target = folder / release.filename
    digest = hashlib.sha256()
    expected: str | None = None
    size = 0
    try:
        with urllib.request.urlopen(release.url, timeout=timeout) as response, target.open("wb") as out:
            expected = response.headers.get("Content-Length")
            while True:
                try:
                    chunk = response.read(1 << 20)
                except http.client.IncompleteRead as cut:
                    chunk = cut.partial
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    break
                if not chunk:
                    break
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    if exc.errno in _DISK_FULL:
                        raise _no_space(folder, release.distribution, exc) from None
                    raise
                size += len(chunk)
    except InstallError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            raise _no_space(folder, release.distribution, exc) from None
        raise _unreachable(release.index, release.distribution, exc, timeout) from None
    if expected is not None and expected.isdigit() and int(expected) != size:
        raise InstallError(
            f"the download of {release.filename} from {release.index} was cut short ({size} of {expected} "
            "bytes); nothing was installed",
            distribution=release.distribution,
            hint="try again; if it persists, the index or something between it and this host is at fault",
        )
    if release.sha256 is not None and digest.hexdigest() != release.sha256:
        raise InstallError(
            f"{release.filename} as downloaded from {release.index} does not match the hash the index "
            f"published (sha256 {release.sha256}, got {digest.hexdigest()}): it was altered or damaged on "
            "the way; nothing was installed",
            distribution=release.distribution,
            hint="try again; if it persists, tell the index's operators: the file they serve is not the one "
            "they list",
        )
    return target


# The wheel, read without running anything


@dataclass(frozen=True, slots=True)
class WheelExtension:
    """One extension a wheel declares: its entry point and its manifest (validated once the wheel is)."""

    id: str
    kind: str
    entry_point: str
    manifest: dict[str, Any]
    manifest_file: str

    @property
    def permissions(self) -> tuple[dict[str, Any], ...]:
        listed = self.manifest.get("permissions")
        return tuple(listed) if isinstance(listed, list) else ()


@dataclass(frozen=True, slots=True)
class Finding:
    """A file of a wheel that is not where an extension's files belong."""

    file: str
    why: str
    allowable: bool
    """Whether the caller may allow it (``allow_outside_files``); never for Symphony's own packages."""

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "why": self.why, "allowable": self.allowable}


@dataclass(frozen=True, slots=True)
class Wheel:
    """What a wheel says about itself, read from the zip file alone."""

    path: Path
    distribution: str
    """Its name, normalised."""
    version: str
    sha256: str
    requires: tuple[str, ...]
    requires_python: str | None
    extensions: tuple[WheelExtension, ...]
    findings: tuple[Finding, ...]
    validated: bool = True
    """Whether each extension's manifest is validated (`validate_manifests`), not just read."""

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.path.name,
            "distribution": self.distribution,
            "version": self.version,
            "sha256": self.sha256,
            "requires": list(self.requires),
            "requires_python": self.requires_python,
            "extensions": [
                {"id": e.id, "kind": e.kind, "entry_point": e.entry_point} for e in self.extensions
            ],
            "outside_files": [finding.as_json() for finding in self.findings],
        }


def read_wheel(path: Path, *, manifests: bool = True) -> Wheel:
    """Read a wheel's metadata, entry points and manifests, and check every file against its ``RECORD``,
    importing and running nothing; a wheel that is not a valid extension wheel is an `InstallError`.

    With ``manifests=False`` each extension's manifest is the TOML as read, not yet validated: give the
    wheel to `validate_manifests` before anything relies on it (an install starts uv in the meantime)."""
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    from symphony_core._catalog._entry_points import read_entry_points

    try:
        name, version, _, _ = parse_wheel_filename(path.name)
    except InvalidWheelFilename:
        raise InstallError(
            f"{path.name} is not a wheel file name (NAME-VERSION-PYTHON-ABI-PLATFORM.whl)",
            hint="install from a wheel (.whl); source distributions are never built",
        ) from None
    distribution = canonical_name(name)
    _refuse_squatted(distribution)
    sha256 = _sha256(path)
    try:
        with zipfile.ZipFile(path) as wheel:
            files = {info.filename: info for info in wheel.infolist() if not info.is_dir()}
            info_dir = _dist_info(files, path, distribution)
            metadata = HeaderParser().parsestr(wheel.read(f"{info_dir}/METADATA").decode("utf-8", "replace"))
            if canonical_name(metadata.get("Name", "")) != distribution or metadata.get("Version") != str(
                version
            ):
                raise _bad(
                    path,
                    distribution,
                    "its METADATA names another distribution or version than its file name",
                )
            _check_record(wheel, files, info_dir, path, distribution)
            try:
                points_text = wheel.read(f"{info_dir}/entry_points.txt").decode("utf-8")
            except KeyError:
                points_text = ""
            points = list(read_entry_points(points_text, KIND_BY_GROUP))
            if not points:
                groups = ", ".join(KIND_BY_GROUP)
                raise InstallError(
                    f"{path.name} is not a Symphony extension: it declares no entry point in {groups}",
                    distribution=distribution,
                    hint="install libraries with pip; `symphony install` is for extensions",
                )
            extensions = []
            for group, ep_name, value, _ in points:
                module = value.partition(":")[0].strip()
                manifest_file = _manifest_in(files, module)
                if manifest_file is None:
                    raise InstallError(
                        f"extension '{ep_name}' in {path.name} ships no {MANIFEST_FILE} next to module '{module}'",
                        distribution=distribution,
                        hint="ask its authors to include the manifest in the wheel (`symphony validate` checks it)",
                    )
                import tomli as tomllib

                where = f"{path.name}!{manifest_file}"
                try:
                    data = tomllib.loads(wheel.read(manifest_file).decode("utf-8"))
                except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                    raise _bad(
                        path, distribution, f"its manifest {manifest_file} is not valid TOML ({exc})"
                    ) from None
                extensions.append(WheelExtension(ep_name, KIND_BY_GROUP[group].name, value, data, where))
            own = {extension.entry_point.partition(":")[0].strip().split(".")[0] for extension in extensions}
            findings = tuple(_layout(files, info_dir, own))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError, OSError) as exc:
        raise _bad(path, distribution, f"it is not a readable wheel, corrupt or cut short ({exc})") from None
    read = Wheel(
        path,
        distribution,
        str(version),
        sha256,
        tuple(metadata.get_all("Requires-Dist") or ()),
        metadata.get("Requires-Python"),
        tuple(extensions),
        findings,
        validated=False,
    )
    return validate_manifests(read) if manifests else read


def validate_manifests(wheel: Wheel) -> Wheel:
    """The wheel with each extension's manifest validated (and normalised), or an `InstallError`."""
    from symphony_core._model._manifest import validate_manifest

    if wheel.validated:
        return wheel
    extensions = []
    for extension in wheel.extensions:
        manifest = validate_manifest(
            extension.manifest, file=extension.manifest_file, distribution_version=wheel.version
        )
        if manifest.kind != extension.kind or manifest.id != extension.id:
            manifest_file = extension.manifest_file.partition("!")[2]
            raise _bad(
                wheel.path,
                wheel.distribution,
                f"its manifest {manifest_file} declares {manifest.kind} '{manifest.id}', but the entry "
                f"point is {extension.kind} '{extension.id}'",
            )
        extensions.append(
            dataclasses.replace(extension, manifest=manifest.model_dump(mode="json", by_alias=True))
        )
    return dataclasses.replace(wheel, extensions=tuple(extensions), validated=True)


def _refuse_squatted(distribution: str) -> None:
    if distribution in SQUATTED:
        raise InstallError(
            f"'{distribution}' is not Symphony: the name belongs to an unrelated project on PyPI, and is never "
            "installed as an extension",
            distribution=distribution,
            hint=f"Symphony's core is '{CORE_DISTRIBUTION}', and comes with the host; install extensions by their own names",
        )


def _bad(path: Path, distribution: str, why: str) -> InstallError:
    return InstallError(
        f"{path.name} is not a valid wheel: {why}; nothing was installed",
        distribution=distribution,
        hint="download it again; if it persists, report it to its authors",
    )


def _dist_info(files: Mapping[str, Any], path: Path, distribution: str) -> str:
    folders = {
        name.split("/")[0] for name in files if name.count("/") == 1 and name.endswith(".dist-info/METADATA")
    }
    if len(folders) != 1:
        raise _bad(path, distribution, "it has no single .dist-info folder with a METADATA file")
    return folders.pop()


def _check_record(
    wheel: zipfile.ZipFile, files: Mapping[str, Any], info_dir: str, path: Path, distribution: str
) -> None:
    """Every file of the wheel is listed in its ``RECORD`` with the hash it has (CRCs are checked too)."""
    record = f"{info_dir}/RECORD"
    if record not in files:
        raise _bad(path, distribution, "it has no RECORD")
    listed: dict[str, str] = {}
    for row in csv.reader(io.StringIO(wheel.read(record).decode("utf-8"))):
        if row:
            listed[row[0]] = row[1] if len(row) > 1 else ""
    unsigned = {record, f"{info_dir}/RECORD.jws", f"{info_dir}/RECORD.p7s"}
    for name in files:
        if name in unsigned:
            continue
        expected = listed.get(name)
        if not expected:
            raise _bad(path, distribution, f"file {name} is not listed with a hash in its RECORD")
        algorithm, _, value = expected.partition("=")
        if algorithm != "sha256":
            raise _bad(
                path,
                distribution,
                f"file {name} is recorded with a {algorithm or 'missing'} hash, not sha256",
            )
        actual = base64.urlsafe_b64encode(hashlib.sha256(wheel.read(name)).digest()).rstrip(b"=").decode()
        if actual != value:
            raise _bad(path, distribution, f"file {name} does not match its RECORD hash")
    missing = [name for name in listed if name not in files and name not in unsigned]
    if missing:
        raise _bad(path, distribution, f"its RECORD lists {missing[0]}, which it does not contain")


def _manifest_in(files: Mapping[str, Any], module: str) -> str | None:
    parts = module.split(".")
    for depth in range(len(parts), 0, -1):
        candidate = "/".join(parts[:depth]) + f"/{MANIFEST_FILE}"
        if candidate in files:
            return candidate
    return None


def _layout(files: Mapping[str, Any], info_dir: str, own: set[str]) -> Iterator[Finding]:
    """The files that are not in the extension's own packages or its ``.dist-info``, each with why."""
    data_dir = info_dir[: -len(".dist-info")] + ".data"
    packages = ", ".join(sorted(own))
    for name in sorted(files):
        if name.startswith(info_dir + "/"):
            continue
        relative = name
        if name.startswith(data_dir + "/"):
            scheme, _, rest = name[len(data_dir) + 1 :].partition("/")
            if scheme not in ("purelib", "platlib"):
                yield Finding(
                    name, f"installs into the environment's '{scheme}' folder, outside site-packages", True
                )
                continue
            relative = rest
        top = relative.split("/")[0]
        if "/" not in relative and top.endswith(".pth"):
            yield Finding(
                name,
                "a .pth file: Python runs its import lines in every interpreter of the environment at start",
                True,
            )
            continue
        module = top.split(".")[0] if "/" not in relative else top
        if module in PROTECTED:
            yield Finding(
                name,
                f"writes into '{module}', a package of Symphony's own that no extension may replace",
                False,
            )
        elif module not in own:
            yield Finding(
                name,
                f"outside the extension's own packages ({packages}): it adds or replaces module '{module}'",
                True,
            )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# Plans and results


@dataclass(frozen=True, slots=True)
class Change:
    """How an upgrade changes one extension's permissions."""

    extension: str
    new: tuple[str, ...] = ()
    """Permissions of a type the installed version did not ask for."""
    widened: tuple[str, ...] = ()
    """New scopes of a type it asked for already."""
    dropped: tuple[str, ...] = ()
    """What it asked for and no longer does."""

    def as_json(self) -> dict[str, Any]:
        return {
            "extension": self.extension,
            "new": list(self.new),
            "widened": list(self.widened),
            "dropped": list(self.dropped),
        }


@public
@dataclass(frozen=True)
class InstallPlan:
    """What an install or upgrade is about to do, for a person (or a policy) to confirm."""

    action: Literal["install", "upgrade"]
    wheel: Wheel
    source: str
    """The index the wheel came from, or the local file."""
    consents: tuple[Consent, ...]
    """One consent summary per extension the wheel ships, as `Host.consent` gives it."""
    previous: Installed | None = None
    changes: tuple[Change, ...] = ()

    @property
    def asks_again(self) -> bool:
        """Whether an upgrade asks for anything the installed version was not granted."""
        return any(change.new or change.widened for change in self.changes) or any(
            not consent.satisfied for consent in self.consents
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "wheel": self.wheel.as_json(),
            "source": self.source,
            "consent": [consent.as_json() for consent in self.consents],
            "previous_version": None if self.previous is None else self.previous.version,
            "changes": [change.as_json() for change in self.changes],
        }


@public
@dataclass(frozen=True)
class Installation:
    """What `Host.install`, `Host.upgrade` or `Host.uninstall` did."""

    action: Literal["installed", "upgraded", "unchanged", "uninstalled", "declined"]
    distribution: str
    version: str
    environment: Path | None
    extensions: tuple[str, ...] = ()
    wheel_sha256: str | None = None
    lock: Mapping[str, str] = field(default_factory=dict)
    """Every distribution in the environment and the version uv resolved."""
    granted: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Extension id: the permissions granted to it by this act."""
    previous_version: str | None = None
    changes: tuple[Change, ...] = ()
    purged: bool = False
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "distribution": self.distribution,
            "version": self.version,
            "environment": None if self.environment is None else str(self.environment),
            "extensions": list(self.extensions),
            "wheel_sha256": self.wheel_sha256,
            "lock": dict(self.lock),
            "granted": {key: list(value) for key, value in self.granted.items()},
            "previous_version": self.previous_version,
            "changes": [change.as_json() for change in self.changes],
            "purged": self.purged,
            "seconds": round(self.seconds, 3),
        }


Confirm = Callable[[InstallPlan], "bool | Sequence[str]"]
"""Shown the plan, says no (False), yes to what ``grant`` says (True), or yes granting only the
permissions it names (types, or single scopes as the consent summary writes them; none: grant nothing)."""
Grant = bool | Sequence[str]


@dataclass(frozen=True, slots=True)
class GrantChooser:
    """A ``confirm`` that never declines the install, only chooses what it grants (``symphony install --yes``).

    The install is decided before the plan is shown, so, as with no ``confirm`` at all, uv starts making
    the environment while the manifests are validated and the plan made."""

    choose: Callable[[InstallPlan], bool | Sequence[str]]

    def __call__(self, plan: InstallPlan) -> bool | Sequence[str]:
        chosen = self.choose(plan)
        return True if chosen is False else chosen


# The operations


def install(
    host: Host,
    requirement: str | None = None,
    *,
    wheel: str | os.PathLike[str] | None = None,
    grant: Grant = True,
    allow_outside_files: bool = False,
    confirm: Confirm | None = None,
    actor: str | None = None,
) -> Installation:
    """See `Host.install`."""
    started = time.monotonic()
    with _staging(host) as staging:
        if wheel is not None:
            if requirement is not None:
                raise InstallError(
                    "give a requirement or a wheel, not both", hint="symphony install --from PATH.whl"
                )
            path = Path(wheel).resolve()  # uv runs in another folder: a relative path would miss
            if not path.is_file():
                raise InstallError(f"{wheel} is not a file", hint="give the path of a .whl file")
            found, source = read_wheel(path, manifests=False), str(path)
        elif requirement is not None:
            found, source = _fetch(host, requirement, staging)
        else:
            raise InstallError(
                "nothing to install", hint="symphony install NAME[==VERSION], or --from PATH.whl"
            )
        previous = installed_one(host.state, found.distribution)
        if previous is not None and previous.wheel_sha256 == found.sha256:
            return _unchanged(previous, started)
        with _head_start(
            host, found, allow_outside_files, start=confirm is None or isinstance(confirm, GrantChooser)
        ) as head:
            found = validate_manifests(found)
            _refuse_host_copy(host, found)
            plan = _plan(host, found, source, previous)
            return _carry_out(host, plan, grant, allow_outside_files, confirm, actor, started, head)


def upgrade(
    host: Host,
    extension: str,
    *,
    wheel: str | os.PathLike[str] | None = None,
    grant: Grant = True,
    allow_outside_files: bool = False,
    confirm: Confirm | None = None,
    actor: str | None = None,
) -> Installation:
    """See `Host.upgrade`."""
    from packaging.version import Version

    started = time.monotonic()
    previous = _managed(host, extension)
    with _staging(host) as staging:
        if wheel is not None:
            path = Path(wheel).resolve()
            found, source = read_wheel(path), str(path)
            if found.distribution != previous.distribution:
                raise InstallError(
                    f"{Path(wheel).name} is {found.distribution}, not {previous.distribution}",
                    distribution=previous.distribution,
                    hint="upgrade with a wheel of the same distribution, or install this one on its own",
                )
        else:
            found, source = _fetch(host, previous.distribution, staging)
            if Version(found.version) <= Version(previous.version):
                return _unchanged(previous, started)
        if found.sha256 == previous.wheel_sha256:
            return _unchanged(previous, started)
        found = validate_manifests(found)
        plan = _plan(host, found, source, previous)
        return _carry_out(host, plan, grant, allow_outside_files, confirm, actor, started)


def uninstall(host: Host, extension: str, *, purge: bool = False, actor: str | None = None) -> Installation:
    """See `Host.uninstall`."""
    from symphony_core._store._config import config_file

    started = time.monotonic()
    entry = _managed(host, extension)
    who = actor or host.actor
    with _locked(envs_dir(host.home) / entry.distribution):
        forget_install(host.state, entry, actor=who, purged=purge)
        host.discover()  # stops what ran from it, as for any uninstalled extension
        for ext_id in entry.extensions:
            key = canonical_id(ext_id)
            if host.state.grants(key):
                host.state.revoke(key, actor=who)
                host._permission_event(key, "revoked", "*", who)
            if purge:  # its own folders, and those of the helpers its workers started (`<id>~runner`)
                extensions = host.home.root / "extensions"
                for folder in [extensions / ext_id, *extensions.glob(f"{ext_id}~*")]:
                    shutil.rmtree(folder, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    config_file(host.home, ext_id).unlink()
        remove_environment(entry.environment)
    return Installation(
        "uninstalled",
        entry.distribution,
        entry.version,
        entry.environment,
        entry.extensions,
        entry.wheel_sha256,
        purged=purge,
        seconds=time.monotonic() - started,
    )


def uv_binary() -> str:
    """The uv program: the ``uv`` Python package's binary when it is installed, else ``uv`` on ``PATH``."""
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        pass
    else:
        with contextlib.suppress(FileNotFoundError):
            return str(find_uv_bin())
    found = shutil.which("uv")
    if found is None:
        raise InstallError(
            "installing extensions needs uv, which is not installed here",
            hint="install it into the host's environment (`pip install uv`) or put it on PATH "
            "(https://docs.astral.sh/uv/getting-started/installation/)",
        )
    return found


def _fetch(host: Host, requirement: str, staging: Path) -> tuple[Wheel, str]:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        parsed = Requirement(requirement)
    except InvalidRequirement:
        raise InstallError(
            f"'{requirement}' is not a distribution name with an optional version",
            hint="write NAME, NAME==1.2.0 or NAME>=1.2; for a local wheel use --from PATH.whl",
        ) from None
    if parsed.url or parsed.extras or parsed.marker:
        raise InstallError(
            f"'{requirement}': only a name and a version specifier are accepted",
            hint="install a wheel you have with --from PATH.whl",
        )
    distribution = canonical_name(parsed.name)
    _refuse_squatted(distribution)
    settings = read_settings(host.home)
    index = settings.index_for(distribution)
    release = find_release(index, distribution, str(parsed.specifier), timeout=settings.timeout)
    downloaded = download(release, staging, timeout=settings.timeout)
    from ._marketplace import verify_download

    verify_download(host, release, downloaded)  # against the host's marketplace, when it has one
    found = read_wheel(downloaded, manifests=False)
    if found.distribution != distribution:
        raise InstallError(
            f"the index served {release.filename} for {distribution}",
            distribution=distribution,
            hint="tell the index's operators: it serves files under another name",
        )
    return found, index


def _plan(host: Host, wheel: Wheel, source: str, previous: Installed | None) -> InstallPlan:
    from symphony_core._security._grants import atoms, describe, evaluate, read_policy
    from symphony_core._security._reach import Roots

    policy = read_policy(host.policy_file)
    consents = tuple(
        evaluate(
            host.state,
            policy,
            extension=canonical_id(extension.id),
            version=wheel.version,
            distribution=wheel.distribution,
            requested=extension.permissions,
            roots=Roots.of(host.home, canonical_id(extension.id)),
            name=extension.manifest.get("name"),
        )
        for extension in wheel.extensions
    )
    changes: list[Change] = []
    if previous is not None:
        before = _requested_before(host, previous)
        for extension in wheel.extensions:
            old = atoms(before.get(canonical_id(extension.id), ()))
            now = atoms(extension.permissions)
            kinds = {kind for kind, _ in old}
            changes.append(
                Change(
                    extension.id,
                    new=tuple(describe(atom) for atom in sorted(now - old) if atom[0] not in kinds),
                    widened=tuple(describe(atom) for atom in sorted(now - old) if atom[0] in kinds),
                    dropped=tuple(describe(atom) for atom in sorted(old - now)),
                )
            )
    return InstallPlan(
        "install" if previous is None else "upgrade", wheel, source, consents, previous, tuple(changes)
    )


def _requested_before(host: Host, previous: Installed) -> dict[str, tuple[dict[str, Any], ...]]:
    """What each extension of the installed version requests, from its manifests in its environment."""
    from symphony_core._catalog._discovery import scan

    found: dict[str, tuple[dict[str, Any], ...]] = {}
    for record in scan([str(previous.site_packages)]).records:
        manifest = record.manifest
        if record.distribution == previous.distribution and manifest is not None:
            listed = manifest.get("permissions")
            found[canonical_id(record.id)] = tuple(listed) if isinstance(listed, list) else ()
    return found


def _carry_out(
    host: Host,
    plan: InstallPlan,
    grant: Grant,
    allow_outside_files: bool,
    confirm: Confirm | None,
    actor: str | None,
    started: float,
    head: _HeadStart | None = None,
) -> Installation:
    wheel = plan.wheel
    _check_fits(wheel)
    _check_findings(wheel, allow_outside_files)
    kinds = _kinds(grant)
    _check_grantable(plan, kinds)
    answer = True if confirm is None else confirm(plan)
    if answer is False:
        return Installation("declined", wheel.distribution, wheel.version, None, _ids(wheel), wheel.sha256)
    keep_only = False  # the person chose to grant nothing new: what carries over is kept all the same
    if answer is not True and kinds is not None:  # the person chose what to grant of what was asked
        kinds = tuple(answer)
        keep_only = not kinds
        if kinds:
            _check_grantable(plan, kinds)
    who = actor or host.actor
    root = envs_dir(host.home) / wheel.distribution
    with _locked(root) if head is None else contextlib.nullcontext():  # a head start holds the lock
        if head is None:
            previous = installed_one(host.state, wheel.distribution)
            _sweep(root, previous)
            environment = root / f"{wheel.version}-{secrets.token_hex(4)}"
        else:
            previous, environment = head.previous, head.environment
        try:
            if head is None:
                _create(host, environment, wheel)
            else:
                head.wait()
            records = _installed_records(environment, wheel)
            entry = Installed(
                wheel.distribution,
                wheel.version,
                environment,
                wheel.path.name,
                wheel.sha256,
                plan.source,
                _freeze(environment),
                _ids(wheel),
            )
            record_install(host.state, entry, actor=who, previous=previous)
            try:
                granted = _grant(host, plan, records, kinds, who, keep_only=keep_only)
            except BaseException:
                restore_install(host.state, wheel.distribution, previous)
                raise
        except BaseException:
            remove_environment(environment)
            raise
        host.discover()  # what ran from the previous environment stops before it goes
        if previous is not None and previous.environment != environment:
            remove_environment(previous.environment)
    return Installation(
        "installed" if previous is None else "upgraded",
        wheel.distribution,
        wheel.version,
        environment,
        _ids(wheel),
        wheel.sha256,
        entry.lock,
        granted,
        None if previous is None else previous.version,
        plan.changes,
        seconds=time.monotonic() - started,
    )


def _check_fits(wheel: Wheel) -> None:
    """Refuse a wheel built for another Python or platform, before anything is created."""
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    python = ".".join(map(str, sys.version_info[:3]))
    tags = parse_wheel_filename(wheel.path.name)[3]
    if not tags & set(sys_tags()):
        built = ", ".join(sorted(str(tag) for tag in tags))
        raise InstallError(
            f"{wheel.path.name} is built for {built}, not for this Python ({python}) and platform "
            f"({sys.platform}); nothing was installed",
            distribution=wheel.distribution,
            hint="install a wheel built for this Python and platform (a py3-none-any wheel fits every one)",
        )
    if not _admits_python(wheel.requires_python, python):
        raise InstallError(
            f"{wheel.path.name} requires Python {wheel.requires_python}, and this host runs Python {python}; "
            "nothing was installed",
            distribution=wheel.distribution,
            hint="install a release that supports this Python, or run the host on one the wheel supports",
        )


def _check_findings(wheel: Wheel, allowed: bool) -> None:
    refused = [finding for finding in wheel.findings if not (allowed and finding.allowable)]
    if not refused:
        return
    first = refused[0]
    more = f" (and {len(refused) - 1} more file(s))" if len(refused) > 1 else ""
    never = not first.allowable
    raise InstallError(
        f"{wheel.path.name} carries {first.file}: {first.why}{more}; refused",
        distribution=wheel.distribution,
        hint="no extension may ship it"
        if never
        else "look at the wheel's contents; if you trust them, install with --allow-outside-files",
    )


def _kinds(grant: Grant) -> tuple[str, ...] | None:
    """The permission types to grant: () for all requested, None for none."""
    if grant is True:
        return ()
    if grant is False or isinstance(grant, str):
        return None if grant is False else (grant,)
    return tuple(grant) or None


def _check_grantable(plan: InstallPlan, kinds: tuple[str, ...] | None) -> None:
    """Refuse, before anything is created, a grant that cannot be made."""
    if kinds is None:
        return
    from symphony_core._security._grants import atoms, describe, select

    for consent in plan.consents:
        wanted = [kind for kind in kinds if _type_of(kind) in _types(consent)]
        if kinds and not wanted:
            continue
        try:
            chosen = atoms(select(consent.requested, wanted))
        except SymphonyError as exc:
            raise InstallError(exc.message, distribution=plan.wheel.distribution, hint=exc.hint) from None
        refused = [f"{describe(atom)} ({note.message})" for atom, note in consent.refused if atom in chosen]
        if refused:
            raise InstallError(
                f"{consent.extension} asks for what no one can grant: " + "; ".join(refused),
                distribution=plan.wheel.distribution,
                hint="install it without granting (--no-grant) and grant the other types alone, or ask its "
                "author to narrow the request",
            )


def _type_of(entry: str) -> str:
    """The permission type an entry of ``grant`` names: ``"fs.read"`` or ``"fs.read {data}/*.csv"``."""
    return entry.strip().partition(" ")[0]


def _types(consent: Consent) -> set[str]:
    return {str(permission["type"]) for permission in consent.requested}


def _grant(
    host: Host,
    plan: InstallPlan,
    records: Sequence[Record],
    kinds: tuple[str, ...] | None,
    actor: str,
    *,
    keep_only: bool = False,
) -> dict[str, tuple[str, ...]]:
    """Grant each installed extension what it requests (of ``kinds``; nothing new with ``keep_only``),
    with what an earlier version was granted and it still requests, bound to the distribution and the
    ``RECORD`` of its new environment."""
    from symphony_core._security._grants import atoms, chosen_atoms, covered, describe, rebuild

    granted: dict[str, tuple[str, ...]] = {}
    if kinds is None:
        return granted
    consents = {consent.extension: consent for consent in plan.consents}
    for record in records:
        manifest = record.manifest or {}
        requested = manifest.get("permissions") or []
        wanted = [kind for kind in kinds if _type_of(kind) in {str(p["type"]) for p in requested}]
        if not requested:
            continue
        nothing_new = keep_only or (bool(kinds) and not wanted)  # none of what was chosen is its
        key = canonical_id(record.id)
        new = [] if nothing_new else rebuild(requested, chosen_atoms(requested, wanted))
        consent = consents.get(key)
        kept = covered(consent) if consent is not None else set()
        if nothing_new and not kept:
            continue
        chosen = rebuild(requested, atoms(new) | kept)
        host.state.grant(
            key,
            record.distribution_version,
            chosen,
            actor=actor,
            distribution=record.distribution,
            sha256=record.distribution_sha256,
        )
        for permission in new:
            host._permission_event(key, "granted", str(permission["type"]), actor)
        granted[record.id] = tuple(sorted(describe(atom) for atom in atoms(new)))
    return granted


class _Running:
    """The uv process an install runs now, so that another thread can stop it (and no later one starts)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()


class _HeadStart:
    """uv making the environment of a wheel the caller has already said yes to (``confirm`` is None), while
    its manifests are validated and its grants planned: about a third of a small install's time.

    It holds the distribution's lock from the start. Nothing of the wheel runs meanwhile (uv copies files;
    it builds and runs nothing), the wheel has passed every check that reads its files, and anything that
    refuses it later removes the environment before the lock is let go; nothing records it before then."""

    def __init__(self, host: Host, wheel: Wheel) -> None:
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(_locked(envs_dir(host.home) / wheel.distribution))
        try:
            self.previous = installed_one(host.state, wheel.distribution)
            _sweep(envs_dir(host.home) / wheel.distribution, self.previous)
        except BaseException:
            self._lock.close()
            raise
        self.environment = (
            envs_dir(host.home) / wheel.distribution / f"{wheel.version}-{secrets.token_hex(4)}"
        )
        self._running = _Running()
        self._error: BaseException | None = None
        uv_run = _Uv.of(host)  # here: in the thread it would compete with the manifests' checks
        self._thread = threading.Thread(
            target=self._create,
            args=(host, wheel, uv_run),
            name=f"symphony-install-{wheel.distribution}",
            daemon=True,
        )
        self._thread.start()

    def _create(self, host: Host, wheel: Wheel, uv_run: _Uv) -> None:
        try:
            _create(host, self.environment, wheel, self._running, uv_run)
        except BaseException as exc:  # noqa: BLE001 - raised again by `wait`, in the installing thread
            self._error = exc

    def wait(self) -> None:
        """Wait for uv; what stopped it is raised here."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self, failed: bool) -> None:
        """Let go of the lock; when the install failed, first stop uv and remove the environment."""
        try:
            if failed:
                self._running.stop()
                self._thread.join()
                if self.environment.exists():
                    remove_environment(self.environment)
        finally:
            self._lock.close()


@contextlib.contextmanager
def _head_start(
    host: Host, wheel: Wheel, allow_outside_files: bool, *, start: bool
) -> Iterator[_HeadStart | None]:
    """A `_HeadStart` when ``start`` and the wheel fits this host and carries no refused file; else None."""
    if not start:
        yield None
        return
    _check_fits(wheel)
    _check_findings(wheel, allow_outside_files)
    head = _HeadStart(host, wheel)
    failed = True
    try:
        yield head
        failed = False
    finally:
        head.close(failed)


@dataclass(frozen=True)
class _Uv:
    """What every uv run of an install takes: the binary, the index, the core to pin, the environment."""

    binary: str
    index: str
    core: str | None
    env: Mapping[str, str]

    @classmethod
    def of(cls, host: Host) -> _Uv:
        from importlib.metadata import PackageNotFoundError, version

        settings = read_settings(host.home)
        try:
            core: str | None = version(CORE_DISTRIBUTION)
        except PackageNotFoundError:
            core = None
        env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
        env["UV_PYTHON_DOWNLOADS"] = "never"
        env["UV_HTTP_TIMEOUT"] = str(math.ceil(settings.timeout))
        return cls(uv_binary(), settings.index, core, env)


def _create(
    host: Host, environment: Path, wheel: Wheel, running: _Running | None = None, uv_run: _Uv | None = None
) -> None:
    """Make the environment with uv: this host's Python, the wheel and its dependencies, nothing built."""
    found = uv_run or _Uv.of(host)
    uv, index, core, env = found.binary, found.index, found.core, found.env
    constraints = environment.parent / f".{environment.name}.constraints.txt"
    try:
        # The worker runs the host's core: the environment gets the same one (the kit needs it anyway).
        constraints.write_text(f"{CORE_DISTRIBUTION}=={core}\n" if core else "", encoding="utf-8")
        _uv(
            [uv, "venv", "--quiet", "--no-project", "--python", sys.executable, str(environment)],
            env,
            wheel,
            running,
        )
        _uv(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(environment / "bin" / "python"),
                "--no-build",
                "--default-index",
                index,
                "--constraints",
                str(constraints),
                str(wheel.path),
            ],
            env,
            wheel,
            running,
        )
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise _no_space(environment.parent, wheel.distribution, exc) from None
        raise
    finally:
        constraints.unlink(missing_ok=True)


def _uv(command: list[str], env: Mapping[str, str], wheel: Wheel, running: _Running | None = None) -> None:
    if running is not None and running.stopped:
        raise InstallError(
            f"the install of {wheel.distribution} {wheel.version} stopped", distribution=wheel.distribution
        )
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
        cwd=tempfile.gettempdir(),
    )
    if running is not None:
        running.process = process
    try:
        _, stderr = process.communicate(timeout=_UV_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise InstallError(
            f"uv did not finish installing {wheel.distribution} {wheel.version} within {_UV_TIMEOUT:g} s",
            distribution=wheel.distribution,
            hint="check that the index answers; nothing was installed",
        ) from None
    except BaseException:  # Ctrl-C: uv stops with us
        process.kill()
        process.wait()
        raise
    result = subprocess.CompletedProcess(command, process.returncode, "", stderr)
    if result.returncode != 0:
        said = "\n".join(line for line in result.stderr.strip().splitlines()[-12:])
        full = [
            line.strip() for line in said.splitlines() if "os error 28" in line or "No space left" in line
        ]
        if full:
            # `_create` says where: uv's own words name only the file it was writing
            raise OSError(errno.ENOSPC, f"uv: {full[-1]}")
        if "timed out" in said.lower():
            raise InstallError(
                f"the package index did not answer uv within {env.get('UV_HTTP_TIMEOUT', '?')} s while it "
                f"installed the dependencies of {wheel.distribution} {wheel.version}:\n{said}",
                distribution=wheel.distribution,
                hint="nothing was installed, and an installed version is unchanged; try again later, or raise "
                f"`timeout` (seconds) in {SETTINGS_FILE} in the host's home",
            )
        raise InstallError(
            f"uv could not install {wheel.distribution} {wheel.version} into an environment of its own:\n{said}",
            distribution=wheel.distribution,
            hint="nothing was installed, and an installed version is unchanged; fix what uv reports (a "
            "dependency missing from the index, or published only as an sdist) and try again",
        )


def _freeze(environment: Path) -> dict[str, str]:
    """Every distribution in the environment and its version, read from its metadata folders."""
    lock: dict[str, str] = {}
    folder = site_packages(environment)
    for entry in sorted(os.listdir(folder)):
        if entry.endswith(".dist-info"):
            name, _, rest = entry[: -len(".dist-info")].partition("-")
            lock[canonical_name(name)] = rest
    return lock


def _installed_records(environment: Path, wheel: Wheel) -> list[Record]:
    """The wheel's extensions as discovery finds them in the new environment, each without a problem."""
    from symphony_core._catalog._discovery import scan

    records = [
        record
        for record in scan([str(site_packages(environment))]).records
        if record.distribution == wheel.distribution
    ]
    if {record.id for record in records} != {extension.id for extension in wheel.extensions}:
        raise InstallError(
            f"after installing {wheel.path.name}, its environment does not show the extensions the wheel declares",
            distribution=wheel.distribution,
            hint="report it to its authors; nothing was installed",
        )
    for record in records:
        if record.problem is not None:
            hint = f"; {record.problem.hint}" if record.problem.hint else ""
            raise InstallError(
                f"{record.id} cannot run as installed: {record.problem.message}",
                distribution=wheel.distribution,
                hint=f"nothing was installed{hint}",
            )
    return records


def _managed(host: Host, extension: str) -> Installed:
    """The managed installation named by a distribution name or by the id of an extension it ships."""
    entry = installed_one(host.state, extension)
    if entry is not None:
        return entry
    wanted = canonical_id(extension)
    for candidate in installed(host.state):
        if wanted in {canonical_id(ext_id) for ext_id in candidate.extensions}:
            return candidate
    raise InstallError(
        f"{extension} is not installed in an environment of its own",
        hint="`symphony list` shows where each extension is installed; one in the host's own environment is "
        "removed with pip",
    )


def _refuse_host_copy(host: Host, wheel: Wheel) -> None:
    from symphony_core._catalog._discovery import discover

    catalog = discover(host.home.cache_dir, path=host.path)
    if any(record.distribution == wheel.distribution for record in catalog.records):
        raise InstallError(
            f"{wheel.distribution} is installed in the host's own environment already",
            distribution=wheel.distribution,
            hint=f"uninstall it there first (pip uninstall {wheel.distribution}), or keep that copy",
        )


def _unchanged(entry: Installed, started: float) -> Installation:
    return Installation(
        "unchanged",
        entry.distribution,
        entry.version,
        entry.environment,
        entry.extensions,
        entry.wheel_sha256,
        entry.lock,
        seconds=time.monotonic() - started,
    )


def _ids(wheel: Wheel) -> tuple[str, ...]:
    return tuple(extension.id for extension in wheel.extensions)


@contextlib.contextmanager
def _staging(host: Host) -> Iterator[Path]:
    """A folder for downloads, removed afterwards."""
    root = envs_dir(host.home)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the distribution's lock: one install, upgrade or uninstall of it at a time, across processes."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _sweep(root: Path, current: Installed | None) -> None:
    """Remove what an install stopped in its middle (a killed process) left in the distribution's folder."""
    for entry in root.iterdir():
        if entry.name.startswith("."):
            if entry.name.endswith(".constraints.txt"):
                entry.unlink(missing_ok=True)
            continue
        if current is None or entry != current.environment:
            remove_environment(entry)
