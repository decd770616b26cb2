"""Attack: a namespace package named like a folder beside the host's script (``appconfig/``).

If the host looks the package up on its own ``sys.path`` to decide what the worker may read, the folder
beside its script becomes part of the extension's code, and readable.
"""

from __future__ import annotations

import appconfig
from hostile_kit import Hostile


class Ext(Hostile):
    def portions(self) -> list[str]:
        """The folders of the ``appconfig`` namespace package as the worker sees it."""
        return [str(folder) for folder in appconfig.__path__]
