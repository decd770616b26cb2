"""The author's commands of ``symphony``: ``new`` (generate an extension project) and ``validate``.

Exit codes of ``symphony new``: 0 the project was written; 1 it could not be (the kit of that kind is
not installed, the folder is in the way); 2 the command line was wrong (unknown kind, a name that
cannot be a distribution, an import name or an extension id).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

KINDS = ("instrument", "operator", "motif")


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _fail(message: str, hint: str | None = None, *, code: int = 1) -> None:
    console = Console(stderr=True)
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if hint:
        console.print(f"[bold]what to do:[/] {escape(hint)}", highlight=False)
    sys.exit(code)


@click.command()
@click.argument("kind", type=click.Choice(KINDS))
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    help="The project's folder (default: ./NAME as a distribution name); it must not exist or be empty.",
)
@click.option("--id", "ext_id", metavar="PUBLISHER.NAME", help="The extension id, if not derived from NAME.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def new(kind: str, name: str, folder: Path | None, ext_id: str | None, as_json: bool) -> None:
    """Generate a complete extension project of KIND: instrument, operator or motif.

    NAME is the distribution name, publisher first (acme-sentiment: the extension id becomes
    acme.sentiment and the import name acme_sentiment), or the id itself (acme.sentiment). The
    project has its pyproject.toml with the entry point and the kit it depends on, the manifest
    symphony.toml, a config model, a working example implementation, tests that run it in a real host,
    a README and a license placeholder. It passes its own tests and builds as it is.

    The template comes from the kit of that kind (symphony-instruments, symphony-operators,
    symphony-motifs), which must be installed.

    \b
    Examples:
      symphony new instrument acme-sentiment
      symphony new operator acme.route-stats --dir ~/code/route-stats
      symphony new operator acme-clean --json

    \b
    Exit codes: 0 written; 1 the kit is missing or the folder is in the way; 2 bad arguments.
    """
    from ._scaffold import BadName, ScaffoldError, new_project

    try:
        created = new_project(kind, name, folder, ext_id=ext_id)
    except BadName as exc:
        _fail(exc.message, exc.hint, code=2)
    except ScaffoldError as exc:
        _fail(exc.message, exc.hint)
    if as_json:
        _print_json(created.as_json())
        return
    names = created.names
    console = Console()
    console.print(
        f"[bold green]created[/] the {kind} [bold]{escape(names.id)}[/] in {escape(str(created.folder))}",
        highlight=False,
    )
    for path in created.files:
        console.print(f"  {escape(str(path.relative_to(created.folder)))}", highlight=False)
    console.print("\n[bold]next:[/]")
    for step in (
        f"cd {created.folder}",
        'python -m pip install -e ".[test]"',
        "python -m pytest",
        "symphony validate .",
    ):
        console.print(f"  {escape(step)}", highlight=False)
