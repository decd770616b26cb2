"""Test a motif in a real host: the pytest plugin's `Harness`, plus helpers for motifs.

The fixtures come with Symphony's pytest plugin, which pytest loads by itself: ``symphony_host`` (a
`Harness` in a temporary ``SYMPHONY_HOME``) and ``symphony_home``. Install the project under test first
(``pip install -e .``) so the host finds it through its entry point::

    from symphony_motifs.testing import Harness, invoke, served_page

    def test_the_page_can_greet(symphony_host: Harness) -> None:
        symphony_host.start("acme.greeter")
        assert invoke(symphony_host, "acme.greeter", "greet", name="Ada") == "Hello, Ada!"
        with served_page(symphony_host, "acme.greeter") as page:
            assert page.call("greet", name="Ada") == "Hello, Ada!"

In a real browser, the ``open_motif`` fixture (or ``motif_page``, with ``@pytest.mark.motif(id)``) opens
the served page in Chromium through Playwright and gives a `MotifPage`::

    def test_the_button_greets(open_motif) -> None:
        motif = open_motif("acme.greeter")
        motif.page.click("#greet")
        assert motif.wait_for_event("greeted") == [{"count": 1}]
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from symphony_core import Harness

from ._browser import MotifPage
from ._hosting import serve
from ._server import MotifServer

__all__ = ["Harness", "MotifPage", "ServedPage", "invoke", "served_page"]

TIMEOUT = 30.0


def invoke(harness: Harness, extension: str, method: str, /, **arguments: Any) -> Any:
    """Call a method of an active motif the way its page does, through the host, and return its JSON result.

    As for the page, a method the manifest does not expose is refused (`CallRefused`) and the arguments
    are checked against the method's annotations (`InvalidArguments`) before any of its code runs.
    """
    return harness.call(extension, "invoke", method, arguments)


class ServedPage:
    """A motif's page served on 127.0.0.1 as a host serves it to a browser.

    `url` (session token included) can be opened in a real browser, e.g. with Playwright; `html`,
    `asset` and `call` do what a browser's requests do, without one.
    """

    def __init__(self, server: MotifServer) -> None:
        self.server = server

    @property
    def url(self) -> str:
        """The page's URL, with the session token."""
        return self.server.url

    def html(self) -> str:
        """The page as served: the bridge script added, under the Content-Security-Policy."""
        return self.asset("").decode("utf-8")

    def asset(self, path: str) -> bytes:
        """One file of the page's folder as served (``""`` for the page); fails the test unless it is served."""
        status, _, body = self._request("GET", path)
        if status != 200:
            raise AssertionError(f"{path or 'the page'} was not served: HTTP {status} {body[:200]!r}")
        return body

    def headers(self, path: str = "") -> dict[str, str]:
        """The response headers of a page file (names lowercased), e.g. ``content-security-policy``."""
        return self._request("GET", path)[1]

    def post(self, method: str, arguments: dict[str, Any]) -> tuple[int, Any]:
        """Call ``method`` as the bridge script does; return the HTTP status and the decoded JSON answer."""
        status, _, body = self._request("POST", f"_symphony/call/{method}", {"args": arguments})
        return status, json.loads(body) if body else None

    def call(self, method: str, /, **arguments: Any) -> Any:
        """Call ``method`` as the page does and return its result; fails the test on a refusal or an error."""
        status, answer = self.post(method, arguments)
        if status != 200:
            raise AssertionError(f"the page's call to '{method}' answered HTTP {status}: {answer}")
        return answer["result"]

    def _request(
        self, verb: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=verb)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, _lower(response.headers.items()), response.read()
        except urllib.error.HTTPError as refused:
            with refused:
                return refused.code, _lower(refused.headers.items()), refused.read()


@contextmanager
def served_page(harness: Harness, extension: str, *, grant: bool = True) -> Iterator[ServedPage]:
    """Serve an installed motif through the harness's host, as for a browser; stop serving after the block.

    The motif is started if it is not running (with ``grant``, after consenting to what its manifest
    requests) and stopped again at the end, unless it was running before.
    """
    info = harness.inspect(extension)
    if grant and info.state.value != "active" and info.manifest and info.manifest.get("permissions"):
        harness.grant(extension)
    with serve(harness.host, extension) as server:
        yield ServedPage(server)


def _lower(items: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in items}
