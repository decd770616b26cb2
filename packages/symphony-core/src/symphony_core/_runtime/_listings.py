"""A marketplace's catalog as data: one `Listing` per published extension, and search over them.

The catalog is a JSON document (``catalog.json``) that ``symphony catalog build`` writes from the wheels an
index publishes and that hosts read only after TUF has verified it (``_marketplace``). Everything in it is
text to show, never to run: a README may hold HTML or scripts, a name may mix scripts; both are carried as
they are and each front end shows them as text (the command line escapes them). The shape:

.. code-block:: text

    {"format": 1, "generated": "2025-01-01T00:00:00Z", "index": "https://…/simple/",
     "extensions": [{"id", "kind", "name", "summary", "publisher": {"distribution", "index"},
                     "targets", "permissions": [{"type", …, "reason"}], "warnings": [{"field", "code",
                     "message"}], "readme", "readme_type", "links": {label: url},
                     "versions": [{"version", "targets", "requires_python", "permissions",
                                   "files": [{"filename", "sha256", "size"}]}]}]}

The top-level ``targets``, ``permissions``, ``name`` and ``summary`` are the latest version's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1
"""The version of the catalog's shape; a host refuses a catalog whose format it does not know."""
CATALOG_TARGET = "catalog.json"
"""The catalog's path among the marketplace's TUF targets."""
WHEELS = "wheels/"
"""The prefix of every wheel's path among the TUF targets: ``wheels/<file name>``."""


class CatalogFormatError(ValueError):
    """The catalog's JSON does not have the shape this host reads."""


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One wheel of a listed version, as the catalog (and its signed TUF target) records it."""

    filename: str
    sha256: str
    size: int

    def as_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True, slots=True)
class ListedVersion:
    """One published version of an extension: what it targets and asks for, and its wheels."""

    version: str
    targets: str
    permissions: tuple[Mapping[str, Any], ...]
    files: tuple[ListedFile, ...]
    requires_python: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "targets": self.targets,
            "requires_python": self.requires_python,
            "permissions": [dict(permission) for permission in self.permissions],
            "files": [file.as_json() for file in self.files],
        }


@dataclass(frozen=True, slots=True)
class Listing:
    """One extension a marketplace lists: what a person reads before installing it."""

    id: str
    kind: str
    name: str
    summary: str
    distribution: str
    """The distribution that publishes it (its publisher, with ``index``)."""
    index: str
    targets: str
    """The kit and the versions of it the latest version was built for."""
    permissions: tuple[Mapping[str, Any], ...]
    """What the latest version asks for, each request with its reason."""
    versions: tuple[ListedVersion, ...]
    """Oldest first."""
    readme: str = ""
    """The distribution's long description, as its author wrote it: text to show, never markup to run."""
    readme_type: str = "text/plain"
    links: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[Mapping[str, str], ...] = ()
    """What to look twice at in its name and reasons (mixed scripts, invisible characters)."""
    _haystack: str = field(default="", compare=False, repr=False)

    @property
    def latest(self) -> ListedVersion:
        return self.versions[-1]

    def version(self, version: str) -> ListedVersion | None:
        return next((listed for listed in self.versions if listed.version == version), None)

    def summary_json(self) -> dict[str, Any]:
        """What ``symphony search --json`` prints for it."""
        return {
            "id": self.id,
            "name": self.name,
            "summary": self.summary,
            "kind": self.kind,
            "latest": self.latest.version,
            "permissions": len(self.permissions),
            "distribution": self.distribution,
            "warnings": [dict(warning) for warning in self.warnings],
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "summary": self.summary,
            "publisher": {"distribution": self.distribution, "index": self.index},
            "targets": self.targets,
            "permissions": [dict(permission) for permission in self.permissions],
            "warnings": [dict(warning) for warning in self.warnings],
            "readme": self.readme,
            "readme_type": self.readme_type,
            "links": dict(self.links),
            "versions": [version.as_json() for version in self.versions],
        }


@dataclass(frozen=True)
class Listings:
    """Every extension of one catalog, by id, with search."""

    listings: tuple[Listing, ...]
    generated: str = ""
    index: str = ""
    _by_id: dict[str, Listing] = field(default_factory=dict, compare=False, repr=False)
    _files: dict[str, tuple[Listing, ListedVersion, ListedFile]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for listing in self.listings:
            self._by_id[listing.id] = listing
            for version in listing.versions:
                for file in version.files:
                    self._files[file.filename] = (listing, version, file)

    def __len__(self) -> int:
        return len(self.listings)

    def __iter__(self) -> Iterator[Listing]:
        return iter(self.listings)

    def get(self, ext_id: str) -> Listing | None:
        return self._by_id.get(ext_id.strip().lower())

    def file(self, filename: str) -> tuple[Listing, ListedVersion, ListedFile] | None:
        """The listing, version and file entry of a wheel, by its file name."""
        return self._files.get(filename)

    def of_distribution(self, distribution: str) -> list[Listing]:
        return [listing for listing in self.listings if listing.distribution == distribution]

    def search(self, text: str = "", *, kind: str | None = None, limit: int | None = None) -> list[Listing]:
        """The listings whose id, name, summary or distribution hold every word of ``text`` (case and
        accents as written), best first: an exact id, then an id or name that starts with the text, then
        the rest by id."""
        words = text.casefold().split()
        wanted = text.strip().casefold()
        found: list[tuple[int, str, Listing]] = []
        for listing in self.listings:
            if kind is not None and listing.kind != kind:
                continue
            if not all(word in listing._haystack for word in words):
                continue
            if not wanted:
                rank = 3
            elif listing.id == wanted:
                rank = 0
            elif listing.id.startswith(wanted) or listing.name.casefold().startswith(wanted):
                rank = 1
            elif wanted in listing.name.casefold():
                rank = 2
            else:
                rank = 3
            found.append((rank, listing.id, listing))
        found.sort(key=lambda item: (item[0], item[1]))
        chosen = [listing for _, _, listing in found]
        return chosen if limit is None else chosen[:limit]

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "generated": self.generated,
            "index": self.index,
            "extensions": [listing.as_json() for listing in self.listings],
        }


def listing(
    *,
    ext_id: str,
    kind: str,
    name: str,
    summary: str,
    distribution: str,
    index: str,
    versions: Sequence[ListedVersion],
    readme: str = "",
    readme_type: str = "text/plain",
    links: Mapping[str, str] | None = None,
    warnings: Iterable[Mapping[str, str]] = (),
) -> Listing:
    """A `Listing` whose search text is ready (its id, name, summary and distribution, case-folded)."""
    latest = versions[-1]
    return Listing(
        ext_id,
        kind,
        name,
        summary,
        distribution,
        index,
        latest.targets,
        latest.permissions,
        tuple(versions),
        readme,
        readme_type,
        dict(links or {}),
        tuple(warnings),
        f"{ext_id}\n{name}\n{summary}\n{distribution}".casefold(),
    )


def parse_catalog(data: Any) -> Listings:
    """The listings of a catalog document (already verified as the marketplace signed it); a shape this
    host does not read is a `CatalogFormatError`."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CatalogFormatError(f"the catalog's format is {found!r}; this host reads format {FORMAT}")
    try:
        items = []
        for item in data["extensions"]:
            publisher = item["publisher"]
            versions = [
                ListedVersion(
                    _text(version["version"]),
                    _text(version["targets"]),
                    tuple(_permissions(version.get("permissions", []))),
                    tuple(
                        ListedFile(_text(file["filename"]), _text(file["sha256"]), int(file["size"]))
                        for file in version["files"]
                    ),
                    version.get("requires_python"),
                )
                for version in item["versions"]
            ]
            if not versions:
                raise CatalogFormatError(f"{item['id']!r} lists no version")
            items.append(
                listing(
                    ext_id=_text(item["id"]),
                    kind=_text(item["kind"]),
                    name=_text(item["name"]),
                    summary=_text(item["summary"]),
                    distribution=_text(publisher["distribution"]),
                    index=_text(publisher["index"]),
                    versions=versions,
                    readme=_text(item.get("readme", "")),
                    readme_type=_text(item.get("readme_type", "text/plain")),
                    links={_text(key): _text(value) for key, value in dict(item.get("links", {})).items()},
                    warnings=[
                        {key: _text(value) for key, value in dict(warning).items()}
                        for warning in item.get("warnings", [])
                    ],
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CatalogFormatError):
            raise
        raise CatalogFormatError(f"the catalog is not in the shape of format {FORMAT} ({exc!r})") from None
    return Listings(tuple(items), _text(data.get("generated", "")), _text(data.get("index", "")))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise CatalogFormatError(f"expected text, found {type(value).__name__}")
    return value


def _permissions(value: Any) -> Iterator[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise CatalogFormatError("permissions must be a list")
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise CatalogFormatError("each permission must be a table with a type")
        yield item
