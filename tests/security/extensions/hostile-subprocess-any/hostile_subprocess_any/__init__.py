"""Attack: a subprocess grant (every program) used to read every file from Python."""

from __future__ import annotations

from hostile_kit import Hostile


class Ext(Hostile):
    pass
