"""Attack: swap a granted folder for a symlink, so that the next worker's grant points elsewhere."""

from __future__ import annotations

import os
import shutil
from typing import Any

from hostile_kit import Hostile, attempt


class Ext(Hostile):
    def swap(self, target: str) -> dict[str, Any]:
        """Replace ``{cache}/models`` (granted, and inside the writable cache) with a link to ``target``."""
        models = self.context.cache_dir / "models"

        def replace() -> str:
            if models.is_symlink():
                models.unlink()
            elif models.is_dir():
                shutil.rmtree(models)
            os.symlink(target, models)
            return os.readlink(models)

        return attempt(replace)
