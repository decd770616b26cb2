"""How ``symphony`` prints: for people in a terminal, plain for pipes and files, JSON for machines.

A terminal gets rich text and tables fitted to its width. When standard output is not a terminal (a
pipe, a file, a CI log), nothing is wrapped and tables are plain columns, one row per line, so that
``grep`` and ``cut`` see each extension whole. ``--json`` output is stable: every object it prints
carries ``schema``, the version of its shape (`JSON_SCHEMA`), which changes only when a key is removed or
changes meaning; keys may be added at any time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

JSON_SCHEMA = 1
"""The version of the shapes ``--json`` prints (docs/reference/cli.md lists them)."""

Cell = str | Text
"""A table cell: plain text (shown as it is, never read as markup), or styled text."""


def console(*, stderr: bool = False) -> Console:
    """A console for people: rich in a terminal; elsewhere plain, with nothing wrapped."""
    found = Console(stderr=stderr)
    if found.is_terminal:
        return found
    return Console(stderr=stderr, soft_wrap=True, no_color=True, highlight=False)


def print_json(data: Any, *, versioned: bool = True) -> None:
    """Print ``data`` as JSON; an object (or each object of a list) gets ``schema`` first."""
    if versioned:
        data = [_versioned(item) for item in data] if isinstance(data, list) else _versioned(data)
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _versioned(item: Any) -> Any:
    return {**item, "schema": JSON_SCHEMA} if isinstance(item, dict) else item


def print_table(
    out: Console, columns: Sequence[str], rows: Sequence[Sequence[Cell]], *, title: str | None = None
) -> None:
    """Rows under their column names: a table fitted to a terminal, else plain aligned columns.

    The first column (an id) never wraps. Plain output has no title, no borders and no trailing spaces:
    one header line, then one line per row.
    """
    if out.is_terminal:
        table = Table(title=title, title_justify="left")
        for number, name in enumerate(columns):
            table.add_column(name, no_wrap=number == 0, overflow="fold")
        for row in rows:
            table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
        out.print(table)
        return
    texts = [[" ".join(_plain(cell).split()) for cell in row] for row in rows]
    widths = [max([len(name), *(len(row[n]) for row in texts)]) for n, name in enumerate(columns)]
    for line in [list(columns), *texts]:
        padded = [text.ljust(width) for text, width in zip(line, widths, strict=True)]
        click.echo("  ".join(padded).rstrip())


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell
