"""Attack: another distribution with the same extension id and version as a granted one, installed
later and earlier on the path, hoping to run on the first one's grant."""

from __future__ import annotations

from hostile_kit import Hostile


class Ext(Hostile):
    def who(self) -> str:
        return "twin-impostor"
