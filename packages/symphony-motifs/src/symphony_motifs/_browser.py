"""Browser tests for motifs: a pytest plugin that serves a motif and opens it in real Chromium.

Loaded by pytest through this distribution's ``pytest11`` entry point, beside the core's plugin (whose
``symphony_host`` it uses). Playwright drives the Chromium installed on the machine; no browser is
ever downloaded. Where Playwright or Chromium is missing, the tests asking for these fixtures are
skipped, saying which is missing and how to get it.

- ``open_motif``: a function; ``open_motif("acme.board", **config)`` starts the installed motif in the
  test's host, serves it, opens its page and returns a `MotifPage` once the page is connected.
- ``motif_page``: the same for the motif a test names with ``@pytest.mark.motif("acme.board")``.
- ``motif_browser``: the Chromium browser, one per test session.

Chromium is ``$SYMPHONY_CHROMIUM``, else the first of ``/usr/bin/chromium``, ``/usr/bin/chromium-browser``
and ``/usr/bin/google-chrome`` that exists.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from symphony_core import Harness

CHROMIUM_ENV = "SYMPHONY_CHROMIUM"
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run")
MARKER = "motif"
TIMEOUT = 20.0
_LISTEN = """(names) => {
  window.__motifEvents = window.__motifEvents || [];
  for (const name of names) symphony.on(name, (data) => window.__motifEvents.push([name, data]));
}"""


class MotifPage:
    """A motif's page open in Chromium, connected to the motif through the host.

    ``page`` is Playwright's ``Page`` (click, fill, locators, screenshots); `call` calls an exposed
    method as the page's own script does, and `events` lists what the motif pushed to the page since it
    opened (each declared event, in order).
    """

    def __init__(self, page: Any, url: str, extension: str) -> None:
        self.page = page
        self.url = url
        self.extension = extension

    def call(self, method: str, /, **arguments: Any) -> Any:
        """Call ``method`` through the page's bridge (``symphony.call``) and return its result.

        A refusal or an error the motif raised fails with Playwright's error, which carries the
        bridge's message (``refused``, ``invalid-arguments``, ...).
        """
        return self.page.evaluate("([method, args]) => symphony.call(method, args)", [method, arguments])

    @property
    def events(self) -> list[tuple[str, Any]]:
        """Each event the page received so far, as ``(name, data)``."""
        return [(name, data) for name, data in self.page.evaluate("() => window.__motifEvents")]

    def wait_for_event(self, name: str, *, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
        """Wait until the page has received ``count`` events named ``name``; return their data."""
        deadline = time.monotonic() + timeout
        while True:
            found = [data for event, data in self.events if event == name]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the page received {len(found)} '{name}' event(s) in {timeout:g} s, not {count}: "
                    f"{json.dumps(self.events)[:500]}"
                )
            self.page.wait_for_timeout(50)


def chromium() -> Path | None:
    """The Chromium the plugin drives, or None when there is none."""
    named = os.environ.get(CHROMIUM_ENV)
    candidates = (named,) if named else CHROMIUM_PATHS
    return next((Path(path) for path in candidates if path and os.access(path, os.X_OK)), None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(extension): the installed motif the motif_page fixture opens in Chromium"
    )


@pytest.fixture(scope="session")
def motif_browser() -> Iterator[Any]:
    """Chromium, driven by Playwright, for the whole test session."""
    try:
        from playwright.sync_api import sync_playwright  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pytest.skip("browser tests need Playwright: pip install playwright (no browser download is needed)")
    executable = chromium()
    if executable is None:
        pytest.skip(
            f"browser tests need Chromium, found at none of {', '.join(CHROMIUM_PATHS)}: install it "
            f"(apt-get install chromium) or name it in ${CHROMIUM_ENV}"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_FLAGS))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def open_motif(symphony_host: Harness, motif_browser: Any) -> Iterator[Callable[..., MotifPage]]:
    """Open an installed motif in Chromium: ``open_motif(extension, **config)`` returns a `MotifPage`.

    The motif is started in the test's host (after consenting to what its manifest requests, with
    ``config`` as host overrides), served on 127.0.0.1, and its page opened in a fresh browser context;
    all of it is closed after the test.
    """
    from .testing import served_page

    with ExitStack() as stack:

        def open_page(extension: str, **config: Any) -> MotifPage:
            symphony_host.start(extension, **config)
            served = stack.enter_context(served_page(symphony_host, extension))
            context = motif_browser.new_context()
            stack.callback(context.close)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT * 1000)
            page.goto(served.url)
            page.evaluate("() => symphony.connected()")
            declared = symphony_host.inspect(extension).manifest or {}
            page.evaluate(_LISTEN, list(declared.get("contributes", {}).get("events", [])))
            return MotifPage(page, served.url, extension)

        yield open_page


@pytest.fixture
def motif_page(request: pytest.FixtureRequest, open_motif: Callable[..., MotifPage]) -> MotifPage:
    """The motif named by the test's ``@pytest.mark.motif("publisher.name")``, open in Chromium."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None or not marker.args:
        raise pytest.UsageError(
            'the motif_page fixture needs the motif to open: mark the test @pytest.mark.motif("publisher.name")'
        )
    return open_motif(marker.args[0], **marker.kwargs)
