"""The marketplace view end to end: a real index, a signed catalog, a real host and Debian's Chromium.

Wheels are published to a pypiserver on 127.0.0.1; ``symphony catalog build`` makes and signs the catalog
with keys it creates; ``http.server`` serves it from its folder; a host that pins its root shows
``symphony.marketplace`` to Chromium driven by Playwright. Installing, upgrading and uninstalling go
through the host's managed environments (uv, from the local index only).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tuf", reason="the marketplace needs the symphony-sdk-core[marketplace] extra")

from symphony_core import Host
from symphony_motifs import serve

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
TILES = (
    '[[permissions]]\ntype = "fs.read"\npaths = ["{data}/*.json"]\nreason = "Read the tiles it cached."\n\n'
    '[[permissions]]\ntype = "net.connect"\nhosts = ["tiles.example.com:443"]\nreason = "Fetch the **tiles** it shows."\n'
)
TOKEN = '\n[[permissions]]\ntype = "env"\nnames = ["TILES_TOKEN"]\nreason = "Sign in to the feed."\n'
README = (
    '# Weather, in HTML\n\n<script>window.pwned = 1</script>\n<img src=x onerror="window.pwned = 2">\n'
    "[click](javascript:window.pwned=3) and [home](https://example.com/home)\n\n\u202eright-to-left\n"
)
MIXED = "P\u0430y\u0440al helper"
LONG = "N" * 300
WORKSPACE = Path(__file__).resolve().parents[1]


def wheel(
    folder: Path,
    name: str,
    version: str,
    ext_id: str,
    *,
    extra: str = "",
    display: str = "",
    readme: str = "A test extension.\n",
) -> None:
    module = name.replace("-", "_")
    info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": "from symphony_motifs import Motif\n\n\nclass Ext(Motif):\n    pass\n",
        f"{module}/symphony.toml": (
            f'id = "{ext_id}"\nkind = "motif"\nname = {json.dumps(display or "Tiles")}\n'
            f'summary = "Exists to test the view with {ext_id}."\ntargets = "symphony-motifs>=0.1,<0.2"\n{extra}'
            '\n[contributes]\npage = "web/index.html"\n'
        ),
        f"{module}/web/index.html": "<!doctype html><title>x</title>",
        f"{info}/entry_points.txt": f"[symphony.motifs]\n{ext_id} = {module}:Ext\n",
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {name}\n"
            "Project-URL: Source, https://example.com/source\nProject-URL: Odd, javascript:alert(1)\n"
            "Requires-Dist: symphony-motifs>=0.1,<0.2\n"
            f"Description-Content-Type: text/markdown\n\n{readme}"
        ),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    rows = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join([*rows, f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(folder / f"{module}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


def publish_kit(storage: Path, scratch: Path) -> None:
    """The core and the motifs kit as wheels on the index, and pywebview's sdist-only dependency built
    (the managed environment installs wheels only); the rest comes from PyPI through pypiserver."""
    from symphony_core._runtime._install import DEFAULT_INDEX, _index_files, uv_binary

    uv = uv_binary()
    for package in ("symphony-core", "symphony-motifs"):
        subprocess.run(
            [
                uv,
                "build",
                "--wheel",
                "--quiet",
                "--out-dir",
                str(storage),
                str(WORKSPACE / "packages" / package),
            ],
            check=True,
            timeout=600,
        )
    (sdist,) = [
        file for file in _index_files(DEFAULT_INDEX, "proxy-tools") if file.filename.endswith(".tar.gz")
    ]
    with urllib.request.urlopen(sdist.url, timeout=60) as response:
        (scratch / sdist.filename).write_bytes(response.read())
    subprocess.run(
        [uv, "build", "--wheel", "--quiet", "--out-dir", str(storage), str(scratch / sdist.filename)],
        check=True,
        timeout=600,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            assert time.monotonic() < deadline, f"{url} did not answer within 30 s"
            time.sleep(0.2)


@contextlib.contextmanager
def served(folder: Path) -> Iterator[str]:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def symphony(home: Path, *args: str) -> dict[str, Any]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("SYMPHONY_", "UV_", "PIP_"))
    }
    command = [sys.executable, "-c", "from symphony_core._cli._commands import main; main()"]
    result = subprocess.run(
        [*command, "--home", str(home), *args, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.fixture
def market(tmp_path: Path) -> Iterator[dict[str, Any]]:
    storage = tmp_path / "index"
    storage.mkdir()
    wheel(storage, "acme-tiles", "1.0.0", "acme.tiles", extra=TILES)
    wheel(storage, "acme-html", "1.0.0", "acme.html", display=MIXED, readme=README)
    wheel(storage, "acme-long", "1.0.0", "acme.long", display=LONG)
    publish_kit(storage, tmp_path)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pypiserver",
            "run",
            "-i",
            "127.0.0.1",
            "-p",
            str(port),
            "--backend",
            "simple-dir",
            storage,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        index = f"http://127.0.0.1:{port}/simple/"
        wait_for(index)
        out, keys = tmp_path / "market" / "out", tmp_path / "market" / "keys"
        build = ["catalog", "build", "--index", index, "--out", str(out), "--keys", str(keys)]
        report = symphony(tmp_path / "market", *build)
        with served(out) as url:
            home = tmp_path / "home"
            home.mkdir()
            shutil.copy2(out / "metadata" / "1.root.json", home / "market-root.json")
            (home / "install.toml").write_text(
                f'index = "{index}"\n\n[marketplace]\nurl = "{url}"\nroot = "market-root.json"\n',
                encoding="utf-8",
            )
            yield {
                "home": home,
                "storage": storage,
                "report": report,
                "rebuild": lambda: symphony(tmp_path / "market", *build),
            }
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def page() -> Iterator[Any]:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        context = browser.new_context(
            viewport={"width": 400, "height": 800}
        )  # the narrowest window it serves
        opened = context.new_page()
        opened.errors = []
        opened.on("pageerror", lambda error: opened.errors.append(str(error)))
        try:
            yield opened
        finally:
            browser.close()


def search(page: Any, text: str) -> None:
    before = page.evaluate("() => document.body.dataset.results || ''")
    page.fill("#search", text)
    page.wait_for_function(
        f"() => (document.body.dataset.results || '') !== {json.dumps(before)}", timeout=10_000
    )


def test_search_install_consent_upgrade_and_uninstall_from_the_view(
    market: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    refused = {item["file"] for item in market["report"]["refused"]}
    assert "acme_long-1.0.0-py3-none-any.whl" in refused  # a 300-character name never reaches the catalog
    with Host(market["home"]) as host, serve(host) as server:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        page.click("#tabs button[data-tab='market']")
        page.wait_for_selector("#results button.result", timeout=20_000)
        listed = page.locator("#results button.result").evaluate_all(
            "nodes => nodes.map((n) => n.dataset.listing)"
        )
        assert {"acme.html", "acme.tiles"} <= set(listed)  # beside the kit's own view, published with it
        assert "acme.long" not in listed
        assert page.evaluate("document.documentElement.scrollWidth") <= 400  # nothing wider than the window

        # Search, then the details pane, by keyboard.
        search(page, "tiles")
        assert page.locator("#results button.result").count() == 1
        page.locator("#results button.result").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#details[data-listing='acme.tiles'] [data-action='install']", timeout=10_000)
        details = page.locator("#details")
        assert "acme-tiles on " in details.inner_text()
        assert details.locator("a", has_text="Source").get_attribute("href") == "https://example.com/source"
        assert details.locator("a", has_text="Odd").count() == 0  # not a web link: shown as text
        assert details.locator("li[data-item='net.connect tiles.example.com:443'] .flag").count() == 1
        assert details.locator(".reason strong", has_text="tiles").count() == 1  # Markdown in a reason

        # Install: the dialog ticks the own folder only; the network is refused.
        details.locator("[data-action='install']").click()
        dialog = page.locator("dialog[open]")
        dialog.wait_for(timeout=10_000)
        assert dialog.locator("li[data-item='fs.read {data}/*.json'] input").is_checked()
        assert not dialog.locator("li[data-item='net.connect tiles.example.com:443'] input").is_checked()
        page.screenshot(path=str(tmp_path / "install-consent.png"), full_page=True)
        dialog.locator("[data-action='confirm']").click()
        page.wait_for_selector(
            "dialog[open] [data-outcome='granted'], dialog[open] .problem", timeout=120_000
        )
        assert dialog.locator(".problem").count() == 0, dialog.locator(".problem").inner_text()
        assert dialog.locator("[data-outcome='granted']").inner_text() == "Granted: fs.read {data}/*.json."
        assert "net.connect tiles.example.com:443" in dialog.locator("[data-outcome='left']").inner_text()
        dialog.locator("[data-action='close']").click()
        assert host.inspect("acme.tiles").environment is not None
        assert host.consent("acme.tiles").as_json()["needs_consent"] == ["net.connect tiles.example.com:443"]

        # Installed, in words: it needs consent; then grant the network from the card.
        page.click("#tabs button[data-tab='installed']")
        tiles = page.locator("article.card[data-extension='acme.tiles']")
        tiles.wait_for(timeout=10_000)
        assert tiles.locator(".badge").inner_text() == "needs your consent"
        tiles.locator("[data-action='review']").click()
        dialog.locator("li[data-item='net.connect tiles.example.com:443'] input").check()
        dialog.locator("[data-action='confirm']").click()
        page.wait_for_selector("dialog[open] [data-outcome='complete']", timeout=10_000)
        dialog.locator("[data-action='close']").click()
        page.wait_for_selector(
            "article.card[data-extension='acme.tiles'] .badge[data-status='ready, not running']",
            timeout=10_000,
        )
        assert host.consent("acme.tiles").satisfied

        # A new release asks for an environment variable: the upgrade shows it as new, unticked.
        wheel(market["storage"], "acme-tiles", "1.1.0", "acme.tiles", extra=TILES + TOKEN)
        market["rebuild"]()
        page.click("#tabs button[data-tab='market']")
        page.click("#refresh-catalog")
        page.wait_for_function(
            "() => document.querySelector('#market-status').textContent.includes('match')", timeout=20_000
        )
        tiles.locator("[data-action='upgrade']").count()
        page.click("#tabs button[data-tab='installed']")
        tiles.locator("[data-action='upgrade']").click()
        dialog.wait_for(timeout=20_000)
        assert dialog.locator("[data-change='added']").all_inner_texts() == ["New: env TILES_TOKEN"]
        token = dialog.locator("li[data-item='env TILES_TOKEN']")
        assert "new since 1.0.0" in token.inner_text()
        assert not token.locator("input").is_checked()
        assert (
            dialog.locator("li[data-item='net.connect tiles.example.com:443'] input").count() == 0
        )  # carries over
        page.screenshot(path=str(tmp_path / "upgrade-consent.png"), full_page=True)
        token.locator("input").check()
        dialog.locator("[data-action='confirm']").click()
        page.wait_for_selector(
            "dialog[open] [data-outcome='complete'], dialog[open] .problem", timeout=120_000
        )
        assert dialog.locator(".problem").count() == 0, dialog.locator(".problem").inner_text()
        dialog.locator("[data-action='close']").click()
        consent = host.consent("acme.tiles")
        assert (consent.version, consent.satisfied) == ("1.1.0", True)

        # Uninstall.
        page.wait_for_selector(
            "article.card[data-extension='acme.tiles'] .version:text('v1.1.0')", timeout=10_000
        )
        tiles.locator("[data-action='uninstall']").click()
        dialog.locator("[data-action='confirm']").click()
        page.wait_for_selector("article.card[data-extension='acme.tiles']", state="detached", timeout=30_000)
        assert [info.id for info in host.discover() if info.id == "acme.tiles"] == []
        assert page.errors == []


def test_a_readme_with_html_and_a_name_with_mixed_scripts_are_shown_safely(
    market: dict[str, Any], page: Any
) -> None:
    with Host(market["home"]) as host, serve(host) as server:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        page.click("#tabs button[data-tab='market']")
        page.wait_for_selector("#results button.result[data-listing='acme.html']", timeout=20_000)
        assert (
            page.locator(
                "#results button.result[data-listing='acme.html'] .badge", has_text="look twice"
            ).count()
            == 1
        )
        page.click("#results button.result[data-listing='acme.html']")
        page.wait_for_selector("#details[data-listing='acme.html'] .readme h1", timeout=10_000)
        readme = page.locator("#details .readme")
        assert "<script>window.pwned = 1</script>" in readme.inner_text()  # shown as text
        assert readme.locator("script, img").count() == 0
        assert readme.locator("a[href^='javascript']").count() == 0
        assert (
            readme.locator("a[href='https://example.com/home']").get_attribute("rel")
            == "noopener noreferrer nofollow"
        )
        assert "\\u202eright-to-left" in readme.inner_text()  # a bidi control is shown, never obeyed
        assert page.locator("#details h2.name").inner_text() == MIXED
        assert "Look twice: name" in page.locator("#details").inner_text()
        page.wait_for_timeout(300)
        assert page.evaluate("window.pwned === undefined")  # no script of the README ran
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        assert page.errors == []
