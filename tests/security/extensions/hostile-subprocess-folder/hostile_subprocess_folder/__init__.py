"""Attack: a subprocess grant naming a folder, used to read the files beneath it."""

from __future__ import annotations

from hostile_kit import Hostile


class Ext(Hostile):
    pass
