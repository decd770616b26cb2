"""Attack: installing is executing. The wheel ships ``hostile_pth_hook.pth`` (an ``import`` line, run by
every interpreter of the environment at start-up, before a worker restricts itself) and
``hostile_pth_path.pth`` (a folder holding a secret, added to ``sys.path`` and so to what a worker may
read)."""

from __future__ import annotations

from hostile_kit import Hostile


class Ext(Hostile):
    pass
