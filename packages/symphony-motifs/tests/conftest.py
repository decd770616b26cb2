"""Real installs, a real host and a real browser for the motif tests.

- ``site``: distributions written into a folder in the layout an installer leaves (``*.dist-info`` with
  ``METADATA``, ``RECORD`` and ``entry_points.txt``, the package beside it with its ``symphony.toml`` and
  web assets), put first on ``sys.path`` so that a real ``Host`` discovers, imports and runs them.
- ``board`` and ``tiles``: two motifs installed that way. ``acme.board`` exposes a few methods and pushes
  an event; ``acme.tiles`` has a config model with every kind of field and asks for permissions.
- ``browser``: Debian's Chromium driven by Playwright. A machine without ``/usr/bin/chromium`` fails these
  tests (CI installs it with apt-get); they are never skipped.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from symphony_core import Host

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


class Site:
    """A folder on ``sys.path`` holding installed distributions, as ``pip install`` lays them out."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self,
        distribution: str,
        *,
        entry_points: Mapping[str, str],
        files: Mapping[str, str],
        version: str = "1.0.0",
        group: str = "symphony.motifs",
    ) -> None:
        """Install ``distribution`` declaring ``entry_points`` in ``group``."""
        info = f"{distribution.replace('-', '_')}-{version}.dist-info"
        points = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        content = {
            **{path: textwrap.dedent(text).lstrip() for path, text in files.items()},
            f"{info}/METADATA": (
                f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n"
                "Requires-Python: >=3.10\nRequires-Dist: symphony-motifs>=0.1,<0.2\n\n"
            ),
            f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            f"{info}/INSTALLER": "test\n",
            f"{info}/entry_points.txt": f"[{group}]\n{points}",
        }
        record = []
        for relative, text in content.items():
            target = self.root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{relative},sha256={digest},{len(text.encode())}")
        record.append(f"{info}/RECORD,,")
        (self.root / info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")
        importlib.invalidate_caches()

    def remove(self, distribution: str, version: str = "1.0.0") -> None:
        """Uninstall a distribution's metadata (its files stay; nothing finds them any more)."""
        info = self.root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        for file in info.iterdir():
            file.unlink()
        info.rmdir()
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """An installation folder first on ``sys.path`` for this test; its modules are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    before = set(sys.modules)
    yield Site(root)
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        if module is not None and str(root) in str(getattr(module, "__file__", "") or ""):
            del sys.modules[name]


BOARD_MANIFEST = """
id = "acme.board"
kind = "motif"
name = "Board"
summary = "A board that greets, adds and ticks."
targets = "symphony-motifs>=0.1,<0.2"

[contributes]
page = "web/index.html"
exposed = ["greet", "add", "tick", "later", "boom", "total"]
events = ["ticked"]
width = 640
height = 480
"""

BOARD_CODE = """
import asyncio

from pydantic import BaseModel
from symphony_motifs import Motif


class Total(BaseModel):
    count: int
    items: list[float]


class Board(Motif):
    def greet(self, name: str) -> str:
        return f"Hello, {name}!"

    def add(self, a: int, b: int = 1) -> int:
        return a + b

    def total(self, items: list[float]) -> Total:
        return Total(count=len(items), items=items)

    def tick(self, count: int) -> int:
        for n in range(count):
            self.emit("ticked", {"n": n})
        return count

    async def later(self, value: int) -> dict:
        await asyncio.sleep(0)
        return {"value": value}

    def boom(self) -> None:
        raise RuntimeError("kaboom")

    def sneak(self) -> bool:
        # past emit()'s check, as a motif that does not play by the rules could
        return self.context.publish("undeclared", {"x": 1})

    def secret(self) -> str:
        return "never reachable from the page"
"""

BOARD_PAGE = """
<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>Board</title>
  <link rel="stylesheet" href="style.css">
</head>
<body>
  <h1 id="title">Board</h1>
  <p id="greeting">…</p>
  <button id="tick" type="button">Tick</button>
  <ol id="events"></ol>
  <script src="app.js"></script>
</body>
</html>
"""

BOARD_SCRIPT = """
symphony.on("ticked", function (data) {
  var item = document.createElement("li");
  item.textContent = "tick " + data.n;
  document.getElementById("events").append(item);
});
document.getElementById("tick").addEventListener("click", function () {
  symphony.call("tick", { count: 3 });
});
symphony.connected().then(function () {
  return symphony.call("greet", { name: "page" });
}).then(function (text) {
  document.getElementById("greeting").textContent = text;
  document.body.dataset.ready = "1";
});
"""

BOARD_STYLE = """
body { font: 16px sans-serif; margin: 24px; background: #f4f6fb; }
h1 { color: #3856d6; }
#events li { color: #1a7f4b; }
"""


@pytest.fixture
def board(site: Site) -> str:
    """Install the ``acme.board`` motif; returns its id."""
    site.install(
        "acme-board",
        entry_points={"acme.board": "acme_board:Board"},
        files={
            "acme_board/__init__.py": BOARD_CODE,
            "acme_board/symphony.toml": BOARD_MANIFEST,
            "acme_board/web/index.html": BOARD_PAGE,
            "acme_board/web/app.js": BOARD_SCRIPT,
            "acme_board/web/style.css": BOARD_STYLE,
            "acme_board/web/.env": "SECRET=1\n",
            "acme_board/private.txt": "outside the page's folder\n",
        },
    )
    return "acme.board"


TILES_MANIFEST = """
id = "acme.tiles"
kind = "motif"
name = "Tiles"
summary = "Tiles of a remote feed, cached on disk."
targets = "symphony-motifs>=0.1,<0.2"
config = "acme_tiles:TilesConfig"

[[permissions]]
type = "net.connect"
hosts = ["tiles.example.com:443"]
reason = "Fetch the tiles it shows"

[[permissions]]
type = "fs.read"
paths = ["{data}/*.json"]
reason = "Read the tiles it cached"

[contributes]
page = "web/index.html"
exposed = ["count"]
"""

TILES_CODE = """
from typing import Literal

from pydantic import Field, SecretStr
from symphony_motifs import Config, Motif


class Feed(Config):
    host: str = Field(default="tiles.example.com", description="Where the tiles come from.")
    timeout: float = Field(default=5.0, gt=0, le=60, description="Seconds to wait for the feed.")


class TilesConfig(Config):
    title: str = Field(default="Tiles", min_length=1, max_length=40)
    columns: int = Field(default=3, ge=1, le=12, description="Tiles per row.")
    theme: Literal["light", "dark"] = "light"
    animate: bool = True
    tags: list[str] = []
    token: SecretStr | None = None
    feed: Feed = Feed()


class Tiles(Motif):
    def count(self) -> int:
        return self.context.config.columns
"""


def install_tiles(site: Site, version: str = "1.0.0", extra_permissions: str = "") -> str:
    """Install ``acme.tiles`` at ``version``, asking for ``extra_permissions`` (TOML) beyond the two."""
    site.install(
        "acme-tiles",
        version=version,
        entry_points={"acme.tiles": "acme_tiles:Tiles"},
        files={
            "acme_tiles/__init__.py": TILES_CODE,
            "acme_tiles/symphony.toml": TILES_MANIFEST.replace(
                "[contributes]", extra_permissions + "[contributes]"
            ),
            "acme_tiles/web/index.html": "<!doctype html><html><head><title>Tiles</title></head><body></body></html>",
        },
    )
    return "acme.tiles"


@pytest.fixture
def tiles(site: Site) -> str:
    """Install the ``acme.tiles`` motif (a config model and two permissions); returns its id."""
    return install_tiles(site)


@pytest.fixture
def upgrade_tiles(site: Site) -> Callable[[str, str], str]:
    """Replace the installed ``acme.tiles`` by another version asking for more (``(version, toml)``)."""

    def upgrade(version: str, extra_permissions: str) -> str:
        site.remove("acme-tiles")
        return install_tiles(site, version, extra_permissions)

    return upgrade


@pytest.fixture
def host(tmp_path: Path, site: Site) -> Iterator[Host]:
    """A host with its own home, discovering what is installed (``site`` included), that runs the motifs
    in this process under the guard (test_served_mode.py runs them isolated too)."""
    with Host(tmp_path / "home", isolation="guard") as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright; fails (never skips) when it is not installed."""
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page; console errors are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    opened = context.new_page()
    opened.errors = []
    opened.on("console", lambda message: message.type == "error" and opened.errors.append(message.text))
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
