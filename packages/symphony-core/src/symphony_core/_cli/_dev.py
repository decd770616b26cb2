"""``symphony dev``: the author's loop. Run the project in a real host, restart it on each save, and
say what happened where the author looks (the terminal), with the file and line of each error.

Exit codes: 0 stopped (Ctrl-C or SIGTERM, or after ``--exit-after`` saves); 1 it could not start
(watchfiles is missing, a dependency is not installed); 2 PATH is not an extension project.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.markup import escape

from ._author import _fail, _install
from ._output import console
from ._session import person, print_consent

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow"}


@click.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.option(
    "--tier",
    type=click.Choice(["isolated", "guard"]),
    default=None,
    help="Where the code runs: isolated workers, as a marketplace host runs it (the default on Linux), or "
    "this process under the guard (the default elsewhere; a restart imports the project's modules afresh, "
    "but what they changed in other modules stays).",
)
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Grant every permission the manifest asks for without asking (it is shown all the same).",
)
@click.option(
    "--serve/--no-serve",
    default=True,
    help="Serve a motif's page on 127.0.0.1 and reload it on each save (default: serve).",
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, help="Port of a motif's page (default: any free one)."
)
@click.option(
    "--install",
    is_flag=True,
    help="First install the project into this Python, editable, with its dependencies (pip or uv).",
)
@click.option(
    "--exit-after",
    type=click.IntRange(1),
    metavar="N",
    help="Stop after N saves that changed something (for scripts and tests); default: run until Ctrl-C.",
)
@click.pass_context
def dev(
    ctx: click.Context,
    path: Path,
    tier: str | None,
    yes: bool,
    serve: bool,
    port: int,
    install: bool,
    exit_after: int | None,
) -> None:
    """Run the extension project at PATH (default: here) in a real host, and restart it on every save.

    The project's code, manifest and config file run as a marketplace host runs them: in isolated workers
    (on Linux), with the permissions its manifest asks for, shown first and granted for the run (on a
    terminal it asks; --yes grants without asking; without either, nothing is granted). A save restarts it
    in new workers that import the new code, and prints "reloaded ID in N ms"; a save of a motif's page
    or its assets reloads the open page. A broken manifest or a syntax error is reported with its file
    and line, and the version that runs is kept; an error raised while the new version starts is
    reported the same way. It keeps watching until Ctrl-C (or SIGTERM).

    The project runs from PATH without being installed: only its dependencies must be installed in this
    Python (--install installs it editable, with them).

    \b
    Examples:
      symphony dev
      symphony dev ~/code/acme-totals --yes
      symphony dev --port 8765                 a motif's page on a fixed port
      symphony dev --yes --exit-after 1        stop after one save (scripts)

    \b
    Exit codes: 0 stopped; 1 it could not start; 2 PATH is not an extension project.
    """
    from symphony_core._authoring._dev import DevProject, DevSession, NotAnExtension
    from symphony_core._model._errors import SymphonyError

    try:
        project = DevProject.read(path)
    except NotAnExtension as exc:
        _fail(exc.message, exc.hint, code=2)
    if install:
        _install(project.folder, quiet=False)
    missing = project.missing()
    if missing:
        _fail(
            f"{project.distribution} needs what is not installed in this Python: {', '.join(missing)}",
            f'install them: python -m pip install -e "{project.folder}" (or run symphony dev --install)',
        )
    chosen = tier or ("isolated" if sys.platform == "linux" else "guard")
    session = DevSession(
        project,
        home=ctx.obj,
        tier=chosen,  # type: ignore[arg-type]
        serve=serve,
        port=port,
        consent=_consent(yes),
        report=_print,
        actor=person(),
    )
    # SIGTERM stops it as Ctrl-C does: the workers stop, their folders and the page's server go.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        session.start()
        console(stderr=True).print(
            f"watching {escape(str(project.folder))} for changes; Ctrl-C stops", style="dim", highlight=False
        )
        session.run(exit_after=exit_after)
    except SymphonyError as exc:
        _fail(exc.message, exc.hint)
    except KeyboardInterrupt:
        console(stderr=True).print("stopped", style="dim", highlight=False)
    finally:
        session.close()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM, taken as a Ctrl-C: handed to the SIGINT handler in place (so the host counts it as a person
    stopping it, not as a ``KeyboardInterrupt`` that extension code raised), else raised as one."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    raise KeyboardInterrupt


def _consent(yes: bool) -> Any:
    """Show what the extension asks for, then grant it: with --yes, or if the person at the terminal says so."""

    def consent(host: Any, extension: str) -> None:
        out = console(stderr=True)
        print_consent(out, host.consent(extension), host.tier(extension))
        if not yes:
            if not sys.stdin.isatty():
                out.print(
                    f"[yellow]not granted:[/] no terminal to ask on; pass --yes to grant what "
                    f"{escape(extension)} asks for",
                    highlight=False,
                )
                return
            if not click.confirm(f"Grant {extension} what it asks for, to run it here?", default=False):
                out.print("nothing granted", highlight=False)
                return
        host.grant(extension, actor=person())
        out.print(f"granted what {escape(extension)} asks for", highlight=False)

    return consent


def _print(event: Any) -> None:
    """One event of the loop, for the author: progress on standard output, problems on standard error."""
    from symphony_core._authoring._dev import Failed, Ready, Refreshed, Rejected, Reloaded, Unconsented

    out, err = console(), console(stderr=True)
    if isinstance(event, Ready):
        out.print(
            f"[bold green]ready:[/] {escape(', '.join(event.extensions))} ({event.tier} tier) in {event.ms:.0f} ms",
            highlight=False,
        )
        for extension, url in event.pages.items():
            out.print(f"  {escape(extension)}: {escape(url)}", highlight=False, soft_wrap=True)
    elif isinstance(event, Reloaded):
        out.print(
            f"[green]reloaded[/] {escape(', '.join(event.extensions))} in {event.ms:.0f} ms "
            f"({escape(', '.join(event.changed))})",
            highlight=False,
        )
    elif isinstance(event, Refreshed):
        out.print(
            f"[green]refreshed[/] the page of {escape(event.extension)} in {event.ms:.0f} ms "
            f"({event.pages} open)",
            highlight=False,
        )
    elif isinstance(event, Rejected):
        for finding in event.findings:
            style = SEVERITY_STYLES.get(finding.severity, "")
            where = f"{finding.where}: " if finding.where else ""
            field = f"{finding.field}: " if finding.field else ""
            err.print(
                f"[{style}]{finding.severity}[/] {escape(where + field + finding.message)}", highlight=False
            )
            if finding.hint:
                err.print(f"    [bold]what to do:[/] {escape(finding.hint)}", highlight=False)
        if any(finding.severity == "error" for finding in event.findings):
            err.print("not reloaded: what runs is unchanged; still watching", style="yellow", highlight=False)
    elif isinstance(event, Failed):
        where = f"{event.file}:{event.line}: " if event.file else ""
        err.print(
            f"[bold red]error[/] {escape(where)}{escape(event.extension)} {escape(event.message)}",
            highlight=False,
        )
        if event.hint:
            err.print(f"    [bold]what to do:[/] {escape(event.hint)}", highlight=False)
        err.print("it is stopped until the next save; still watching", style="yellow", highlight=False)
    elif isinstance(event, Unconsented):
        err.print(
            f"[yellow]not started:[/] {escape(event.extension)} asks for permissions that were not granted",
            highlight=False,
        )
