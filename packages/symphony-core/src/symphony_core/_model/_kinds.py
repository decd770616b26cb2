"""The three kinds of extension: their entry-point groups and the public package each is built on."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of extension."""

    name: str
    group: str
    package: str
    front: str | None = None
    """``module:attribute`` of the kit's host-side front for the kind's isolated extensions (see
    ``_sandbox._fronts``), or None for `RemoteExtension`. Named here, not registered through an entry
    point, so no installed distribution can put code in the host's process for a kind."""
    runner: str | None = None
    """``module:attribute`` of the kit's click command behind ``symphony run`` for the kind, named here for
    the same reason."""
    dev: str | None = None
    """``module:attribute`` of what ``symphony dev`` serves for an extension of the kind while it is
    developed (a motif's page, which reloads on save), or None; named here for the same reason."""

    @property
    def module(self) -> str:
        """The import name of the kit it is built on (``symphony_instruments``)."""
        return self.package.replace("-", "_")


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "instrument",
            "symphony.instruments",
            "symphony-instruments",
            front="symphony_instruments._isolated:IsolatedInstrument",
            runner="symphony_instruments._run:run",
        ),
        Kind(
            "operator",
            "symphony.operators",
            "symphony-operators",
            front="symphony_operators._isolated:IsolatedOperator",
            runner="symphony_operators._run:run",
        ),
        Kind(
            "motif",
            "symphony.motifs",
            "symphony-motifs",
            runner="symphony_motifs._run:run",
            dev="symphony_motifs._dev:DevPage",
        ),
    )
}
KIND_BY_GROUP: dict[str, Kind] = {kind.group: kind for kind in KINDS.values()}
CORE_DISTRIBUTION = "symphony-sdk-core"
MANIFEST_FILE = "symphony.toml"


def canonical_name(name: str) -> str:
    """A distribution name normalised as PEP 503 says, by ``packaging.utils.canonicalize_name``.

    Imported on first use: ``packaging.utils`` brings ``packaging.tags`` (and ``subprocess``,
    ``sysconfig``) along, which a discovery served from the index never needs."""
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


@functools.lru_cache(maxsize=8192)
def canonical_id(extension: str) -> str:
    """An extension id compared the way PEP 503 compares names: case and runs of ``-``/``_`` do not count.

    Dots stay: they separate the publisher from the name.
    """
    if "_" not in extension and "--" not in extension and extension == extension.lower():
        return extension  # already canonical, as most ids are
    return ".".join(re.sub(r"[-_]+", "-", part).lower() for part in extension.split("."))
