"""``symphony install / upgrade / uninstall``: extensions in environments of their own (see ``_install``).

A command that would grant anything asks first, on a terminal; without one it grants nothing unless told
to with ``--yes`` (and ``--no-grant`` installs without granting).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ._output import console, print_json
from ._session import fail, open_host, person, print_consent

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of text.")
_yes = click.option(
    "--yes", "-y", is_flag=True, help="Do not ask: install and grant what it requests (for scripts)."
)
_no_grant = click.option(
    "--no-grant", is_flag=True, help="Install without granting anything (`symphony grant` it later)."
)
_outside = click.option(
    "--allow-outside-files",
    is_flag=True,
    help="Install a wheel that carries .pth files or files outside its own packages (after looking at them).",
)


@click.command()
@click.argument("requirement", required=False)
@click.option(
    "--from",
    "wheel",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Install this local wheel instead of resolving a name on the index.",
)
@_yes
@_no_grant
@_outside
@_json
@click.pass_context
def install(
    ctx: click.Context,
    requirement: str | None,
    wheel: Path | None,
    yes: bool,
    no_grant: bool,
    allow_outside_files: bool,
    as_json: bool,
) -> None:
    """Install an extension into an environment of its own, after showing what it asks for.

    Wheels only (an sdist would run build code); the wheel is read without running anything, and its
    consent summary shown before anything is created.

    \b
    Examples:
      symphony install acme-weather
      symphony install acme-weather==1.2.0 --yes
      symphony install --from dist/acme_weather-1.2.0-py3-none-any.whl
    """

    with open_host(ctx) as host:
        done = host.install(
            requirement,
            wheel=wheel,
            grant=not no_grant,
            allow_outside_files=allow_outside_files,
            confirm=_asker(yes, no_grant, as_json),
            actor=person(),
        )
    _report(done, as_json)


@click.command()
@click.argument("extension")
@click.option(
    "--from", "wheel", type=click.Path(dir_okay=False, path_type=Path), help="Upgrade to this local wheel."
)
@_yes
@_no_grant
@_outside
@_json
@click.pass_context
def upgrade(
    ctx: click.Context,
    extension: str,
    wheel: Path | None,
    yes: bool,
    no_grant: bool,
    allow_outside_files: bool,
    as_json: bool,
) -> None:
    """Upgrade an installed extension (or distribution) to its newest release, showing what it asks for
    that is new, widened or dropped, and asking again for what is new.

    \b
    Examples:
      symphony upgrade acme.weather
      symphony upgrade acme.weather --from dist/acme_weather-1.3.0-py3-none-any.whl
    """

    with open_host(ctx) as host:
        done = host.upgrade(
            extension,
            wheel=wheel,
            grant=not no_grant,
            allow_outside_files=allow_outside_files,
            confirm=_asker(yes, no_grant, as_json),
            actor=person(),
        )
    _report(done, as_json)


@click.command()
@click.argument("extension")
@click.option("--purge", is_flag=True, help="Also delete its data, cache and config file.")
@_yes
@_json
@click.pass_context
def uninstall(ctx: click.Context, extension: str, purge: bool, yes: bool, as_json: bool) -> None:
    """Remove an extension installed with `symphony install`: its environment and its grants.

    \b
    Examples:
      symphony uninstall acme.weather
      symphony uninstall acme.weather --purge --yes
    """

    if purge and not yes:
        if not sys.stdin.isatty():
            fail(
                f"not uninstalled: --purge deletes the data of {extension}; pass --yes to confirm from a script"
            )
        click.confirm(f"Uninstall {extension} and delete its data?", abort=True)
    with open_host(ctx) as host:
        done = host.uninstall(extension, purge=purge, actor=person())
    _report(done, as_json)


def _asker(yes: bool, no_grant: bool, as_json: bool) -> Any:
    """What confirms a plan: nobody with --yes; a person on a terminal; else a refusal that says why."""
    if yes:
        return None

    def ask(plan: Any) -> bool:

        out = console(stderr=as_json)
        _print_plan(out, plan)
        if plan.action == "upgrade" and not plan.asks_again:
            return True  # it asks for nothing new: what was granted carries over
        if not sys.stdin.isatty():
            verb = "installed" if plan.action == "install" else "upgraded"
            fail(f"not {verb}: no terminal to ask on; pass --yes to {plan.action} and grant from a script")
        question = f"{plan.action.capitalize()} {plan.wheel.distribution} {plan.wheel.version}"
        return click.confirm(question + ("?" if no_grant else " and grant what it asks for?"), default=False)

    return ask


def _print_plan(out: Any, plan: Any) -> None:

    wheel = plan.wheel
    head = f"{plan.action} {wheel.distribution} {wheel.version}"
    if plan.previous is not None:
        head += f" (installed: {plan.previous.version})"
    out.print(f"[bold]{escape(head)}[/] from {escape(plan.source)}", highlight=False)
    out.print(f"wheel {escape(wheel.path.name)} sha256 {wheel.sha256}", style="dim", highlight=False)
    for finding in wheel.findings:
        out.print(
            f"[yellow]outside its packages:[/] {escape(finding.file)}: {escape(finding.why)}", highlight=False
        )
    for change in plan.changes:
        for label, items in (("NEW", change.new), ("WIDENED", change.widened), ("dropped", change.dropped)):
            for item in items:
                out.print(f"  {label}: {escape(change.extension)} {escape(item)}", highlight=False)
    for extension, consent in zip(wheel.extensions, plan.consents, strict=True):
        out.print(f"[bold]{escape(extension.id)}[/] ({extension.kind})", highlight=False)
        print_consent(out, consent, "isolated")


def _report(done: Any, as_json: bool) -> None:
    if as_json:
        print_json(done.as_json())
        return
    out = console()
    if done.action == "declined":
        out.print(f"not installed: {done.distribution} {done.version} was declined", highlight=False)
        sys.exit(1)
    where = "" if done.environment is None else f" in {done.environment}"
    out.print(
        f"{done.action} {done.distribution} {done.version}{where} ({done.seconds:.1f} s)", highlight=False
    )
    for extension, granted in done.granted.items():
        out.print(f"  granted {extension}: {', '.join(granted)}", highlight=False)
