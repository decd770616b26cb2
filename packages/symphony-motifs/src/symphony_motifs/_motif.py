"""The base class of a motif: a UI component made of web assets and a declared Python API."""

from __future__ import annotations

from typing import ClassVar

from symphony_core import Extension


class Motif(Extension):
    """Base class of a motif extension.

    A motif ships its web assets (HTML, JavaScript, CSS) inside its distribution and lists, in
    `exposed`, the only methods its page may call.
    """

    kind: ClassVar[str] = "motif"
    exposed: ClassVar[tuple[str, ...]] = ()
