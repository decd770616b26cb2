"""The ``symphony`` command: list, inspect, enable and disable extensions, check this host, and (for
authors) generate and validate extension projects.

Exit codes: 0 success; 1 the command could not do what was asked (unknown id, unreadable state, a
doctor check that failed); 2 the command line itself was wrong.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._author_cli import new, validate
from ._errors import SymphonyError

STATE_STYLES = {"failed": "bold red", "active": "green", "validated": "cyan"}

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table."
)


COMMANDS_GROUP = "symphony.commands"


class _Commands(click.Group):
    """The built-in commands plus those other distributions add through the ``symphony.commands`` group.

    Each entry point names one command (``ui = "symphony_motifs._cli:ui"``). Added commands are found
    only when asked for, so the built-in ones never pay for them; a built-in name cannot be taken over,
    and an added command that fails to load, or that two distributions both claim, becomes a command
    that explains the problem instead of breaking ``symphony`` as a whole.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_added_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        points = _added_commands().get(cmd_name)
        if not points:
            return None
        if len(points) > 1:
            owners = ", ".join(sorted(_owner(point) for point in points))
            return _unusable(
                cmd_name,
                f"the command {cmd_name!r} is added by more than one distribution ({owners}); "
                "uninstall one of them",
            )
        point = points[0]
        try:
            loaded = point.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of a third-party command is reported
            return _unusable(
                cmd_name,
                f"the command {cmd_name!r} from {_owner(point)} failed to load ({point.value}): "
                f"{type(exc).__name__}: {exc}; reinstall or upgrade that distribution",
            )
        if not isinstance(loaded, click.Command):
            return _unusable(
                cmd_name,
                f"the entry point {cmd_name!r} = {point.value!r} of {_owner(point)} in group "
                f"{COMMANDS_GROUP!r} is a {type(loaded).__name__}, not a click command",
            )
        return loaded


def _added_commands() -> dict[str, list[Any]]:
    from importlib_metadata import entry_points

    found: dict[str, list[Any]] = {}
    for point in entry_points(group=COMMANDS_GROUP):
        found.setdefault(point.name, []).append(point)
    return found


def _owner(point: Any) -> str:
    dist = point.dist
    return "an unknown distribution" if dist is None else f"{dist.name} {dist.version}"


def _unusable(name: str, problem: str) -> click.Command:
    def explain() -> None:
        _fail(problem)

    return click.Command(
        name,
        callback=explain,
        help=f"(unusable) {problem}",
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SYMPHONY_HOME",
    help="Where the host keeps its state (default: $SYMPHONY_HOME, else the user data folder).",
)
@click.version_option(package_name="symphony-sdk-core", prog_name="symphony")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Symphony: find, check and run the extensions installed in this Python environment.

    \b
    Examples:
      symphony list                 every installed extension and its state
      symphony inspect acme.digits  one extension's manifest, permissions and problems
      symphony disable acme.digits  keep an extension from loading
      symphony permissions acme.digits   what it asks for, why, and what was granted
      symphony grant acme.digits    consent to what it asks for (shows the summary first)
      symphony revoke acme.digits   withdraw every grant
      symphony doctor               what this host can and cannot do here
      symphony new operator acme-totals   a complete extension project (for authors)
      symphony validate .           check a project or a wheel before publishing it

    Installed distributions may add commands through the `symphony.commands` entry-point group
    (symphony-motifs adds `symphony ui`); they are listed below with the built-in ones.
    """
    ctx.obj = home


@contextmanager
def _host(ctx: click.Context) -> Iterator[Any]:
    from ._host import Host

    try:
        host = Host(ctx.obj, isolation="auto")  # extension code runs in workers unless trusted
    except SymphonyError as exc:
        _fail(str(exc))
    try:
        yield host
    except SymphonyError as exc:
        _fail(str(exc))
    finally:
        host.close()


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    sys.exit(1)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@main.command("list")
@click.option("--rescan", is_flag=True, help="Ignore the discovery index and scan the environment again.")
@json_option
@click.pass_context
def list_(ctx: click.Context, rescan: bool, as_json: bool) -> None:
    """List every installed extension, failed ones included, with the reason they failed.

    \b
    Examples:
      symphony list
      symphony list --json | jq '.[] | select(.state == "failed")'
    """
    with _host(ctx) as host:
        infos = host.discover(rescan=rescan)
    if as_json:
        _print_json([info.as_json() for info in infos])
        return
    console = Console()
    if not infos:
        console.print("No extensions installed. Install one with pip, e.g. `pip install <extension>`.")
        return
    table = Table(title=f"{len(infos)} extension(s)", title_justify="left")
    for column in ("id", "kind", "version", "state", "distribution", "problem"):
        table.add_column(column, overflow="fold")
    for info in infos:
        state = info.state.value if info.enabled else f"{info.state.value} (disabled)"
        problem = "" if info.problem is None else info.problem.message
        style = STATE_STYLES.get(info.state.value, "")
        table.add_row(
            escape(info.id),
            info.kind,
            escape(info.version),
            f"[{style}]{state}[/]" if style else state,
            escape(info.distribution),
            escape(problem),
        )
    console.print(table)


@main.command()
@click.argument("extension")
@json_option
@click.pass_context
def inspect(ctx: click.Context, extension: str, as_json: bool) -> None:
    """Show one extension's manifest, requested permissions and problems, without importing it.

    \b
    Example:
      symphony inspect acme.digits
    """
    with _host(ctx) as host:
        info = host.inspect(extension)
        consent = host.consent(extension) if info.manifest is not None else None
    if as_json:
        data = info.as_json()
        data["consent"] = None if consent is None else consent.as_json()
        _print_json(data)
        return
    console = Console()
    console.print(
        f"[bold]{escape(info.name or info.id)}[/] ({escape(info.id)}) {info.kind} {escape(info.version)}"
    )
    if info.summary:
        console.print(escape(info.summary))
    console.print(f"distribution: {escape(info.distribution)}   entry point: {escape(info.entry_point)}")
    console.print(f"manifest: {escape(info.manifest_file or '-')}")
    console.print(f"state: {info.state.value}{'' if info.enabled else ' (disabled)'}")
    if info.problem is not None:
        console.print(f"[bold red]problem:[/] {escape(info.problem.message)}", highlight=False)
        if info.problem.hint:
            console.print(f"[bold]what to do:[/] {escape(info.problem.hint)}", highlight=False)
    if consent is not None:
        _print_consent(console, consent)


def _print_consent(console: Console, consent: Any) -> None:
    """The consent summary a person reads before granting: each request, its reason and its status."""
    from ._grants import atoms, describe

    granted = atoms(consent.granted.permissions) if consent.granted else set()
    previous = atoms(consent.previous.permissions) if consent.previous else set()
    new = set(consent.new)
    denied = dict(consent.denied)
    refused = dict(consent.refused)
    by_policy = set(consent.by_policy)
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
            console.print(
                f"  - {escape(describe(atom))}: {escape(permission['reason'])}  {mark}", highlight=False
            )
            if atom in reach:
                _print_reach(console, reach[atom])
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
    console.print(
        "enforced here by the guard (in-process audit hooks); not a sandbox: native code bypasses it",
        style="dim",
    )


_NOTE_STYLES = {"refused": "bold red", "danger": "red", "warning": "yellow", "info": "dim"}


def _print_reach(console: Console, reach: Any) -> None:
    """What one scope reaches on this machine, under its line in the consent summary."""
    if reach.path is not None and reach.path != reach.scope:
        console.print(f"      means {escape(reach.path)}", style="dim", highlight=False)
    for note in reach.notes:
        mark = "-" if note.severity == "info" else "!"
        console.print(
            f"      {mark} {escape(note.message)}", style=_NOTE_STYLES[note.severity], highlight=False
        )


@main.command()
@click.argument("extension")
@json_option
@click.pass_context
def permissions(ctx: click.Context, extension: str, as_json: bool) -> None:
    """Show what an extension asks to be allowed to do, why, and what was granted.

    \b
    Example:
      symphony permissions acme.digits
    """
    with _host(ctx) as host:
        consent = host.consent(extension)
    if as_json:
        _print_json(consent.as_json())
        return
    _print_consent(Console(), consent)


@main.command()
@click.argument("extension")
@click.argument("permission", nargs=-1)
@click.option("--yes", "-y", is_flag=True, help="Grant without asking (for scripts).")
@json_option
@click.pass_context
def grant(ctx: click.Context, extension: str, permission: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Grant the installed version of an extension what it requests (or only the given types).

    Shows the consent summary first and asks for confirmation, unless --yes is given.

    \b
    Examples:
      symphony grant acme.digits
      symphony grant acme.digits fs.read net.connect --yes
    """
    with _host(ctx) as host:
        if not yes:
            _print_consent(Console(), host.consent(extension))
            if not sys.stdin.isatty():
                _fail("not granted: no terminal to ask on; pass --yes to grant from a script")
            click.confirm("Grant these permissions?", abort=True)
        consent = host.grant(extension, permission, actor=_person())
    if as_json:
        _print_json(consent.as_json())
        return
    Console().print(
        f"granted {', '.join(permission) or 'all requested permissions'} to {extension} {consent.version}"
    )


@main.command()
@click.argument("extension")
@click.pass_context
def revoke(ctx: click.Context, extension: str) -> None:
    """Withdraw every permission granted to an extension (all versions); it stops if running.

    \b
    Example:
      symphony revoke acme.digits
    """
    with _host(ctx) as host:
        host.revoke(extension, actor=_person())
    Console().print(f"revoked every grant of {extension}")


@main.command()
@click.argument("extension")
@click.option(
    "--call", "calls", multiple=True, metavar="METHOD", help="Also call this method (no arguments)."
)
@json_option
@click.pass_context
def learn(ctx: click.Context, extension: str, calls: tuple[str, ...], as_json: bool) -> None:
    """Run an extension allowing everything, and propose the permissions its manifest should request.

    The extension is activated (and each --call method called) while the guard records the files,
    connections and programs it uses. Only what Python reports is seen: native code (polars,
    onnxruntime, ctypes) is not, so review the proposal. Consent is not asked: use this on your own
    extension, on your own machine.

    \b
    Example:
      symphony learn acme.digits --call warm_up >> src/acme_digits/symphony.toml
    """
    with _host(ctx) as host, host.learning(extension) as recorder:
        host.start(extension)
        for method in calls:
            host.call(extension, method)
        host.deactivate(extension)
    if as_json:
        _print_json(recorder.proposal())
        return
    click.echo(recorder.toml())


@main.group()
def config() -> None:
    """Show, set and describe an extension's config.

    Values are layered: the model's defaults < the config file
    $SYMPHONY_HOME/config/ID.toml < environment variables SYMPHONY_<ID>__<FIELD> < values set here.
    These commands import the extension's config model (not the rest of its code).
    """


@config.command("show")
@click.argument("extension")
@json_option
@click.pass_context
def config_show(ctx: click.Context, extension: str, as_json: bool) -> None:
    """Show the resolved config and where each value came from; secrets are masked.

    \b
    Example:
      symphony config show acme.digits
    """
    from ._config import config_file, env_prefix, public_dump

    with _host(ctx) as host:
        resolved = host.config(extension)
        home = host.home
    if resolved is None:
        _fail(f"{extension}: has no config (its manifest names no `config` model)")
    if as_json:
        _print_json(resolved.as_json())
        return
    values = _flatten(public_dump(resolved.config))
    table = Table(title=f"config of {extension}", title_justify="left")
    for column in ("key", "value", "from"):
        table.add_column(column, overflow="fold")
    for key, source in resolved.sources.items():
        table.add_row(key, json.dumps(values.get(key)), str(source))
    console = Console()
    console.print(table)
    console.print(
        f"file: {config_file(home, extension)}   environment: {env_prefix(extension)}<FIELD>", highlight=False
    )


@config.command("set")
@click.argument("extension")
@click.argument("key")
@click.argument("value")
@click.pass_context
def config_set(ctx: click.Context, extension: str, key: str, value: str) -> None:
    """Set one value (dotted KEY for nested fields); the whole config is validated before it is stored.

    VALUE is taken as text unless it is a JSON object, array or null.

    \b
    Examples:
      symphony config set acme.digits threshold 0.8
      symphony config set acme.digits batch.max_size 64
    """
    with _host(ctx) as host:
        host.set_config(extension, key, value, actor=_person())
    Console().print(f"set {key} of {extension}")


@config.command("schema")
@click.argument("extension")
@click.pass_context
def config_schema(ctx: click.Context, extension: str) -> None:
    """Print the JSON Schema of an extension's config (secrets are marked writeOnly).

    \b
    Example:
      symphony config schema acme.digits > digits.schema.json
    """
    with _host(ctx) as host:
        schema = host.config_schema(extension)
    if schema is None:
        _fail(f"{extension}: has no config (its manifest names no `config` model)")
    _print_json(schema)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _person() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@main.command()
@click.argument("extension")
@click.pass_context
def enable(ctx: click.Context, extension: str) -> None:
    """Allow an extension to load (remembered across restarts), lifting its quarantine if it has one.

    An extension whose isolated workers kept crashing is quarantined: `symphony list` shows it failed
    with the reason, and no host starts it until it is enabled again here.

    \b
    Example:
      symphony enable acme.digits
    """
    with _host(ctx) as host:
        lifted = host.enable(extension)
    Console().print(f"enabled {extension}" + (" (quarantine lifted)" if lifted else ""))


@main.command()
@click.argument("extension")
@click.pass_context
def disable(ctx: click.Context, extension: str) -> None:
    """Keep an extension from loading (remembered across restarts).

    \b
    Example:
      symphony disable acme.digits
    """
    with _host(ctx) as host:
        host.disable(extension)
    Console().print(f"disabled {extension}")


@main.command()
@json_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check this host: Python, Symphony's packages, the state database, and what is enforced here.

    \b
    Example:
      symphony doctor --json
    """
    from ._grants import read_policy
    from ._sandbox._probe import probe
    from ._sandbox._quota import report as disk_report

    sandbox = probe()
    with _host(ctx) as host:
        infos = host.discover()
        catalog = host.catalog
        assert catalog is not None
        limits = read_policy(host.policy_file).limits.for_workers()
        report: dict[str, Any] = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "home": str(host.home.root),
            "state_file": str(host.home.state_file),
            "packages": dict(sorted(catalog.packages.items())),
            "extensions": {
                "total": len(infos),
                "failed": sum(1 for info in infos if info.state.value == "failed"),
            },
            "enforcement": {
                "guard": (
                    "in-process audit hooks see Python-level file, socket and subprocess use; they are not a "
                    "sandbox: native code (polars, onnxruntime, ctypes) bypasses them"
                ),
                "isolated": sandbox.summary(),
            },
            "sandbox": sandbox.as_json(),
            "limits": {name: getattr(limits, name) for name in limits.__struct_fields__},
            "disk": disk_report(host.home, sorted({info.id for info in infos}), limits),
        }
    if as_json:
        _print_json(report)
        return
    console = Console()
    console.print(f"Python {report['python']} on {report['platform']}")
    console.print(f"home: {report['home']}")
    for name, version in report["packages"].items():
        console.print(f"  {name} {version}")
    failed = report["extensions"]["failed"]
    console.print(
        f"extensions: {report['extensions']['total']} installed, "
        + (f"[bold red]{failed} failed[/] (see `symphony list`)" if failed else "none failed")
    )
    console.print("[bold]enforcement[/]")
    for tier, text in report["enforcement"].items():
        console.print(f"  {tier}: {escape(text)}", highlight=False)
    console.print(
        f"[bold]isolated tier on this machine[/] (probed: {escape(sandbox.kernel or sandbox.platform)})"
    )
    for name, mechanism in sandbox.mechanisms.items():
        mark = "[green]yes[/]" if mechanism.available else "[bold red]no[/]"
        console.print(f"  {name}: {mark} - {escape(mechanism.detail)}", highlight=False)
    console.print("  enforced in a worker:")
    for concern, text in sandbox.enforced().items():
        console.print(f"    {concern}: {escape(text)}", highlight=False)
    console.print("  [bold]not enforced:[/]")
    for text in sandbox.not_enforced():
        console.print(f"    - {escape(text)}", highlight=False)
    _print_limits(console, report["limits"], report["disk"])


def _print_limits(console: Console, limits: dict[str, int | None], disk: dict[str, dict[str, Any]]) -> None:
    """The limits of each worker, and what each extension's folders take against its quota."""
    from pydantic import ByteSize

    def size(value: int | None) -> str:
        return "no limit" if value is None else ByteSize(value).human_readable()

    def number(value: int | None, unit: str = "") -> str:
        return "no limit" if value is None else f"{value:,}{unit}"

    console.print("[bold]limits of each isolated worker[/] (the policy file's `\\[limits]`)")
    for name, text in (
        ("memory", size(limits["memory"])),
        ("tasks", number(limits["tasks"])),
        ("CPU time", number(limits["cpu_seconds"], " s")),
        ("open files", number(limits["open_files"])),
        ("file size", size(limits["file_size"]) + " (a write past it fails with EFBIG)"),
        (
            "disk",
            f"{size(limits['disk'])} and {number(limits['disk_entries'])} entries per extension "
            "({data} and {cache} together, counted by the host)",
        ),
    ):
        console.print(f"  {name}: {text}", highlight=False)
    if not disk:
        return
    console.print("[bold]disk use of each extension[/] ({data} and {cache})", highlight=False)
    for extension, usage in disk.items():
        over = " [bold red]over its quota[/]" if usage["over"] else ""
        console.print(
            f"  {escape(extension)}: {size(usage['bytes'])} of {size(limits['disk'])}, "
            f"{usage['entries']:,} of {number(limits['disk_entries'])} entries{over}",
            highlight=False,
        )


main.add_command(new)  # the author's commands, from their own module
main.add_command(validate)
