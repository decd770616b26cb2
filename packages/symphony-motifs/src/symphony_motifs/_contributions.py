"""What a motif declares in its manifest's ``[contributes]`` table: its page, its API and its events.

The manifest is read without importing the motif, so a host can locate a motif's assets and refuse a
call to an undeclared method before any of the motif's code runs.

```toml
[contributes]
page = "web/index.html"        # inside the package; every asset lives in the page's folder
exposed = ["search", "open"]   # the only methods the page may call
events = ["progress"]          # the only events the motif may push to its page
width = 900                    # the window's size in window mode
height = 640
```
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import MotifError

_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_EVENT = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")


class Contributions(BaseModel):
    """What a motif declares in its manifest's ``[contributes]``: its page, its API and its events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page: str = Field(
        description=(
            "The HTML page, as a path inside the package folder (where symphony.toml is), e.g. "
            "`web/index.html`. Every asset the page uses lives in the page's folder or below it."
        ),
    )
    exposed: tuple[str, ...] = Field(
        default=(), description="The only methods of the motif its page may call; nothing else is reachable."
    )
    events: tuple[str, ...] = Field(
        default=(), description="The only events the motif may push to its page with `emit`."
    )
    width: int = Field(default=960, ge=200, le=8192, description="Window width in window mode, in pixels.")
    height: int = Field(default=720, ge=150, le=8192, description="Window height in window mode, in pixels.")

    @field_validator("page")
    @classmethod
    def _page_inside_the_package(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value:
            raise ValueError(f"'{value}' must be a relative path inside the package, e.g. 'web/index.html'")
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"'{value}' must be an HTML file")
        return value

    @field_validator("exposed")
    @classmethod
    def _exposed_are_public_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(
                    f"'{name}' is not a public method name (letters, digits, '_'; no leading '_')"
                )
            if name in _RESERVED:
                raise ValueError(f"'{name}' belongs to the motif's lifecycle and cannot be exposed")
        return value

    @field_validator("events")
    @classmethod
    def _events_are_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _EVENT.match(name):
                raise ValueError(f"'{name}' is not an event name (letters, digits, '_', '.', ':', '-')")
        return value

    @classmethod
    def from_manifest(
        cls, manifest: Mapping[str, Any], *, extension: str | None = None, file: str | None = None
    ) -> Contributions:
        """Deprecated: use `read_contributions`."""
        warnings.warn(
            "Contributions.from_manifest is deprecated: use symphony_motifs.read_contributions",
            DeprecationWarning,
            stacklevel=2,
        )
        return read_contributions(manifest, extension=extension, file=file)


def read_contributions(
    manifest: Mapping[str, Any], *, extension: str | None = None, file: str | None = None
) -> Contributions:
    """Validate the manifest's ``[contributes]`` table; `MotifError` names each bad field (in ``file``,
    the manifest's path, when given)."""
    where = file or "symphony.toml"
    try:
        return Contributions.model_validate(manifest.get("contributes") or {})
    except ValidationError as exc:
        lines = "".join(
            f"\n  - {where}: contributes.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        raise MotifError(
            f"invalid [contributes] table{lines}",
            extension=extension or _text(manifest.get("id")),
            hint='a motif\'s manifest names its page, e.g. `[contributes] page = "web/index.html"`',
        ) from None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


# Names the host calls itself: a page must never reach them.
_RESERVED = frozenset({"activate", "deactivate", "invoke", "emit"})


@dataclass(frozen=True)
class Assets:
    """Where a motif's page and assets are on disk, found from its manifest without importing it."""

    extension: str
    title: str
    contributions: Contributions
    root: Path
    page: Path

    @property
    def spec(self) -> Contributions:
        """Deprecated: use `contributions`."""
        warnings.warn("Assets.spec is deprecated: use Assets.contributions", DeprecationWarning, stacklevel=2)
        return self.contributions

    @classmethod
    def locate(cls, extension: str, title: str, manifest: Mapping[str, Any], manifest_file: str) -> Assets:
        """Find a motif's page next to its manifest file; `MotifError` when it is missing or escapes."""
        contributions = read_contributions(manifest, extension=extension, file=manifest_file)
        package = Path(manifest_file).resolve().parent
        page = (package / contributions.page).resolve()
        if not page.is_relative_to(package):
            raise MotifError(
                f"the page '{contributions.page}' resolves outside the package folder {package}",
                extension=extension,
                hint="keep the page and its assets inside the package (no symbolic links out of it)",
            )
        if not page.is_file():
            raise MotifError(
                f"the page '{contributions.page}' does not exist in {package}",
                extension=extension,
                hint="ship the page in the distribution (check that the wheel includes the web folder)",
            )
        return cls(extension, title, contributions, page.parent, page)

    def resolve(self, relative: str) -> Path | None:
        """The file an asset path names, or None when it is missing or lies outside the page's folder."""
        parts = PurePosixPath(relative).parts
        if not parts or any(part in ("..", "") or part.startswith(".") for part in parts):
            return None  # hidden files (.env, .git) are never served
        path = (self.root / Path(*parts)).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path
