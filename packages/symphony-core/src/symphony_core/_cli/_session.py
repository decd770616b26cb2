"""What every command shares: a host opened for the person at the terminal, a failure that exits with
its message, and the consent summary printed before a grant."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from symphony_core._model._errors import SymphonyError

from ._output import console

ENFORCED_BY = {
    "isolated": "enforced by the kernel: it runs in isolated worker processes (Landlock, namespaces, "
    "seccomp); `symphony doctor` shows what this machine enforces",
    "guard": "enforced in the host's own process by the guard (in-process audit hooks), which is not a "
    "sandbox: native code bypasses it; it runs there because the policy file trusts it, or this "
    "platform has no isolated tier",
    "none": "not enforced: the host runs it in its own process without the guard",
}
"""What enforces a grant, by the tier the extension runs in (`Host.tier`)."""


@contextmanager
def open_host(ctx: click.Context) -> Iterator[Any]:
    from symphony_core._runtime._host import Host

    try:
        # Extension code runs in workers unless trusted; what is done here is audited as the person's.
        host = Host(ctx.obj, isolation="auto", actor=person())
    except SymphonyError as exc:
        fail(str(exc))
    try:
        yield host
    except SymphonyError as exc:
        fail(str(exc))
    finally:
        host.close()


def fail(message: str) -> NoReturn:
    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(1)


def person() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def print_consent(console: Console, consent: Any, tier: str) -> None:
    """The consent summary a person reads before granting: each request, its reason, its status, and
    what will enforce the grant."""
    from symphony_core._security._grants import atoms, describe

    granted = atoms(consent.granted.permissions) if consent.granted else set()
    previous = atoms(consent.previous.permissions) if consent.previous else set()
    new = set(consent.new)
    denied = dict(consent.denied)
    refused = dict(consent.refused)
    by_policy = set(consent.by_policy)
    flagged = set(consent.flagged)
    reach = {(item.permission, item.scope): item for item in consent.reach}
    for warning in consent.warnings:
        console.print(
            f"[bold yellow]look twice:[/] {escape(warning.field)} {escape(warning.message)}", highlight=False
        )
    console.print(f"requests {len(consent.requested)} permission(s):")
    for permission in consent.requested:
        for atom in sorted(atoms([permission])):
            if atom in denied:
                mark = f"[red]denied by policy rule {denied[atom]}[/]"
            elif atom in refused:
                mark = "[bold red]refused: no one can grant it[/]"
            elif atom in granted:
                mark = f"[green]granted to {consent.version}[/]"
            elif atom in by_policy:
                mark = "[green]allowed by policy[/]"
            elif atom in previous:
                mark = f"[green]granted to {consent.previous.version}, carries over[/]"
            elif atom in new and consent.previous is not None:
                mark = f"[bold yellow]NEW since {consent.previous.version}: needs consent[/]"
            else:
                mark = "[yellow]needs consent[/]"
            if atom in flagged and atom in new:
                mark += ", [bold yellow]flagged[/]"  # reaches beyond its own folders: asked one by one
            console.print(
                f"  - {escape(describe(atom))}: {escape(permission['reason'])}  {mark}", highlight=False
            )
            if atom in reach:
                print_reach(console, reach[atom])
    if consent.granted is not None:
        console.print(
            f"granted by {consent.granted.granted_by} at {consent.granted.granted_at:%Y-%m-%d %H:%M} UTC"
        )
    if consent.satisfied:
        console.print("[green]consent complete: it may run[/]")
    else:
        console.print(
            f"[yellow]it will not run until consent is given:[/] symphony grant {consent.extension}"
        )
    console.print(ENFORCED_BY[tier], style="dim", highlight=False)


_NOTE_STYLES = {"refused": "bold red", "danger": "red", "warning": "yellow", "info": "dim"}


def print_reach(console: Console, reach: Any) -> None:
    """What one scope reaches on this machine, under its line in the consent summary."""
    if reach.path is not None and reach.path != reach.scope:
        console.print(f"      means {escape(reach.path)}", style="dim", highlight=False)
    for note in reach.notes:
        mark = "-" if note.severity == "info" else "!"
        console.print(
            f"      {mark} {escape(note.message)}", style=_NOTE_STYLES[note.severity], highlight=False
        )
