"""A motif's page while its author develops it (``symphony dev``): served like ``symphony run --serve``,
and told to reload whenever a file is saved.

The core finds `DevPage` through its table of kinds (``Kind.dev``). The page is served from the project's
folder as it is on disk, so a saved asset is what the reloaded page gets; the motif's methods and events
go through the host, to whichever version of the motif runs now. Only in this mode does the bridge
script carry a few more lines (``_web/dev.js``) that reload the page on the ``symphony.dev.reload``
event; it stays a same-origin script, within the page's Content-Security-Policy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from symphony_core import Host

from ._contributions import Assets
from ._hosting import locate
from ._server import Dispatch, MotifServer

log = logging.getLogger("symphony.motifs")

RELOAD_EVENT = "symphony.dev.reload"


class _DevServer(MotifServer):
    """A `MotifServer` whose bridge script also reloads the page on `RELOAD_EVENT`."""

    def __init__(self, assets: Assets, dispatch: Dispatch, *, port: int = 0) -> None:
        super().__init__(assets, dispatch, port=port)
        self._bridge += resources.files("symphony_motifs").joinpath("_web/dev.js").read_bytes()


class DevPage:
    """One motif's page, served on 127.0.0.1 for ``symphony dev``; `refresh` reloads every open page."""

    def __init__(self, host: Host, extension: str, *, port: int = 0) -> None:
        info, assets = locate(host, extension)
        self.host = host
        self.extension = info.id
        self.server = _DevServer(assets, self._dispatch, port=port)
        self._unsubscribe = host.subscribe(info.id, self._deliver)
        try:
            self.server.start()
        except BaseException:
            self._unsubscribe()
            raise

    @property
    def url(self) -> str:
        """The page's URL, with its session token."""
        return self.server.url

    @property
    def root(self) -> Path:
        """The folder the page and its assets are served from."""
        return self.server.assets.root

    def refresh(self, *, manifest: bool) -> int:
        """Tell every open page to reload, after reading the manifest again when ``manifest``."""
        if manifest:
            self.server.assets = locate(self.host, self.extension)[1]
        return self.server.emit(RELOAD_EVENT, None)

    def close(self) -> None:
        """Stop serving; the motif itself is the host's to stop."""
        self._unsubscribe()
        self.server.close()

    def _dispatch(self, method: str, arguments: Mapping[str, Any]) -> Any:
        return self.host.call(self.extension, "invoke", method, dict(arguments))

    def _deliver(self, event: str, data: Any) -> None:
        # The events the manifest declares now: in either tier they come through the host.
        if event in self.server.assets.contributions.events:
            self.server.emit(event, data)
        else:
            log.warning("%s: refused event %r, which its manifest does not declare", self.extension, event)
