"""End to end in a real browser: Debian's Chromium, driven by Playwright, against a real host.

Screenshots are saved under each test's ``tmp_path`` (``--basetemp`` keeps them in a known place).
Predicates given to ``wait_for_function`` are functions, never expression strings: Playwright compiles
a string with ``eval`` inside the page while polling, which the page's policy refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from symphony_core import Host
from symphony_motifs import serve

pytestmark = pytest.mark.slow

SNEAKY_PAGE = """
<!doctype html>
<html>
<head><title>Sneaky</title></head>
<body>
  <p id="here">here</p>
  <img src="https://tiles.example.com/pixel.png" alt="">
  <script>window.inlineRan = true;</script>
  <script src="https://cdn.example.com/lib.js"></script>
  <script src="app.js"></script>
</body>
</html>
"""

SNEAKY_SCRIPT = """
window.attempts = {};
function attempt(name, promise) {
  window.attempts[name] = "pending";
  promise.then(
    function () { window.attempts[name] = "reached"; },
    function () { window.attempts[name] = "blocked"; }
  );
}
attempt("remote", fetch("https://tiles.example.com/data.json"));
attempt("other", fetch(document.body.dataset.other || "http://127.0.0.1:9/", {
  method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"
}));
"""


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)


def card(page: Any, extension: str) -> Any:
    return page.locator(f"article.card[data-extension='{extension}']")


def test_a_motif_renders_calls_python_and_receives_events(
    host: Host, board: str, page: Any, tmp_path: Path
) -> None:
    with serve(host, board) as server:
        open_page(page, server.url)
        assert page.text_content("#greeting") == "Hello, page!"  # the page called greet() on load
        page.click("#tick")  # tick() pushes three events back to the page
        page.wait_for_function("() => document.querySelectorAll('#events li').length === 3", timeout=10_000)
        assert page.locator("#events li").all_text_contents() == ["tick 0", "tick 1", "tick 2"]
        assert page.evaluate("symphony.call('add', {a: 2, b: 3})") == 5
        refused = page.evaluate("symphony.call('secret', {}).then(() => 'ran', (e) => [e.status, e.code])")
        assert refused == [403, "refused"]
        invalid = page.evaluate(
            "symphony.call('add', {a: 'x'}).then(() => 'ran', (e) => [e.code, e.problems[0].argument])"
        )
        assert invalid == ["invalid-arguments", "a"]
        # The motif's stylesheet applied: the page is styled by its own assets.
        assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(56, 86, 214)"
        page.screenshot(path=str(tmp_path / "board.png"))
    assert not [error for error in page.errors if "Failed to load resource" not in error], page.errors


def test_the_policy_blocks_inline_scripts_remote_resources_and_other_servers(
    host: Host, board: str, site: Any, page: Any
) -> None:
    site.install(
        "acme-sneaky",
        entry_points={"acme.sneaky": "acme_sneaky:Sneaky"},
        files={
            "acme_sneaky/__init__.py": "from symphony_motifs import Motif\n\nclass Sneaky(Motif):\n    pass\n",
            "acme_sneaky/symphony.toml": (
                'id = "acme.sneaky"\nkind = "motif"\nname = "Sneaky"\nsummary = "Tries to escape its page."\n'
                'targets = "symphony-motifs>=0.1,<0.2"\n[contributes]\npage = "web/index.html"\n'
            ),
            "acme_sneaky/web/index.html": SNEAKY_PAGE,
            "acme_sneaky/web/app.js": SNEAKY_SCRIPT,
        },
    )
    host.discover(rescan=True)
    answered: list[str] = []
    failed: dict[str, str | None] = {}
    page.on("response", lambda response: answered.append(response.url))
    page.on("requestfailed", lambda request: failed.setdefault(request.url, request.failure))
    with serve(host, board) as other, serve(host, "acme.sneaky") as server:
        page.add_init_script(
            f"document.addEventListener('DOMContentLoaded', () => {{ document.body.dataset.other = "
            f"'{other.url}_symphony/call/greet'; }});"
        )
        page.goto(server.url)
        page.wait_for_function(
            "() => window.attempts && Object.values(window.attempts).every((state) => state !== 'pending')",
            timeout=10_000,
        )
        assert page.text_content("#here") == "here"
        assert page.evaluate("window.inlineRan === undefined")
        assert page.evaluate("window.attempts") == {"remote": "blocked", "other": "blocked"}
        origin = server.origin
    assert answered, "the page itself was served"
    assert all(url.startswith(origin) for url in answered), answered
    remote = {url: reason for url, reason in failed.items() if not url.startswith(origin)}
    assert set(remote) >= {"https://tiles.example.com/pixel.png", "https://cdn.example.com/lib.js"}, failed
    assert set(remote.values()) == {"csp"}, remote
    assert any("Content Security Policy" in error for error in page.errors), page.errors


def test_the_consent_dialog_grants_only_what_is_ticked_and_flags_the_network(
    host: Host, board: str, tiles: str, page: Any, tmp_path: Path
) -> None:
    with serve(host) as server:
        open_page(page, server.url)
        tiles_card = card(page, tiles)
        assert (
            "Needs your consent: fs.read {data}/*.json; net.connect tiles.example.com:443"
            in tiles_card.inner_text()
        )
        assert tiles_card.locator(".badge").inner_text() == "needs your consent"
        assert card(page, board).locator(".perms").inner_text() == "Requests no permissions."
        assert card(page, "symphony.marketplace").locator("[data-action='enabled']").count() == 0
        assert tiles_card.locator("[data-action='grant']").count() == 0  # no one-click grant of everything

        # Keyboard only: the button opens the dialog, whose first box has the focus.
        tiles_card.locator("[data-action='review']").focus()
        page.keyboard.press("Enter")
        dialog = page.locator("dialog[open]")
        dialog.wait_for(timeout=10_000)
        own = dialog.locator("li[data-item='fs.read {data}/*.json']")
        network = dialog.locator("li[data-item='net.connect tiles.example.com:443']")
        assert own.locator("input").is_checked()
        assert network.get_attribute("data-flagged") == "true"
        assert not network.locator("input").is_checked()  # flagged: never ticked for the person
        assert "Fetch the tiles it shows" in network.inner_text()
        assert "any address" in network.inner_text()  # its reach, as the core computes it
        label = network.locator("label")
        assert page.locator(f"#{label.get_attribute('for')}").get_attribute("data-permission") == (
            "net.connect tiles.example.com:443"
        )
        page.screenshot(path=str(tmp_path / "consent-dialog.png"), full_page=True)

        # Refuse the network: only the own folder is granted, and the dialog says what is left.
        dialog.locator("[data-action='confirm']").click()
        page.wait_for_selector("dialog[open] [data-outcome='left']", timeout=10_000)
        assert dialog.locator("[data-outcome='granted']").inner_text() == "Granted: fs.read {data}/*.json."
        assert (
            "Not granted: net.connect tiles.example.com:443"
            in dialog.locator("[data-outcome='left']").inner_text()
        )
        consent = host.consent(tiles)
        assert consent.granted is not None
        assert consent.granted.granted_by == "marketplace"
        assert consent.as_json()["needs_consent"] == ["net.connect tiles.example.com:443"]
        page.keyboard.press("Escape")
        page.wait_for_function("() => !document.querySelector('dialog').open", timeout=5_000)

        # Then grant it, ticking it by hand.
        page.wait_for_selector(
            f"article.card[data-extension='{tiles}'] [data-action='review']", timeout=10_000
        )
        card(page, tiles).locator("[data-action='review']").click()
        dialog.wait_for(timeout=10_000)
        assert dialog.locator("li[data-item='fs.read {data}/*.json'] input").count() == 0  # granted already
        dialog.locator("li[data-item='net.connect tiles.example.com:443'] label").click()
        dialog.locator("[data-action='confirm']").click()
        page.wait_for_selector("dialog[open] [data-outcome='complete']", timeout=10_000)
        page.screenshot(path=str(tmp_path / "consent-granted.png"))
        dialog.locator("[data-action='close']").click()
        page.wait_for_selector(f"article.card[data-extension='{tiles}'] .consent.ok", timeout=10_000)
        consent_text = card(page, tiles).locator(".consent.ok").inner_text()
        assert consent_text.startswith(
            "All requested permissions are granted to v1.0.0. Granted by marketplace, "
        )
        assert host.consent(tiles).satisfied
        card(page, tiles).locator("[data-action='revoke']").click()
        page.wait_for_selector(
            f"article.card[data-extension='{tiles}'] [data-consent='needed']", timeout=10_000
        )
        assert not host.consent(tiles).satisfied
        assert page.errors == []


def test_the_marketplace_shows_what_an_upgrade_asks_for_beyond_the_grant(
    host: Host, tiles: str, upgrade_tiles: Callable[[str, str], str], page: Any, tmp_path: Path
) -> None:
    host.grant(tiles)
    upgrade_tiles(
        "1.1.0", '[[permissions]]\ntype = "env"\nnames = ["TILES_TOKEN"]\nreason = "Sign in to the feed"\n\n'
    )
    with serve(host) as server:
        open_page(page, server.url)
        page.click("#rescan")
        page.wait_for_function(
            f"() => document.querySelector(\"article.card[data-extension='{tiles}'] .version\")"
            ".textContent === 'v1.1.0'",
            timeout=10_000,
        )
        tiles_card = card(page, tiles)
        consent = tiles_card.locator("[data-consent='needed']").inner_text()
        assert consent == "Version 1.1.0 asks for more than v1.0.0 was granted: env TILES_TOKEN"
        assert tiles_card.locator("li.new").all_inner_texts() == ["env TILES_TOKEN — Sign in to the feed"]
        page.screenshot(path=str(tmp_path / "marketplace-upgrade.png"), full_page=True)
        tiles_card.locator("[data-action='review']").click()
        dialog = page.locator("dialog[open]")
        new = dialog.locator("li[data-item='env TILES_TOKEN']")
        assert "new since 1.0.0" in new.inner_text()
        assert not new.locator("input").is_checked()
        new.locator("input").check()
        dialog.locator("[data-action='confirm']").click()
        page.wait_for_selector("dialog[open] [data-outcome='complete']", timeout=10_000)
        dialog.locator("[data-action='close']").click()
        page.wait_for_selector(f"article.card[data-extension='{tiles}'] .consent.ok", timeout=10_000)
    consent_now = host.consent(tiles)
    assert consent_now.satisfied
    assert consent_now.version == "1.1.0"


def test_the_marketplace_edits_a_config_invalid_then_valid(
    host: Host, tiles: str, page: Any, tmp_path: Path
) -> None:
    with serve(host) as server:
        open_page(page, server.url)
        card(page, tiles).locator("[data-action='configure']").click()
        form = page.locator(f"form[data-config='{tiles}']")
        form.wait_for(timeout=10_000)
        columns = form.locator(".field[data-key='columns']")
        assert columns.locator("input").input_value() == "3"
        assert "from default" in columns.locator(".meta").inner_text()
        assert form.locator(".field[data-key='token'] input").get_attribute("type") == "password"
        assert form.locator(".field[data-key='theme'] select option").all_inner_texts() == ["light", "dark"]
        assert form.locator("fieldset[data-key='feed'] .field[data-key='feed.timeout']").count() == 1

        columns.locator("input").fill("40")
        form.locator("[data-action='save']").click()
        error = form.locator(".field[data-key='columns'] .field-error")
        page.wait_for_function(
            f"() => document.querySelector(\"form[data-config='{tiles}'] .field[data-key='columns'] .field-error\")"
            ".textContent !== ''",
            timeout=10_000,
        )
        assert "less than or equal to 12" in error.inner_text()
        assert form.locator(".field[data-key='columns'] input").input_value() == "40"  # kept for fixing
        page.screenshot(path=str(tmp_path / "config-invalid.png"), full_page=True)
        resolved = host.config(tiles)
        assert resolved is not None
        assert resolved.config.columns == 3  # nothing stored

        form.locator(".field[data-key='columns'] input").fill("5")
        form.locator(".field[data-key='token'] input").fill("s3cret")
        form.locator(".field[data-key='theme'] select").select_option(label="dark")
        form.locator("[data-action='save']").click()
        page.wait_for_selector(f"form[data-config='{tiles}'] .form-result.ok", timeout=10_000)
        result = page.locator(f"form[data-config='{tiles}'] .form-result").inner_text()
        assert result == "Saved columns, theme, token."
        assert (
            page.locator(f"form[data-config='{tiles}'] .field[data-key='columns'] .field-error").inner_text()
            == ""
        )
        assert (
            "from override columns"
            in page.locator(f"form[data-config='{tiles}'] .field[data-key='columns'] .meta").inner_text()
        )
        assert "s3cret" not in page.content()
        page.screenshot(path=str(tmp_path / "config-saved.png"), full_page=True)
    resolved = host.config(tiles)
    assert resolved is not None
    assert (resolved.config.columns, resolved.config.theme) == (5, "dark")
    assert resolved.config.token is not None
    assert resolved.config.token.get_secret_value() == "s3cret"


def test_the_marketplace_disables_an_extension_and_follows_host_events(
    host: Host, board: str, tiles: str, page: Any
) -> None:
    with serve(host) as server:
        open_page(page, server.url)
        card(page, board).locator("[data-action='enabled']").uncheck()
        page.wait_for_selector(
            f"article.card[data-extension='{board}'][data-state='disabled']", timeout=10_000
        )
        assert not host.inspect(board).enabled
        host.grant(tiles)  # done elsewhere: the page hears of it through its event stream
        page.wait_for_selector(f"article.card[data-extension='{tiles}'] .consent.ok", timeout=10_000)
        page.click("#kinds button:has-text('motifs')")
        assert page.locator("section.kind").evaluate_all(
            "nodes => nodes.map((node) => node.dataset.kind)"
        ) == ["motif"]
