"""Where a host keeps its files: ``SYMPHONY_HOME``, or the platform's user data folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_VARIABLE = "SYMPHONY_HOME"


@dataclass(frozen=True, slots=True)
class Home:
    """The folder layout under a Symphony home."""

    root: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike[str] | None = None) -> Home:
        """The home given, else ``$SYMPHONY_HOME``, else the platform's user data folder."""
        if root is None:
            root = os.environ.get(HOME_VARIABLE) or None
        if root is None:
            import platformdirs

            root = platformdirs.user_data_dir("symphony", appauthor=False)
        return cls(Path(root).expanduser().absolute())

    @property
    def state_file(self) -> Path:
        """The SQLite database with enablement, grants, config overrides and the audit log."""
        return self.root / "state.sqlite"

    @property
    def policy_file(self) -> Path:
        """The host policy: allow/deny rules for hosts that run unattended."""
        return self.root / "policy.toml"

    @property
    def cache_dir(self) -> Path:
        """Caches that can be deleted at any time (the discovery index)."""
        return self.root / "cache"

    @property
    def config_dir(self) -> Path:
        """One TOML config file per extension."""
        return self.root / "config"

    def data_dir(self, extension: str) -> Path:
        """An extension's own data folder (``{data}`` in permissions)."""
        return self.root / "extensions" / extension / "data"

    def extension_cache_dir(self, extension: str) -> Path:
        """An extension's own cache folder (``{cache}`` in permissions)."""
        return self.root / "extensions" / extension / "cache"
