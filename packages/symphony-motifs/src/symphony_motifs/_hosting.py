"""Show an installed motif: served to any browser, or in a pywebview window of its own process.

The host process runs the motif's Python methods (through ``Host.call``: under the motif's grants, or
in its isolated worker) and serves its page; it never runs the page itself. Window mode opens the same
served page in a pywebview window in a child process, so one webview runs per process and a crashing
window takes nothing else down.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from symphony_core import Context, ExtensionInfo, Host

from ._contributions import Assets
from ._errors import MotifError
from ._motif import Motif
from ._server import MotifServer

if TYPE_CHECKING:
    from ._window import MotifWindow

log = logging.getLogger("symphony.motifs")

MARKETPLACE = "symphony.marketplace"
# Servers showing each (host, motif), and whether serving started the motif (then the last one stops it).
_serving: dict[tuple[int, str], tuple[int, bool]] = {}
_serving_lock = threading.Lock()
_MARKETPLACE_ENTRY_POINT = "symphony_motifs._marketplace:Marketplace"
_DISTRIBUTION = "symphony-motifs"


def locate(host: Host, motif: str) -> tuple[ExtensionInfo, Assets]:
    """An installed motif and its assets, found from its manifest without importing it."""
    info = host.inspect(motif)
    if info.kind != "motif":
        raise MotifError(
            f"is of kind '{info.kind}', not a motif: it has no page to show",
            extension=info.id,
            hint="`symphony list` shows each extension's kind",
        )
    if info.manifest is None or info.manifest_file is None:
        problem = "" if info.problem is None else f": {info.problem.message}"
        raise MotifError(
            f"cannot be shown, its manifest could not be read{problem}",
            extension=info.id,
            hint=None if info.problem is None else info.problem.hint,
        )
    return info, Assets.locate(info.id, info.name or info.id, info.manifest, info.manifest_file)


def serve(host: Host, motif: str = MARKETPLACE, *, port: int = 0) -> MotifServer:
    """Start an installed motif through ``host`` and serve its page; returns the running server.

    The motif is started (loaded, configured, activated: it needs its consent like any extension) and
    stopped again when the last server that started it closes; a motif that was already running is left
    running. Several servers may show the same motif: each page gets its events. Close the server when done.
    """
    info, assets = locate(host, motif)
    if _is_marketplace(info):
        return _serve_marketplace(host, info, assets, port)
    key = (id(host), info.id)
    with _serving_lock:
        was_active = info.state.value == "active" and key not in _serving
        instance = host.start(info.id)
        count, started = _serving.get(key, (0, not was_active))
        _serving[key] = (count + 1, started)
    server = MotifServer(
        assets, lambda method, arguments: host.call(info.id, "invoke", method, dict(arguments)), port=port
    )
    if isinstance(instance, Motif):
        instance._connect(server.emit)
        disconnect: Callable[[], None] = functools.partial(instance._disconnect, server.emit)
    else:  # run by an isolated worker: its events come through the host, checked here
        disconnect = host.subscribe(
            info.id, _declared_only(info.id, assets.contributions.events, server.emit)
        )
    server.on_close(disconnect)
    server.on_close(lambda: _release(host, info.id))
    try:
        return server.start()
    except BaseException:  # no port to listen on: undo what this call did
        disconnect()
        _release(host, info.id)
        raise


def _declared_only(
    extension: str, events: tuple[str, ...], emit: Callable[[str, Any], object]
) -> Callable[[str, Any], None]:
    """Pass on only the events the manifest declares: a worker is not trusted to check its own."""

    def deliver(event: str, data: Any) -> None:
        if event in events:
            emit(event, data)
        else:
            log.warning("%s: refused event %r, which its manifest does not declare", extension, event)

    return deliver


def open_window(host: Host, motif: str = MARKETPLACE, *, gui: str | None = None) -> MotifWindow:
    """Serve an installed motif and show it in a pywebview window run by a child process.

    ``gui`` picks pywebview's backend (``"qt"``, ``"gtk"``; default: pywebview's choice). Closing the
    window, or `MotifWindow.close`, stops the server and the motif.
    """
    from ._window import MotifWindow

    server = serve(host, motif)
    declared = server.assets.contributions
    try:
        return MotifWindow.launch(
            server, title=server.assets.title, width=declared.width, height=declared.height, gui=gui
        )
    except BaseException:
        server.close()
        raise


def _is_marketplace(info: ExtensionInfo) -> bool:
    """The marketplace view is the host's own UI: it is trusted only as shipped by this distribution."""
    return (
        info.id == MARKETPLACE
        and info.distribution == _DISTRIBUTION
        and info.entry_point == _MARKETPLACE_ENTRY_POINT
    )


def _serve_marketplace(host: Host, info: ExtensionInfo, assets: Assets, port: int) -> MotifServer:
    """Serve the marketplace view: its methods run here with the host, not as a guarded extension."""
    from ._marketplace import Marketplace

    view = Marketplace(host)
    view.activate(
        Context(
            id=info.id,
            version=info.version,
            manifest=info.manifest or {},
            config=None,
            data_dir=host.home.data_dir(info.id),
            cache_dir=host.home.extension_cache_dir(info.id),
            logger=logging.getLogger(f"symphony.ext.{info.id}"),
        )
    )

    def dispatch(method: str, arguments: Mapping[str, Any]) -> Any:
        return view.invoke(method, arguments)

    server = MotifServer(assets, dispatch, port=port)
    view._connect(server.emit)
    server.on_close(view.deactivate)
    return server.start()


def _release(host: Host, extension: str) -> None:
    """One server of the motif closed: stop the motif if it was the last and the motif was started here."""
    key = (id(host), extension)
    with _serving_lock:
        count, started = _serving.pop(key, (1, False))
        if count > 1:
            _serving[key] = (count - 1, started)
            return
    if not started:
        return
    try:
        host.deactivate(extension)
    except Exception as exc:  # noqa: BLE001 - stopping one motif must not fail the caller's clean-up
        log.warning("stopping motif %s: %s", extension, exc)
