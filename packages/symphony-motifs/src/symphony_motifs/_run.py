"""``symphony run ID [--serve [--port P]]``: an installed motif in a window, or served for a browser.

The core's ``symphony run`` finds this command through its table of kinds and passes it a host (not yet
running the motif) and the motif's id in ``ctx.obj``. Serving starts the motif through that host, as
``symphony ui --motif ID`` does, and stops it on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from types import FrameType
from typing import Any

import click

from ._errors import MotifError
from ._hosting import open_window, serve

WINDOW_TIMEOUT = 120.0
"""How long the window may take to load its page (Qt WebEngine's first start is slow)."""


@click.command()
@click.option(
    "--serve",
    "served",
    is_flag=True,
    help="Serve on 127.0.0.1 and print the URL (with its session token) instead of opening a window.",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port to serve on (default: a random free one)."
)
@click.option(
    "--gui", default=None, help="pywebview backend for the window: qt, gtk, ... (default: its choice)."
)
@click.pass_obj
def run(obj: dict[str, Any], served: bool, port: int, gui: str | None) -> None:
    """Show the motif in a window, or with --serve print a local URL for any browser; Ctrl-C stops it.

    \b
    Examples:
      symphony run acme.board --serve
      symphony run acme.board --serve --port 8765
      symphony run acme.board
    """
    host, extension = obj["host"], obj["extension"]
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if served:
            _serve(host, extension, port)
        else:
            _window(host, extension, gui)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(host: Any, extension: str, port: int) -> None:
    with serve(host, extension, port=port) as server:
        click.echo(server.url)
        click.echo(
            f"Serving {server.assets.title} on 127.0.0.1 only; the URL holds this session's token. "
            "Ctrl-C stops it.",
            err=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


def _window(host: Any, extension: str, gui: str | None) -> None:
    window = open_window(host, extension, gui=gui)
    try:
        window.wait_loaded(WINDOW_TIMEOUT)
    except MotifError as exc:
        window.close()
        raise MotifError(
            exc.summary,
            extension=extension,
            hint=f"serve it instead and open the URL it prints in a browser: symphony run {extension} --serve",
        ) from None
    click.echo(f"Showing {window.server.assets.title} in a window; closing it or Ctrl-C stops it.", err=True)
    try:
        window.wait()
    except KeyboardInterrupt:
        window.close()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
