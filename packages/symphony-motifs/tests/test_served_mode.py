"""Served mode over real HTTP: what a page may reach, and everything a foreign caller is refused."""

from __future__ import annotations

import http.client
import json
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from symphony_core import ExtensionFailed, Host
from symphony_motifs import CONTENT_SECURITY_POLICY, MotifError, MotifServer, serve


@pytest.fixture
def served(host: Host, board: str) -> Iterator[MotifServer]:
    with serve(host, board) as server:
        yield server


def request(
    server: MotifServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request to the server; ``path`` is relative to the token unless it starts with '/'."""
    target = path if path.startswith("/") else f"/{token or server.token}/{path}"
    sent = {"Host": f"127.0.0.1:{server.port}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in sent.items():
            connection.putheader(name, value)
        if data is not None:
            connection.putheader("Content-Length", str(len(data)))
        connection.endheaders(data)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def call(server: MotifServer, method: str, args: Any, **options: Any) -> tuple[int, Any]:
    status, headers, body = request(server, "POST", f"_symphony/call/{method}", {"args": args}, **options)
    return status, json.loads(body) if headers["content-type"] == "application/json" else body.decode()


def test_the_page_is_served_with_the_bridge_first_and_a_strict_policy(served: MotifServer) -> None:
    status, headers, body = request(served, "GET", "")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    html = body.decode()
    bridge = f'<script src="/{served.token}/_symphony/bridge.js"></script>'
    assert bridge in html
    assert html.index(bridge) < html.index('<link rel="stylesheet"')
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    status, headers, body = request(served, "GET", "app.js")
    assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert b"symphony.on" in body


def test_the_server_listens_on_loopback_on_a_random_port_with_a_fresh_token(host: Host, board: str) -> None:
    with serve(host, board) as first, serve(host, board) as second:
        assert urlsplit(first.url).hostname == "127.0.0.1"
        assert first.port != second.port
        assert first.token != second.token
        assert len(first.token) >= 32
        assert request(first, "GET", "", token=second.token)[0] == 403


def test_several_servers_show_one_motif_until_the_last_one_closes(host: Host, board: str) -> None:
    first = serve(host, board)
    with serve(host, board) as second:
        streams = [open_events(server) for server in (first, second)]
        try:
            assert host.call(board, "invoke", "tick", {"count": 1}) == 1
            assert [next_event(stream) for stream in streams] == [{"event": "ticked", "data": {"n": 0}}] * 2
        finally:
            for stream in streams:
                stream.close()
        first.close()
        assert host.inspect(board).state.value == "active"  # the second still shows it
        assert call(second, "greet", {"name": "second"}) == (200, {"result": "Hello, second!"})
    assert host.inspect(board).state.value == "deactivated"


def test_a_motif_that_was_already_running_is_left_running(host: Host, board: str) -> None:
    host.start(board)
    with serve(host, board) as server:
        assert call(server, "add", {"a": 1, "b": 1}) == (200, {"result": 2})
    assert host.inspect(board).state.value == "active"


def open_events(server: MotifServer) -> http.client.HTTPConnection:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "GET", f"/{server.token}/_symphony/events", headers={"Host": f"127.0.0.1:{server.port}"}
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline() == b"retry: 1000\n"
    connection.response = response  # type: ignore[attr-defined]
    return connection


def next_event(connection: http.client.HTTPConnection) -> Any:
    response = connection.response  # type: ignore[attr-defined]
    while True:
        line = response.readline()
        if line.startswith(b"data: "):
            return json.loads(line[len(b"data: ") :])


def test_an_exposed_method_runs_with_validated_arguments(served: MotifServer) -> None:
    assert call(served, "greet", {"name": "Ada"}) == (200, {"result": "Hello, Ada!"})
    assert call(served, "add", {"a": "40", "b": 2}) == (200, {"result": 42})  # lax: "40" is an int
    assert call(served, "add", {"a": 1}) == (200, {"result": 2})  # a default fills the rest
    assert call(served, "total", {"items": [1, 2.5]}) == (200, {"result": {"count": 2, "items": [1.0, 2.5]}})
    assert call(served, "later", {"value": 7}) == (200, {"result": {"value": 7}})  # a coroutine method


def test_bad_arguments_are_refused_one_problem_per_argument(served: MotifServer) -> None:
    status, body = call(served, "add", {"a": "many", "c": 1})
    assert status == 422
    error = body["error"]
    assert error["code"] == "invalid-arguments"
    problems = {problem["argument"]: problem["message"] for problem in error["problems"]}
    assert set(problems) == {"a", "c"}
    assert "integer" in problems["a"]
    assert problems["c"] == "unexpected argument"
    assert "acme.board" in error["message"]
    assert "'add' takes a, b" in error["hint"]
    status, body = call(served, "greet", {})
    assert (status, body["error"]["problems"]) == (422, [{"argument": "name", "message": "missing argument"}])


def test_a_method_that_raises_answers_the_page_and_the_server_goes_on(served: MotifServer) -> None:
    status, body = call(served, "boom", {})
    assert status == 500
    assert body["error"]["code"] == "failed"
    assert "RuntimeError: kaboom" in body["error"]["message"]
    assert body["error"]["extension"] == "acme.board"
    assert call(served, "greet", {"name": "again"}) == (200, {"result": "Hello, again!"})


def test_an_undeclared_method_is_refused_before_any_motif_code_runs(served: MotifServer) -> None:
    for method in ("secret", "activate", "deactivate", "invoke", "_connect", "__init__"):
        status, body = call(served, method, {})
        assert status == 403, method
        assert body["error"]["code"] == "refused"
        assert "not exposed" in body["error"]["message"]


def test_a_request_without_the_token_is_refused(served: MotifServer) -> None:
    for path in ("/", "/index.html", "/_symphony/bridge.js", "/_symphony/events", "/wrong-token/"):
        status, _, body = request(served, "GET", path)
        assert status == 403, path
        assert served.token.encode() not in body
    status, _, _ = request(served, "POST", "/_symphony/call/greet", {"args": {"name": "x"}})
    assert status == 403


def test_a_foreign_origin_is_refused(served: MotifServer) -> None:
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null", f"https://127.0.0.1:{served.port}"):
        status, _ = call(served, "greet", {"name": "x"}, headers={"Origin": origin})
        assert status == 403, origin
    assert call(served, "greet", {"name": "x"}, headers={"Origin": served.origin})[0] == 200
    status, _ = call(served, "greet", {"name": "x"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403


def test_a_foreign_host_header_is_refused_against_dns_rebinding(served: MotifServer) -> None:
    for name in ("evil.example", f"evil.example:{served.port}", "127.0.0.1", f"127.0.0.1:{served.port + 1}"):
        status, _, _ = request(served, "GET", "", headers={"Host": name})
        assert status == 403, name
        status, _ = call(served, "greet", {"name": "x"}, headers={"Host": name})
        assert status == 403, name
    assert request(served, "GET", "", headers={"Host": f"localhost:{served.port}"})[0] == 200


def test_only_the_pages_folder_is_served(served: MotifServer) -> None:
    for path in (
        "../private.txt",
        "..%2fprivate.txt",
        "%2e%2e/private.txt",
        ".env",
        "../symphony.toml",
        "nope.js",
    ):
        status, _, _ = request(served, "GET", path)
        assert status == 404, path


def test_calls_must_be_json_posts(served: MotifServer) -> None:
    status, _, _ = request(
        served, "POST", "_symphony/call/greet", headers={"Content-Type": "text/plain", "Content-Length": "0"}
    )
    assert status == 415
    assert request(served, "OPTIONS", "_symphony/call/greet")[0] == 405  # no CORS preflight, ever
    assert request(served, "POST", "index.html", {"args": {}})[0] == 405
    status, _ = call(served, "greet", ["not", "named"])
    assert status == 400


def test_events_reach_every_open_page_as_server_sent_events(host: Host, served: MotifServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        connection.request(
            "GET", f"/{served.token}/_symphony/events", headers={"Host": f"127.0.0.1:{served.port}"}
        )
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type") == "text/event-stream"
        assert response.readline() == b"retry: 1000\n"
        assert response.readline() == b": connected\n"
        assert response.readline() == b"\n"
        assert host.call("acme.board", "invoke", "tick", {"count": 2}) == 2
        lines = [response.readline() for _ in range(4)]
    finally:
        connection.close()
    events = [json.loads(line[len(b"data: ") :]) for line in lines if line.startswith(b"data: ")]
    assert events == [{"event": "ticked", "data": {"n": 0}}, {"event": "ticked", "data": {"n": 1}}]


def test_an_undeclared_event_is_an_error_naming_it(host: Host, served: MotifServer) -> None:
    motif = host.start("acme.board")
    with pytest.raises(MotifError, match="'nope' is not a declared event") as caught:
        motif.emit("nope", {})  # type: ignore[attr-defined]
    assert caught.value.extension == "acme.board"


def test_closing_the_server_ends_open_event_streams_and_stops_the_motif(host: Host, board: str) -> None:
    server = serve(host, board)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(
        "GET", f"/{server.token}/_symphony/events", headers={"Host": f"127.0.0.1:{server.port}"}
    )
    response = connection.getresponse()
    response.readline()
    closed = threading.Thread(target=server.close)
    closed.start()
    closed.join(10)
    assert not closed.is_alive(), "close() waited for the event stream forever"
    assert response.read() in (b": connected\n\n", b"")
    connection.close()
    assert host.inspect(board).state.value == "deactivated"


def test_a_broken_motif_fails_alone(host: Host, board: str, site: Any) -> None:
    site.install(
        "acme-broken",
        entry_points={"acme.broken": "acme_broken:Broken"},
        files={
            "acme_broken/__init__.py": (
                "from symphony_motifs import Motif\n\n"
                "class Broken(Motif):\n"
                "    def activate(self, context):\n"
                "        raise RuntimeError('no tiles today')\n"
            ),
            "acme_broken/symphony.toml": BROKEN_MANIFEST,
            "acme_broken/web/index.html": "<html><head></head><body>broken</body></html>",
        },
    )
    site.install(
        "acme-pageless",
        entry_points={"acme.pageless": "acme_pageless:Pageless"},
        files={
            "acme_pageless/__init__.py": "from symphony_motifs import Motif\n\nclass Pageless(Motif):\n    pass\n",
            "acme_pageless/symphony.toml": BROKEN_MANIFEST.replace("acme.broken", "acme.pageless"),
        },
    )
    host.discover(rescan=True)
    with pytest.raises(ExtensionFailed, match="no tiles today") as caught:
        serve(host, "acme.broken")
    assert caught.value.extension == "acme.broken"
    with pytest.raises(MotifError, match=re.escape("the page 'web/index.html' does not exist")) as missing:
        serve(host, "acme.pageless")
    assert missing.value.extension == "acme.pageless"
    with serve(host, board) as server:
        assert call(server, "greet", {"name": "still here"}) == (200, {"result": "Hello, still here!"})


def test_an_exposed_name_the_class_lacks_fails_the_activation(host: Host, site: Any) -> None:
    site.install(
        "acme-liar",
        entry_points={"acme.liar": "acme_liar:Liar"},
        files={
            "acme_liar/__init__.py": "from symphony_motifs import Motif\n\nclass Liar(Motif):\n    pass\n",
            "acme_liar/symphony.toml": BROKEN_MANIFEST.replace("acme.broken", "acme.liar").replace(
                'page = "web/index.html"', 'page = "web/index.html"\nexposed = ["missing"]'
            ),
            "acme_liar/web/index.html": "<html></html>",
        },
    )
    host.discover(rescan=True)
    with pytest.raises(MotifError, match=r"exposes 'missing', which Liar does not define"):
        serve(host, "acme.liar")
    assert host.inspect("acme.liar").state.value == "failed"


def test_an_extension_of_another_kind_is_not_served(host: Host, site: Any) -> None:
    site.install(
        "acme-op",
        entry_points={"acme.op": "acme_op:Op"},
        group="symphony.operators",
        files={
            "acme_op/__init__.py": "",
            "acme_op/symphony.toml": (
                'id = "acme.op"\nkind = "operator"\nname = "Op"\nsummary = "An operator."\n'
                'targets = "symphony-operators>=0.1,<0.2"\n'
            ),
        },
    )
    host.discover(rescan=True)
    with pytest.raises(MotifError, match=r"is of kind 'operator', not a motif"):
        serve(host, "acme.op")


BROKEN_MANIFEST = """
id = "acme.broken"
kind = "motif"
name = "Broken"
summary = "A motif whose activation fails."
targets = "symphony-motifs>=0.1,<0.2"

[contributes]
page = "web/index.html"
"""


@pytest.mark.slow
def test_under_the_isolated_tier_calls_run_in_the_motifs_worker(
    tmp_path: Any, site: Any, board: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        Host(tmp_path / "isolated-home", isolation="isolated", path=[str(site.root), *sys.path]) as host,
        serve(host, board) as server,
    ):
        assert call(server, "greet", {"name": "worker"}) == (200, {"result": "Hello, worker!"})
        assert call(server, "later", {"value": 3}) == (200, {"result": {"value": 3}})
        status, body = call(server, "add", {"a": "many"})
        assert status == 422
        assert body["error"]["code"] == "invalid-arguments"
        assert body["error"]["problems"][0]["argument"] == "a"
        status, body = call(server, "boom", {})
        assert (status, body["error"]["code"]) == (500, "failed")
        assert "kaboom" in body["error"]["message"]
        # Its events travel from the worker through the host to the page; the host lets through only
        # the events the manifest declares, whatever the worker sends.
        events = open_events(server)
        try:
            assert host.call(board, "sneak") is True  # sent by the worker, dropped by the host
            assert call(server, "tick", {"count": 2}) == (200, {"result": 2})
            assert [next_event(events), next_event(events)] == [
                {"event": "ticked", "data": {"n": 0}},
                {"event": "ticked", "data": {"n": 1}},
            ]
        finally:
            events.close()
        assert "acme_board" not in sys.modules  # the host process never imported the motif
    assert "acme.board: refused event 'undeclared', which its manifest does not declare" in caplog.text


def test_a_call_that_never_returns_does_not_keep_the_server_from_closing(
    host: Host, site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    site.install(
        "acme-stuck",
        entry_points={"acme.stuck": "acme_stuck:Stuck"},
        files={
            "acme_stuck/__init__.py": (
                "import threading\n\nfrom symphony_motifs import Motif\n\n"
                "RELEASE = threading.Event()\nENTERED = threading.Event()\n\n"
                "class Stuck(Motif):\n"
                "    def wait(self) -> str:\n"
                "        ENTERED.set()\n"
                "        RELEASE.wait()\n"
                "        return 'released'\n"
            ),
            "acme_stuck/symphony.toml": BROKEN_MANIFEST.replace("acme.broken", "acme.stuck").replace(
                'page = "web/index.html"', 'page = "web/index.html"\nexposed = ["wait"]'
            ),
            "acme_stuck/web/index.html": "<html></html>",
        },
    )
    host.discover(rescan=True)
    server = serve(host, "acme.stuck")
    caller = threading.Thread(target=call, args=(server, "wait", {}), daemon=True)
    caller.start()
    assert sys.modules["acme_stuck"].ENTERED.wait(30), "the call never reached the motif"
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 15
    assert "acme.stuck: 1 call(s) still running 5 s after its server closed; left behind" in caplog.text
    sys.modules["acme_stuck"].RELEASE.set()
    caller.join(10)
