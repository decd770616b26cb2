"""``symphony install / upgrade / uninstall``: extensions in environments of their own (see ``_install``).

A command that would grant anything asks first, on a terminal: about each flagged permission (files
beyond the extension's own folders, network, environment variables, programs), default no, then for a
confirmation. Without a terminal it does nothing unless told to with ``--yes``, which grants only what is
not flagged; ``--all`` grants the flagged permissions too, and ``--no-grant`` installs without granting.
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
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask (for scripts): install, and grant what it requests that is not flagged.",
)
_all = click.option(
    "--all",
    "everything",
    is_flag=True,
    help="With --yes, grant the flagged permissions too (files elsewhere, network, environment, programs).",
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
@_all
@_no_grant
@_outside
@_json
@click.pass_context
def install(
    ctx: click.Context,
    requirement: str | None,
    wheel: Path | None,
    yes: bool,
    everything: bool,
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
      symphony install acme-weather==1.2.0 --yes         grants what is not flagged
      symphony install acme-weather==1.2.0 --yes --all   grants everything it asks for
      symphony install --from dist/acme_weather-1.2.0-py3-none-any.whl
    """

    with open_host(ctx) as host:
        done = host.install(
            requirement,
            wheel=wheel,
            grant=not no_grant,
            allow_outside_files=allow_outside_files,
            confirm=_asker(yes, everything, no_grant, as_json),
            actor=person(),
        )
    _report(done, as_json)


@click.command()
@click.argument("extension")
@click.option(
    "--from", "wheel", type=click.Path(dir_okay=False, path_type=Path), help="Upgrade to this local wheel."
)
@_yes
@_all
@_no_grant
@_outside
@_json
@click.pass_context
def upgrade(
    ctx: click.Context,
    extension: str,
    wheel: Path | None,
    yes: bool,
    everything: bool,
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
            confirm=_asker(yes, everything, no_grant, as_json),
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


def _asker(yes: bool, everything: bool, no_grant: bool, as_json: bool) -> Any:
    """What confirms a plan and chooses what it grants: with --yes, nobody (the unflagged permissions, or
    all of them with --all); a person on a terminal, asked about each flagged one; else a refusal."""
    if yes and (everything or no_grant):
        return None

    if yes:  # the install is decided; only what it grants is chosen, from the plan
        from symphony_core._runtime._install import GrantChooser

        return GrantChooser(lambda plan: _unflagged(console(stderr=True), plan))

    def ask(plan: Any) -> bool | list[str]:
        out = console(stderr=as_json)
        _print_plan(out, plan)
        if plan.action == "upgrade" and not plan.asks_again:
            return True  # it asks for nothing new: what was granted carries over
        if not sys.stdin.isatty():
            verb = "installed" if plan.action == "install" else "upgraded"
            fail(f"not {verb}: no terminal to ask on; pass --yes to {plan.action} and grant from a script")
        question = f"{plan.action.capitalize()} {plan.wheel.distribution} {plan.wheel.version}"
        if no_grant:
            return click.confirm(question + "?", default=False)
        chosen = _choose(plan)
        return click.confirm(question + " and grant what you chose?", default=False) and chosen

    return ask


def _choose(plan: Any) -> list[str]:
    """What a person grants: everything new that is not flagged, and each flagged scope they say yes to."""
    from symphony_core._security._grants import describe

    chosen: list[str] = []
    for consent in plan.consents:
        flagged = set(consent.flagged)
        for atom in consent.new:
            if atom not in flagged or click.confirm(
                f"Grant {consent.extension} {describe(atom)} (flagged: it reaches beyond its own folders)?",
                default=False,
            ):
                chosen.append(describe(atom))
    return chosen


def _unflagged(out: Any, plan: Any) -> list[str]:
    """With --yes alone: the new permissions that are not flagged; says what is left for a person."""
    from symphony_core._security._grants import describe

    chosen: list[str] = []
    for consent in plan.consents:
        flagged = set(consent.flagged)
        chosen += [describe(atom) for atom in consent.new if atom not in flagged]
        left = [describe(atom) for atom in consent.new if atom in flagged]
        if left:
            out.print(
                f"not granted to {escape(consent.extension)} (flagged; `symphony grant {escape(consent.extension)}`"
                f" to choose, or --all): {escape(', '.join(left))}",
                highlight=False,
            )
    return chosen


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
