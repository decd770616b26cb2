"""The motifs' testing helpers with the pytest plugin's host: calls as the page makes them, and the
page served as a browser gets it, for a motif installed in this test's site."""

import pytest

from symphony_motifs import CONTENT_SECURITY_POLICY, CallRefused, InvalidArguments
from symphony_motifs.testing import Harness, invoke, served_page


def test_invoke_calls_exposed_methods_and_refuses_the_rest(symphony_host: Harness, board: str) -> None:
    symphony_host.start(board)

    assert invoke(symphony_host, board, "add", a=2, b=3) == 5
    with pytest.raises(CallRefused):
        invoke(symphony_host, board, "secret")
    with pytest.raises(InvalidArguments):
        invoke(symphony_host, board, "add", a="two")


def test_the_served_page_is_what_a_browser_gets_and_stops_with_the_block(
    symphony_host: Harness, board: str
) -> None:
    with served_page(symphony_host, board) as page:
        html = page.html()
        headers = page.headers()
        result = page.call("greet", name="Ada")
        refused = page.post("secret", {})
        with pytest.raises(AssertionError, match="'add' answered HTTP 422"):
            page.call("add", a="two")
        with pytest.raises(AssertionError, match=r"missing\.css was not served: HTTP 404"):
            page.asset("missing.css")
        state_while_served = symphony_host.inspect(board).state.value

    assert '<h1 id="title">Board</h1>' in html
    assert "/_symphony/bridge.js" in html
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert result == "Hello, Ada!"
    assert refused[0] == 403
    assert "'secret' is not exposed to the page" in refused[1]["error"]["message"]
    assert state_while_served == "active"
    assert symphony_host.inspect(board).state.value != "active"
