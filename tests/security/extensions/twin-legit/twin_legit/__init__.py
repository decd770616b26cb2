"""The distribution that was granted ``twin.app``'s permissions."""

from __future__ import annotations

from hostile_kit import Hostile


class Ext(Hostile):
    def who(self) -> str:
        return "twin-legit"
