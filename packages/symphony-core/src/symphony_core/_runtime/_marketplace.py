"""A host's marketplace: its catalog fetched and verified with TUF, and the wheels it lists checked.

A host names its marketplace in ``$SYMPHONY_HOME/install.toml``::

    [marketplace]
    url = "https://market.example.org/"   # or a folder: "/srv/market", "file:///srv/market"
    root = "market-root.json"             # the root metadata it trusts, got out of band

``root`` (relative to the home folder) pins the marketplace's root keys. Every use refreshes the TUF
metadata (root, timestamp, snapshot, targets) from ``<url>/metadata/`` with python-tuf's ``Updater``, which
refuses metadata that is unsigned or signed by other keys, expired (a freeze), older than what this host
verified before (a rollback), or that does not match the hashes above it; the catalog (``catalog.json``, a
TUF target under ``<url>/targets/``) is used only once its signed hash and length match. What the host
verified last is kept in ``$SYMPHONY_HOME/marketplace/<key>/``, so a rollback is caught across runs.

Every wheel the catalog lists is a TUF target too (``wheels/<file name>``, with its length and SHA-256):
`verify_download` checks a wheel downloaded from the index against it before anything reads the wheel.

python-tuf is imported only here, and only when a marketplace is used: it comes with the
``symphony-sdk-core[marketplace]`` extra.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symphony_core._model._errors import InstallError

from ._install import SETTINGS_FILE, TIMEOUT, _locked, read_settings
from ._listings import CATALOG_TARGET, WHEELS, CatalogFormatError, Listing, Listings, parse_catalog

if TYPE_CHECKING:
    from tuf.api.metadata import TargetFile
    from tuf.ngclient import Updater

    from symphony_core._security._grants import Consent
    from symphony_core._store._home import Home

    from ._host import Host
    from ._install import Release

EXTRA = "symphony-sdk-core[marketplace]"
"""What to install for a host to use a marketplace (and for an operator to build one)."""


class MarketplaceError(InstallError):
    """The host's marketplace could not be reached or verified, or a wheel does not match its catalog;
    nothing was installed."""

    data_fields = ("marketplace",)

    def __init__(self, message: str, *, marketplace: str | None = None, **kwargs: Any) -> None:
        self.marketplace = marketplace
        super().__init__(message, **kwargs)


@dataclass(frozen=True, slots=True)
class MarketplaceSettings:
    """Where the host's marketplace is and the root metadata it trusts (``[marketplace]`` in
    ``install.toml``)."""

    url: str
    """Its base URL (``http(s)://``) or folder; metadata is under ``metadata/``, the catalog under ``targets/``."""
    root: Path
    """The pinned root metadata (``root.json``), got out of band."""
    file: Path | None = None

    @property
    def folder(self) -> Path | None:
        """The marketplace's folder when it is served from one, else None."""
        parsed = urllib.parse.urlparse(self.url)
        if parsed.scheme in ("http", "https"):
            return None
        return Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else self.url)


def marketplace_settings(home: Home) -> MarketplaceSettings | None:
    """The host's marketplace, or None when ``install.toml`` names none."""
    settings = read_settings(home)
    table = settings.marketplace
    if table is None:
        return None
    file = settings.file
    url, root = table.get("url"), table.get("root")
    unknown = sorted(set(table) - {"url", "root"})
    if not isinstance(url, str) or not url or not isinstance(root, str) or not root or unknown:
        raise MarketplaceError(
            f"invalid [marketplace] in {file}: it needs `url` (the marketplace's address or folder) and "
            "`root` (the root metadata you trust, got out of band)"
            + (f"; unknown key(s) {', '.join(unknown)}" if unknown else ""),
            marketplace=url if isinstance(url, str) else None,
            hint='write [marketplace] url = "https://market.example.org/" and root = "market-root.json"',
        )
    pinned = Path(root).expanduser()
    if not pinned.is_absolute():
        pinned = home.root / pinned
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https", "file") and not Path(url).is_absolute():
        url = str(home.root / url)
    return MarketplaceSettings(url, pinned, file)


@dataclass(frozen=True)
class Marketplace:
    """A marketplace whose metadata and catalog this host has just verified."""

    settings: MarketplaceSettings
    listings: Listings
    _updater: Updater

    @property
    def url(self) -> str:
        return self.settings.url

    def target(self, filename: str) -> TargetFile | None:
        """The signed length and hashes of a wheel the catalog lists, or None if the metadata has none."""
        from tuf.api import exceptions

        try:
            return self._updater.get_targetinfo(WHEELS + filename)
        except (exceptions.RepositoryError, exceptions.DownloadError) as exc:
            raise _refused(self.url, exc) from None

    def verify_wheel(self, path: Path, *, distribution: str, source: str) -> None:
        """Check a downloaded wheel against the catalog and its signed TUF target; refuse it unless both
        list it with this very length and hash."""
        from tuf.api import exceptions

        found = self.listings.file(path.name)
        if found is None:
            listed = self.listings.of_distribution(distribution)
            if not listed:
                raise MarketplaceError(
                    f"{distribution} is not listed in the catalog of the marketplace {self.url}; nothing was "
                    "installed",
                    distribution=distribution,
                    marketplace=self.url,
                    hint="look for it with `symphony search`; a host with a marketplace installs from the index "
                    "only what the marketplace lists (a wheel you checked yourself: --from PATH.whl)",
                )
            versions = ", ".join(version.version for version in listed[0].versions)
            raise MarketplaceError(
                f"{path.name} from {source} is not in the catalog of the marketplace {self.url}, which lists "
                f"{distribution} {versions}; nothing was installed",
                distribution=distribution,
                marketplace=self.url,
                hint=f"install a listed version (symphony install {distribution}=={listed[0].latest.version}), "
                "or wait until the marketplace lists this one",
            )
        target = self.target(path.name)
        if target is None:
            raise MarketplaceError(
                f"the catalog of the marketplace {self.url} lists {path.name}, but its signed metadata does not: "
                "the catalog and the metadata disagree; nothing was installed",
                distribution=distribution,
                marketplace=self.url,
                hint="tell the marketplace's operator; do not install it until they publish a consistent catalog",
            )
        with path.open("rb") as file:
            try:
                target.verify_length_and_hashes(file)
            except exceptions.LengthOrHashMismatchError:
                size, digest = _measure(path)
                raise MarketplaceError(
                    f"{path.name} as downloaded from {source} does not match the marketplace's signed hash "
                    f"(sha256 {target.hashes.get('sha256')}, {target.length} bytes; got sha256 {digest}, "
                    f"{size} bytes): the index serves another file than the one the marketplace {self.url} "
                    "verified; nothing was installed",
                    distribution=distribution,
                    marketplace=self.url,
                    hint="do not install it; tell the index's and the marketplace's operators",
                ) from None


def open_marketplace(home: Home, settings: MarketplaceSettings | None = None) -> Marketplace | None:
    """Refresh and verify the host's marketplace and its catalog; None when the host has none."""
    settings = settings if settings is not None else marketplace_settings(home)
    if settings is None:
        return None
    _require_tuf(settings.url)
    from tuf.api import exceptions
    from tuf.ngclient import Updater

    try:
        pinned = settings.root.read_bytes()
    except OSError as exc:
        raise MarketplaceError(
            f"cannot read the root metadata pinned for the marketplace {settings.url} ({settings.root}: "
            f"{exc.strerror or exc})",
            marketplace=settings.url,
            hint=f"put the marketplace's root.json (got from its operator out of band) at {settings.root}, or "
            f"fix `root` under [marketplace] in {SETTINGS_FILE}",
        ) from None
    state = home.root / "marketplace" / hashlib.sha256(settings.url.encode()).hexdigest()[:16]
    metadata, targets = state / "metadata", state / "targets"
    with _locked(state):
        metadata.mkdir(parents=True, exist_ok=True)
        targets.mkdir(parents=True, exist_ok=True)
        folder = settings.folder
        base = folder.as_uri() + "/" if folder is not None else settings.url.rstrip("/") + "/"
        try:
            updater = Updater(
                str(metadata),
                base + "metadata/",
                str(targets),
                base + "targets/",
                fetcher=_folder_fetcher() if folder is not None else _http_fetcher(),
                bootstrap=pinned,
            )
            updater.refresh()
            info = updater.get_targetinfo(CATALOG_TARGET)
            if info is None:
                raise MarketplaceError(
                    f"the signed metadata of the marketplace {settings.url} lists no {CATALOG_TARGET}; refused",
                    marketplace=settings.url,
                    hint="check the marketplace's url; its operator publishes the catalog with "
                    "`symphony catalog build`",
                )
            path = updater.find_cached_target(info) or updater.download_target(info)
        except (exceptions.RepositoryError, exceptions.DownloadError, ValueError) as exc:
            raise _refused(settings.url, exc) from None
    try:
        listings = parse_catalog(json.loads(Path(path).read_bytes()))
    except (ValueError, CatalogFormatError) as exc:
        raise MarketplaceError(
            f"the catalog of the marketplace {settings.url} is signed but this host cannot read it ({exc})",
            marketplace=settings.url,
            hint="upgrade symphony-sdk-core, or tell the marketplace's operator",
        ) from None
    return Marketplace(settings, listings, updater)


def listings(host: Host) -> Listings:
    """See `Host.listings`."""
    market = open_marketplace(host.home)
    if market is None:
        raise MarketplaceError(
            "this host has no marketplace",
            hint=f"name one in {SETTINGS_FILE} in the host's home: [marketplace] url = ... and root = ... "
            "(the guide 'Running a marketplace' shows how)",
        )
    return market.listings


def search(host: Host, text: str = "", *, kind: str | None = None) -> list[Listing]:
    """See `Host.search`."""
    return listings(host).search(text, kind=kind)


def listed_consent(host: Host, extension: str, version: str | None = None) -> Consent:
    """See `Host.listed_consent`."""
    from symphony_core._model._kinds import canonical_id
    from symphony_core._security._grants import evaluate, read_policy
    from symphony_core._security._reach import Roots

    listing = listings(host).get(extension)
    listed = None if listing is None else listing.latest if version is None else listing.version(version)
    if listing is None or listed is None:
        what = extension if version is None else f"{extension} {version}"
        raise MarketplaceError(
            f"the marketplace does not list {what}",
            hint="`symphony search` lists what it publishes",
        )
    key = canonical_id(listing.id)
    return evaluate(
        host.state,
        read_policy(host.policy_file),
        extension=key,
        version=listed.version,
        distribution=listing.distribution,
        requested=tuple(dict(permission) for permission in listed.permissions),
        roots=Roots.of(host.home, key),
        name=listing.name,
    )


def verify_download(host: Host, release: Release, path: Path) -> None:
    """Check a wheel downloaded from the index against the host's marketplace, when it has one."""
    market = open_marketplace(host.home)
    if market is not None:
        market.verify_wheel(path, distribution=release.distribution, source=release.index)


def _require_tuf(url: str) -> None:
    try:
        import tuf.ngclient  # noqa: F401
    except ImportError:
        raise MarketplaceError(
            f"this host is configured with the marketplace {url}, and verifying it needs python-tuf, which is "
            "not installed",
            marketplace=url,
            hint=f"install it into the host's environment: pip install '{EXTRA}'",
        ) from None


def _refused(url: str, exc: BaseException) -> MarketplaceError:
    """The error a TUF failure becomes: what failed, in the person's words, and what to do."""
    from tuf.api import exceptions

    detail = str(exc) or type(exc).__name__
    if isinstance(exc, exceptions.DownloadError) and not isinstance(
        exc, exceptions.DownloadLengthMismatchError
    ):
        status = getattr(exc, "status_code", None)
        cause = exc.__cause__ or exc.__context__
        reason = f"HTTP {status}" if status else str(getattr(cause, "reason", cause) or detail)
        return MarketplaceError(
            f"cannot reach the marketplace {url} ({reason}); nothing was verified or installed",
            marketplace=url,
            hint=f"check that it is up and that `url` under [marketplace] in {SETTINGS_FILE} is right, then try "
            "again",
        )
    if isinstance(exc, exceptions.ExpiredMetadataError):
        what = "expired metadata: its catalog is stale, or someone keeps serving an old one (a freeze attack)"
        hint = "try again later; if it persists, tell the marketplace's operator to re-sign it (symphony catalog refresh)"
    elif isinstance(exc, exceptions.BadVersionNumberError):
        what = "metadata older than what this host verified before: a rollback to an old catalog"
        hint = "try again later; if it persists, tell the marketplace's operator"
    elif isinstance(exc, exceptions.UnsignedMetadataError):
        what = "metadata that is not signed by the keys this host trusts: unsigned, tampered or signed by another"
        hint = (
            "do not use it until its operator explains; a marketplace that rotated its keys publishes a new "
            "root signed by the old keys and the new"
        )
    elif isinstance(exc, (exceptions.LengthOrHashMismatchError, exceptions.DownloadLengthMismatchError)):
        what = (
            "a file that does not match the hash its signed metadata gives: it was tampered with or damaged"
        )
        hint = "try again; if it persists, tell the marketplace's operator"
    else:
        what = "metadata that fails verification"
        hint = "tell the marketplace's operator; check `root` under [marketplace] is the root they published"
    return MarketplaceError(
        f"the marketplace {url} serves {what} ({detail}); refused, nothing was installed",
        marketplace=url,
        hint=hint,
    )


def _measure(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _http_fetcher() -> Any:
    from tuf.ngclient import Urllib3Fetcher

    return Urllib3Fetcher(socket_timeout=int(TIMEOUT), app_user_agent="symphony")


def _folder_fetcher() -> Any:
    """A TUF fetcher that reads ``file://`` URLs from a folder (a missing file answers like HTTP 404)."""
    from tuf.api import exceptions
    from tuf.ngclient import FetcherInterface

    class FolderFetcher(FetcherInterface):
        def _fetch(self, url: str) -> Iterator[bytes]:
            path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise exceptions.DownloadHTTPError(f"{path} does not exist", 404) from None
            except OSError as exc:
                raise exceptions.DownloadError(f"cannot read {path}: {exc.strerror or exc}") from None
            return iter((data,))

    return FolderFetcher()
