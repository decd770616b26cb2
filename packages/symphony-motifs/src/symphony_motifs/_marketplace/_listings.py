"""The marketplace's catalog as the view shows it: search results and a details pane.

The catalog is fetched and verified (TUF) by the host once, when the view asks for it, and kept until the
person refreshes it: a search then runs over the verified copy in memory, never over the network.
Every text in it is the publisher's: names and summaries are shown as text (invisible characters
escaped), the README is rendered to sanitized HTML, links keep http and https URLs only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from symphony_core import Host
from symphony_motifs._markdown import render_readme, visible

RESULTS = 1000
"""Search results sent to the page at most; the page says how many more matched."""


class CatalogView:
    """The host's verified catalog, loaded on first use, with the view's search and details."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._listings: Any = None
        self._lock = threading.Lock()

    def load(self, *, refresh: bool = False) -> Any:
        """The verified listings (`Host.listings`), fetched again with ``refresh``."""
        with self._lock:
            if self._listings is None or refresh:
                self._listings = self.host.listings()
            return self._listings

    def search(self, text: str, kind: str | None, installed: Mapping[str, str]) -> dict[str, Any]:
        """The listings matching ``text`` (and ``kind``), as result rows, and how long the search took."""
        listings = self.load()
        started = time.perf_counter()
        found = listings.search(text, kind=kind or None)
        rows = [row(listing, installed.get(listing.id)) for listing in found[:RESULTS]]
        return {
            "results": rows,
            "total": len(found),
            "catalog": len(listings),
            "kinds": sorted({listing.kind for listing in listings}),
            "server_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    def details(self, extension: str) -> dict[str, Any]:
        """Everything the details pane shows of one listing, the README as sanitized HTML."""
        listing = self.load().get(extension)
        if listing is None:
            from symphony_motifs._errors import MotifError

            raise MotifError(
                "is not listed by the marketplace",
                extension=extension,
                hint="refresh the catalog, or search for it again",
            )
        return {
            "id": listing.id,
            "name": visible(listing.name),
            "kind": listing.kind,
            "summary": visible(listing.summary),
            "publisher": {"distribution": listing.distribution, "index": listing.index},
            "targets": listing.targets,
            "latest": listing.latest.version,
            "versions": [
                {
                    "version": version.version,
                    "targets": version.targets,
                    "requires_python": version.requires_python,
                    "files": [file.as_json() for file in version.files],
                }
                for version in reversed(listing.versions)
            ],
            "links": [link(label, url) for label, url in listing.links.items()],
            "readme_html": render_readme(listing.readme, listing.readme_type),
            "warnings": [
                {"field": warning.get("field", ""), "message": visible(warning.get("message", ""))}
                for warning in listing.warnings
            ],
        }


def row(listing: Any, installed: str | None) -> dict[str, Any]:
    """One search result."""
    return {
        "id": listing.id,
        "name": visible(listing.name),
        "summary": visible(listing.summary),
        "kind": listing.kind,
        "latest": listing.latest.version,
        "distribution": listing.distribution,
        "permissions": len(listing.permissions),
        "installed": installed,
        "look_twice": bool(listing.warnings),
    }


def link(label: str, url: str) -> dict[str, Any]:
    """A link of the catalog: followed only when it is an http or https URL, else shown as text."""
    safe = urlsplit(url).scheme.lower() in ("http", "https")
    return {"label": visible(label), "url": visible(url), "safe": safe}
