"""Served mode: one motif's page on 127.0.0.1 for any browser, locked down.

- A random port and a per-session token: every URL starts with ``/<token>/``; a request without it is
  refused. The token is compared in constant time.
- The Host header must name this server (``127.0.0.1:<port>`` or ``localhost:<port>``), so a page of a
  foreign site whose name was rebound to 127.0.0.1 (DNS rebinding) is refused; an Origin header, when
  there is one, must be this server's origin, so another site's page cannot call the motif.
- A strict Content-Security-Policy: scripts, styles, images, fonts and connections from this server
  only, no inline scripts, no frames, no workers, no forms posting elsewhere. A motif loads no remote
  resources.
- One server serves one motif: another motif's page has another origin and token, so a motif cannot
  reach another extension except through the host API its own methods use.

The page calls ``POST /<token>/_symphony/call/<method>`` (JSON ``{"args": {...}}``) and listens on
``GET /<token>/_symphony/events`` (Server-Sent Events); the bridge script does both.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import re
import secrets
import sys
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from symphony_core import SymphonyError

from ._contributions import Assets
from ._errors import CallRefused, InvalidArguments, MotifError

log = logging.getLogger("symphony.motifs.server")

Dispatch = Callable[[str, Mapping[str, Any]], Any]
"""Runs one exposed method: ``(method, arguments) -> JSON-ready result``; raises `SymphonyError`."""

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "media-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "frame-src 'none'",
        "worker-src 'none'",
        "object-src 'none'",
        "manifest-src 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
}
MAX_BODY = 1 << 20  # a call's arguments; a page sending more is refused rather than buffered
EVENT_BACKLOG = 1000  # events queued for one slow page before that page is dropped
KEEP_ALIVE = 15.0
CLOSE_GRACE = 5.0  # how long close() waits for calls in flight
_HEAD = re.compile(rb"<head(\s[^>]*)?>", re.IGNORECASE)
_CLOSED = object()


class MotifServer:
    """Serves one motif's page on 127.0.0.1, behind a per-session token; see the module's docstring.

    ``dispatch`` runs the methods the page calls (only the ones the motif's manifest exposes reach it);
    `emit` pushes events to every open page. Use it as a context manager, or call `start` and `close`.
    """

    def __init__(self, assets: Assets, dispatch: Dispatch, *, port: int = 0) -> None:
        self.assets = assets
        self.dispatch = dispatch
        self.token = secrets.token_urlsafe(24)
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pages: list[queue.Queue[object]] = []
        self._pages_lock = threading.Lock()
        self._closing = False
        self._bound = 0
        self._on_close: list[Callable[[], None]] = []
        self._bridge = resources.files("symphony_motifs").joinpath("_web/bridge.js").read_bytes()

    # Lifecycle

    def start(self) -> MotifServer:
        """Listen on a random free port of 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._closing = False
        httpd = _HTTPServer(("127.0.0.1", self._port), _Handler)
        httpd.motif = self
        self._bound = int(httpd.server_address[1])
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"symphony-motif-{self.assets.extension}",
            daemon=True,
        )
        self._thread.start()
        log.info("serving motif %s at %s", self.assets.extension, self.url)
        return self

    def close(self) -> None:
        """Stop serving: end every event stream, wait for requests in flight, free the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        with self._pages_lock:
            self._closing = True  # a stream opening from now on ends at once
            pages, self._pages = self._pages, []
        for page in pages:
            page.put(_CLOSED)
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        if not httpd.wait_idle(CLOSE_GRACE):
            log.warning(
                "motif %s: %d call(s) still running %g s after its server closed; left behind",
                self.assets.extension,
                httpd.active,
                CLOSE_GRACE,
            )
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a clean-up of motif %s failed", self.assets.extension)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the server has stopped (e.g. to stop the motif it served)."""
        self._on_close.append(callback)

    def __enter__(self) -> MotifServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # What a host uses

    @property
    def port(self) -> int:
        """The port the server listens on (once started)."""
        if self._httpd is None:
            raise MotifError(
                "is not being served", extension=self.assets.extension, hint="call start() first"
            )
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``: the only origin allowed to call the motif."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The page's URL, token included: whoever has it can use the motif, so show it only to its user."""
        return f"{self.origin}/{self.token}/"

    def emit(self, event: str, data: Any) -> int:
        """Push ``(event, data)`` to every open page; returns how many pages it was queued for."""
        message = f"data: {json.dumps({'event': event, 'data': data}, separators=(',', ':'))}\n\n".encode()
        with self._pages_lock:
            pages = list(self._pages)
        delivered = 0
        for page in pages:
            try:
                page.put_nowait(message)
                delivered += 1
            except queue.Full:
                log.warning(
                    "motif %s: a page reads events too slowly; it is disconnected", self.assets.extension
                )
                self._drop(page)
                with page.mutex:  # replace its backlog by the end mark, so its stream ends now
                    page.queue.clear()
                    page.queue.append(_CLOSED)
                    page.not_empty.notify()
        return delivered

    # Internals used by the request handler

    def _listen(self) -> queue.Queue[object]:
        page: queue.Queue[object] = queue.Queue(EVENT_BACKLOG)
        with self._pages_lock:
            if self._closing:
                page.put(_CLOSED)
            else:
                self._pages.append(page)
        return page

    def _drop(self, page: queue.Queue[object]) -> None:
        with self._pages_lock:
            if page in self._pages:
                self._pages.remove(page)

    def _allowed_hosts(self) -> tuple[str, ...]:
        port = self._bound  # not `port`: requests still in flight while close() runs are checked too
        return (f"127.0.0.1:{port}", f"localhost:{port}")

    def _allowed_origins(self) -> tuple[str, ...]:
        return tuple(f"http://{host}" for host in self._allowed_hosts())

    def _page_bytes(self, path: Path) -> bytes:
        """An HTML file with the bridge script put first into its head."""
        html = path.read_bytes()
        tag = f'<script src="/{self.token}/_symphony/bridge.js"></script>'.encode()
        found = _HEAD.search(html)
        if found is None:
            return tag + html
        return html[: found.end()] + tag + html[found.end() :]


class _HTTPServer(ThreadingHTTPServer):
    # close() waits for requests in flight itself, for a while: a motif method that never returns must
    # not keep its host from closing, so request threads are daemons and are not joined without end.
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False
    motif: MotifServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self.active = 0
        self.idle = threading.Condition()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.idle:
            self.active += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.idle:
                self.active -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait for the requests in flight; False if some still run after ``timeout`` seconds."""
        with self.idle:
            return self.idle.wait_for(lambda: self.active == 0, timeout)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A page that went away mid-answer is routine; anything else goes to the log, not to stderr.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("motif %s: a page went away: %s", self.motif.assets.extension, error)
        else:
            log.exception("motif %s: a request failed", self.motif.assets.extension)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "symphony-motifs"
    sys_version = ""
    timeout = 30  # a client that stops sending mid-request does not hold a thread forever

    # Routing

    def do_GET(self) -> None:
        rest = self._admitted()
        if rest is None:
            return
        if rest == "_symphony/bridge.js":
            self._send(HTTPStatus.OK, self.server.motif._bridge, CONTENT_TYPES[".js"])
        elif rest == "_symphony/events":
            self._stream_events()
        elif rest.startswith("_symphony/"):
            self._refuse(HTTPStatus.NOT_FOUND, "no such endpoint")
        else:
            self._send_asset(rest)

    def do_POST(self) -> None:
        rest = self._admitted()
        if rest is None:
            return
        if not rest.startswith("_symphony/call/"):
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "only calls are posted")
            return
        self._call(rest[len("_symphony/call/") :])

    def do_PUT(self) -> None:
        self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")

    do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_PUT  # noqa: N815 - no CORS preflight is ever granted

    # Checks

    def _admitted(self) -> str | None:
        """The path after the token when the request may be served; otherwise refuse it and return None."""
        motif = self.server.motif
        host = self.headers.get("Host", "")
        if host not in motif._allowed_hosts():
            self._refuse(HTTPStatus.FORBIDDEN, "foreign Host header")  # DNS rebinding
            return None
        origin = self.headers.get("Origin")
        if origin is not None and origin not in motif._allowed_origins():
            self._refuse(HTTPStatus.FORBIDDEN, "foreign Origin")
            return None
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            self._refuse(HTTPStatus.FORBIDDEN, "cross-site request")
            return None
        path = unquote(urlsplit(self.path).path)
        token, _, rest = path.lstrip("/").partition("/")
        if not hmac.compare_digest(token.encode(), motif.token.encode()):
            self._refuse(HTTPStatus.FORBIDDEN, "missing or wrong session token")
            return None
        if not path.startswith(f"/{token}/") and rest == "":
            self._redirect(f"/{motif.token}/")
            return None
        return rest

    # Answers

    def _send_asset(self, rest: str) -> None:
        assets = self.server.motif.assets
        path = assets.page if rest in ("", assets.page.name) else assets.resolve(rest)
        if path is None:
            self._refuse(HTTPStatus.NOT_FOUND, "no such asset")
            return
        suffix = path.suffix.lower()
        try:
            body = self.server.motif._page_bytes(path) if suffix in (".html", ".htm") else path.read_bytes()
        except OSError:
            self._refuse(HTTPStatus.NOT_FOUND, "no such asset")
            return
        self._send(HTTPStatus.OK, body, CONTENT_TYPES.get(suffix, "application/octet-stream"))

    def _call(self, method: str) -> None:
        motif = self.server.motif
        if self.headers.get_content_type() != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "bad-request", "a call's body must be JSON")
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "bad-request", "a call's body is limited to 1 MiB"
            )
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "bad-request", "a call's body must be JSON")
            return
        arguments = body.get("args", {}) if isinstance(body, dict) else None
        if not isinstance(arguments, dict):
            self._error(HTTPStatus.BAD_REQUEST, "bad-request", 'send {"args": {name: value, ...}}')
            return
        if method not in motif.assets.contributions.exposed:  # refused before any of the motif's code runs
            self._error(
                HTTPStatus.FORBIDDEN,
                "refused",
                f"{motif.assets.extension}: '{method}' is not exposed to the page",
                "add it to [contributes] exposed in the motif's manifest if the page should call it",
            )
            return
        try:
            result = motif.dispatch(method, arguments)
        except InvalidArguments as exc:  # in either tier: one the motif's worker raised arrives as itself
            problems = [{"argument": p.location, "message": p.message} for p in exc.problems]
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, "invalid-arguments", str(exc), exc.hint, problems)
            return
        except CallRefused as exc:
            self._error(HTTPStatus.FORBIDDEN, "refused", str(exc), exc.hint)
            return
        except SymphonyError as exc:
            self._error(
                HTTPStatus.INTERNAL_SERVER_ERROR, "failed", exc.message, exc.hint, extension=exc.extension
            )
            return
        except Exception as exc:
            log.exception("motif %s: '%s' raised", motif.assets.extension, method)
            self._error(
                HTTPStatus.INTERNAL_SERVER_ERROR, "failed", f"'{method}' raised {type(exc).__name__}: {exc}"
            )
            return
        try:
            payload = json.dumps({"result": result}, separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            self._error(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                "failed",
                f"'{method}' returned data that is not JSON: {exc}",
            )
            return
        self._send(HTTPStatus.OK, payload, "application/json")

    def _stream_events(self) -> None:
        motif = self.server.motif
        page = motif._listen()
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(b"retry: 1000\n: connected\n\n")
            self.wfile.flush()
            while True:
                try:
                    message = page.get(timeout=KEEP_ALIVE)
                except queue.Empty:
                    message = b": keep-alive\n\n"
                if message is _CLOSED:
                    break
                assert isinstance(message, bytes)
                self.wfile.write(message)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the page went away
        finally:
            motif._drop(page)
            self.close_connection = True

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _error(
        self,
        status: HTTPStatus,
        code: str,
        message: str,
        hint: str | None = None,
        problems: list[dict[str, str]] | None = None,
        *,
        extension: str | None = None,
    ) -> None:
        error: dict[str, Any] = {"code": code, "message": message, "hint": hint}
        if problems is not None:
            error["problems"] = problems
        if extension is not None:
            error["extension"] = extension
        self._send(status, json.dumps({"error": error}).encode(), "application/json")

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        log.info("refused a %s request: %s", self.command, reason)  # never the path: it may hold the token
        self._send(
            status, f"{status.value} {status.phrase}: {reason}\n".encode(), "text/plain; charset=utf-8"
        )

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        # Paths hold the token: they are never logged.
        log.debug("%s %s", self.command, args[1] if len(args) > 1 else "")
