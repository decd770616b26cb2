"""The three kinds of extension: their entry-point groups and the public package each is built on."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of extension."""

    name: str
    group: str
    package: str


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("instrument", "symphony.instruments", "symphony-instruments"),
        Kind("operator", "symphony.operators", "symphony-operators"),
        Kind("motif", "symphony.motifs", "symphony-motifs"),
    )
}
KIND_BY_GROUP: dict[str, Kind] = {kind.group: kind for kind in KINDS.values()}
CORE_DISTRIBUTION = "symphony-sdk-core"
MANIFEST_FILE = "symphony.toml"


def canonical_name(name: str) -> str:
    """A distribution name normalised as PEP 503 says (what ``packaging.utils.canonicalize_name`` does)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def canonical_id(extension: str) -> str:
    """An extension id compared the way PEP 503 compares names: case and runs of ``-``/``_`` do not count.

    Dots stay: they separate the publisher from the name.
    """
    return ".".join(re.sub(r"[-_]+", "-", part).lower() for part in extension.split("."))
