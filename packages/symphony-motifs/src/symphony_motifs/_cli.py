"""``symphony ui``: the marketplace view (or another motif) in a window, or served to any browser.

Added to the ``symphony`` command through the ``symphony.commands`` entry point of this distribution,
so the core's command line never imports this package.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from symphony_core import Host, Isolation, SymphonyError

from ._hosting import MARKETPLACE, open_window, serve

WINDOW_TIMEOUT = 120.0
"""How long the window may take to load its page (Qt WebEngine's first start is slow)."""


@click.command()
@click.option(
    "--serve",
    "served",
    is_flag=True,
    help="Serve on 127.0.0.1 and print the URL (with its session token) instead of opening a window.",
)
@click.option("--motif", default=MARKETPLACE, show_default=True, help="The installed motif to show.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port to serve on (default: a random free one)."
)
@click.option(
    "--gui",
    default=None,
    help="pywebview backend for the window: qt, gtk, ... (default: pywebview's choice).",
)
@click.option(
    "--isolation",
    type=click.Choice(["auto", "isolated", "guard"]),
    default="auto",
    show_default=True,
    help="Where another motif's code runs: kernel-restricted workers unless the policy file trusts it "
    "(auto), always in workers, or in this process under the guard (not a sandbox). The marketplace "
    "view is the host's own UI and always runs here.",
)
@click.pass_context
def ui(
    ctx: click.Context, served: bool, motif: str, port: int, gui: str | None, isolation: Isolation
) -> None:
    """Show the marketplace view: installed extensions, permissions, config.

    \b
    Examples:
      symphony ui                     the marketplace view in a window (needs symphony-motifs[qt])
      symphony ui --serve             print a local URL to open in any browser; Ctrl-C stops it
      symphony ui --motif acme.board  another installed motif
    """
    home: Path | None = ctx.find_root().obj
    # SIGTERM stops it as Ctrl-C does: the window closes, the server and the motif stop, the host closes.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Host(home, isolation=isolation) as host:
            if served:
                _serve_until_interrupted(host, motif, port)
            else:
                window = open_window(host, motif, gui=gui)
                try:
                    window.wait_loaded(WINDOW_TIMEOUT)
                    click.echo(
                        f"Showing {window.server.assets.title} in a window; closing it or Ctrl-C stops it.",
                        err=True,
                    )
                    window.wait()
                except KeyboardInterrupt:
                    window.close()
                except SymphonyError:
                    window.close()
                    raise
    except SymphonyError as exc:
        # One line: what went wrong, then what to do.
        about = f"{exc.extension}: " if exc.extension else ""
        click.echo(f"error: {about}{exc.message}" + (f"; {exc.hint}" if exc.hint else ""), err=True)
        sys.exit(1)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _serve_until_interrupted(host: Host, motif: str, port: int) -> None:
    with serve(host, motif, port=port) as server:
        click.echo(server.url)
        click.echo(
            f"Serving {server.assets.title} on 127.0.0.1 only; the URL holds this session's token. "
            "Ctrl-C stops it.",
            err=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
