"""The ``symphony`` command: list, inspect, enable and disable extensions, check this host, read its
audit log, and (for authors) generate and validate extension projects.

Exit codes: 0 success; 1 the command could not do what was asked (unknown id, unreadable state, a
doctor verdict of broken); 2 the command line itself was wrong; 130 stopped by Ctrl-C.

What it prints for people is plain text when standard output is not a terminal, never wrapped; what
``--json`` prints carries the version of its shape (see ``_output``).
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from symphony_core._model._errors import StateError, SymphonyError

from ._author import new, schema, validate
from ._dev import dev
from ._install import install, uninstall, upgrade
from ._marketplace import catalog, search
from ._output import console, print_json, print_table
from ._publish import publish
from ._run import call, run
from ._session import fail, open_host, person, print_consent

STATE_STYLES = {"failed": "bold red", "active": "green", "validated": "cyan"}
INTERRUPTED = 130
"""The exit status of a command stopped by Ctrl-C, as shells report a process SIGINT ended."""

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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()
        except click.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):  # Ctrl-C at a prompt
                _interrupted()
            raise


def _interrupted() -> NoReturn:
    click.echo("stopped (Ctrl-C)", err=True)
    sys.exit(INTERRUPTED)


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
        fail(problem)

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
      symphony doctor               what this host can and cannot do here, and a verdict
      symphony audit acme.digits    what happened to an extension, oldest first
      symphony new operator acme-totals   a complete extension project (for authors)
      symphony validate .           check a project or a wheel before publishing it
      symphony schema               the JSON Schema of symphony.toml, for editors
      symphony call acme.greeter greet '"Ada"'   call one method, print the answer as JSON
      symphony run acme.totals flights.parquet   run an extension on a file, as its kind does

    Installed distributions may add commands through the `symphony.commands` entry-point group
    (symphony-motifs adds `symphony ui`); they are listed below with the built-in ones.
    """
    ctx.obj = home


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
    with open_host(ctx) as host:
        infos = host.discover(rescan=rescan)
    if as_json:
        print_json([info.as_json() for info in infos])
        return
    out = console()
    if not infos:
        out.print("No extensions installed. Install one with pip, e.g. `pip install <extension>`.")
        return
    rows = []
    for info in infos:
        state = info.state.value if info.enabled else f"{info.state.value} (disabled)"
        problem = "" if info.problem is None else info.problem.message
        style = STATE_STYLES.get(info.state.value, "")
        where = info.distribution if info.environment is None else f"{info.distribution} (own env)"
        rows.append([info.id, info.kind, info.version, Text(state, style), where, problem])
    print_table(
        out,
        ("id", "kind", "version", "state", "distribution", "problem"),
        rows,
        title=f"{len(infos)} extension(s)",
    )


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
    with open_host(ctx) as host:
        info = host.inspect(extension)
        consent = host.consent(extension) if info.manifest is not None else None
        tier = host.tier(extension) if info.manifest is not None else None
    if as_json:
        data = info.as_json()
        data["consent"] = None if consent is None else consent.as_json()
        data["enforced_by"] = tier
        print_json(data)
        return
    out = console()
    out.print(
        f"[bold]{escape(info.name or info.id)}[/] ({escape(info.id)}) {info.kind} {escape(info.version)}"
    )
    if info.summary:
        out.print(escape(info.summary))
    out.print(f"distribution: {escape(info.distribution)}   entry point: {escape(info.entry_point)}")
    out.print(f"manifest: {escape(info.manifest_file or '-')}")
    out.print(f"state: {info.state.value}{'' if info.enabled else ' (disabled)'}")
    if info.problem is not None:
        out.print(f"[bold red]problem:[/] {escape(info.problem.message)}", highlight=False)
        if info.problem.hint:
            out.print(f"[bold]what to do:[/] {escape(info.problem.hint)}", highlight=False)
    if consent is not None:
        assert tier is not None
        print_consent(out, consent, tier)


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
    with open_host(ctx) as host:
        consent = host.consent(extension)
        tier = host.tier(extension)
    if as_json:
        print_json({**consent.as_json(), "enforced_by": tier})
        return
    print_consent(console(), consent, tier)


@main.command()
@click.argument("extension")
@click.argument("permission", nargs=-1)
@click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Do not ask (for scripts): grants only what stays in the extension's own folders, unless "
    "--all is given or the permissions are named.",
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Grant every requested permission, flagged ones (files elsewhere, network, environment "
    "variables, programs) included.",
)
@json_option
@click.pass_context
def grant(
    ctx: click.Context,
    extension: str,
    permission: tuple[str, ...],
    yes: bool,
    everything: bool,
    as_json: bool,
) -> None:
    """Grant the installed version of an extension what it requests, or only the named permissions.

    Shows the consent summary first. On a terminal it asks about each flagged permission (files beyond
    the extension's own folders, any network access, environment variables, programs), no by default,
    then for a confirmation. With --yes it does not ask and grants only the unflagged ones; name the
    others (a type, or one scope as the summary writes it) or pass --all to grant them too.

    \b
    Examples:
      symphony grant acme.digits
      symphony grant acme.digits --yes                          only what stays in its own folders
      symphony grant acme.digits "net.connect api.example.com:443" --yes
      symphony grant acme.digits --all --yes                    everything it asks for
    """
    from symphony_core._security._grants import describe

    with open_host(ctx) as host:
        tier = host.tier(extension)
        consent = host.consent(extension)
        flagged = set(consent.flagged)
        if permission or everything:
            chosen = list(permission)  # nothing named with --all: everything requested
            ask: list[tuple[str, str]] = []
        else:
            chosen = [describe(atom) for atom in consent.new if atom not in flagged]
            ask = [atom for atom in consent.new if atom in flagged]
        if not yes:
            out = console()
            print_consent(out, consent, tier)
            if not sys.stdin.isatty():
                fail("not granted: no terminal to ask on; pass --yes to grant from a script")
            for atom in ask:
                if click.confirm(
                    f"Grant {describe(atom)} (flagged: it reaches beyond its own folders)?", default=False
                ):
                    chosen.append(describe(atom))
            if not (chosen or everything):
                out.print("nothing granted", highlight=False)
                return
            what = ", ".join(chosen) if chosen else "every requested permission"
            click.confirm(f"Grant {what}?", default=False, abort=True)
        if chosen or everything:
            consent = host.grant(extension, chosen, actor=person())
    if as_json:
        print_json({**consent.as_json(), "enforced_by": tier})
        return
    out = console()
    if chosen or everything:
        complete = not permission and not consent.new
        what = "all requested permissions" if complete or not chosen else ", ".join(chosen)
        out.print(f"granted {escape(what)} to {escape(extension)} {consent.version}", highlight=False)
    else:
        out.print("nothing granted", highlight=False)
    if consent.new:
        left = ", ".join(describe(atom) for atom in consent.new)
        out.print(
            f"[yellow]not granted:[/] {escape(left)}; it will not run until they are "
            f"(name them, or pass --all: symphony grant {escape(extension)} --all)",
            highlight=False,
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
    with open_host(ctx) as host:
        host.revoke(extension, actor=person())
    console().print(f"revoked every grant of {escape(extension)}", highlight=False)


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
    with open_host(ctx) as host, host.learning(extension) as recorder:
        host.start(extension)
        for method in calls:
            host.call(extension, method)
        host.deactivate(extension)
    if as_json:
        print_json(recorder.proposal(), versioned=False)  # manifest data: each item a permission request
        return
    click.echo(recorder.toml())


@main.group()
def config() -> None:
    """Show, set, unset and describe an extension's config.

    Values are layered: the model's defaults < the config file
    $SYMPHONY_HOME/config/ID.toml < environment variables SYMPHONY_<ID>__<FIELD> < values set here
    (which outrank the file and the environment until `symphony config unset` removes them).

    These commands import the module of the extension's config model, and so run its package's
    __init__: for an extension the host isolates, only in a short-lived restricted worker.
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
    from symphony_core._store._config import config_file, env_prefix, public_dump

    with open_host(ctx) as host:
        resolved = host.config(extension)
        home = host.home
    if resolved is None:
        fail(f"{extension}: has no config (its manifest names no `config` model)")
    if as_json:
        print_json({**resolved.as_json(), "layers": list(LAYERS)})
        return
    values = _flatten(public_dump(resolved.config))
    out = console()
    rows = [[key, json.dumps(values.get(key)), str(source)] for key, source in resolved.sources.items()]
    print_table(out, ("key", "value", "from"), rows, title=f"config of {extension}")
    out.print(
        f"file: {config_file(home, extension)}   environment: {env_prefix(extension)}<FIELD>", highlight=False
    )
    out.print(
        "each layer outranks the one before: "
        + " < ".join(LAYERS)
        + f"; `symphony config unset {extension} KEY` removes a value set here (an override)",
        highlight=False,
    )


LAYERS = ("default", "file", "env", "override")
"""The config layers, lowest first, as ``from`` names them."""


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
    with open_host(ctx) as host:
        host.set_config(extension, key, value, actor=person())
    console().print(f"set {escape(key)} of {escape(extension)}", highlight=False)


@config.command("unset")
@click.argument("extension")
@click.argument("key", required=False)
@click.option("--all", "everything", is_flag=True, help="Remove every value set here for the extension.")
@click.pass_context
def config_unset(ctx: click.Context, extension: str, key: str | None, everything: bool) -> None:
    """Remove a value set with `symphony config set`, so the file, the environment or the default
    applies again; --all removes every one of the extension's.

    
    Examples:
      symphony config unset acme.digits threshold
      symphony config unset acme.digits --all
    """
    if (key is None) != everything:
        raise click.UsageError("give either KEY or --all")
    with open_host(ctx) as host:
        removed = host.unset_config(extension, key, actor=person())
    if not removed:
        console().print(f"{escape(extension)} had no value set here", highlight=False)
        return
    console().print(f"unset {escape(', '.join(removed))} of {escape(extension)}", highlight=False)


@config.command("schema")
@click.argument("extension")
@click.pass_context
def config_schema(ctx: click.Context, extension: str) -> None:
    """Print the JSON Schema of an extension's config (secrets are marked writeOnly).

    \b
    Example:
      symphony config schema acme.digits > digits.schema.json
    """
    with open_host(ctx) as host:
        schema = host.config_schema(extension)
    if schema is None:
        fail(f"{extension}: has no config (its manifest names no `config` model)")
    print_json(schema, versioned=False)  # a JSON Schema document, as editors read it


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


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
    with open_host(ctx) as host:
        lifted = host.enable(extension)
    console().print(
        f"enabled {escape(extension)}" + (" (quarantine lifted)" if lifted else ""), highlight=False
    )


@main.command()
@click.argument("extension")
@click.pass_context
def disable(ctx: click.Context, extension: str) -> None:
    """Keep an extension from loading (remembered across restarts).

    \b
    Example:
      symphony disable acme.digits
    """
    with open_host(ctx) as host:
        host.disable(extension)
    console().print(f"disabled {escape(extension)}", highlight=False)


@main.command()
@json_option
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check this host: Python, Symphony's packages, the state database, the policy file and what is
    enforced here, and end with a verdict: ok, warnings, or broken when something every host needs
    here does not work (then the exit status is 1). A damaged state database is reported, with how to
    recover, not tripped over.

    \b
    Example:
      symphony doctor --json
    """
    from symphony_core._catalog._discovery import discover
    from symphony_core._runtime._host import Host
    from symphony_core._security._grants import read_policy
    from symphony_core._security._limits import ResourceLimits
    from symphony_core._security._sandbox._probe import probe
    from symphony_core._security._sandbox._quota import report as disk_report
    from symphony_core._store._home import Home

    sandbox = probe()
    home = Home.resolve(ctx.obj)
    checks: list[dict[str, Any]] = []
    host: Host | None = None
    try:
        host = Host(ctx.obj, isolation="auto")
    except StateError as exc:
        checks.append(_check("state", "broken", exc.message, exc.hint))
    except SymphonyError as exc:
        fail(str(exc))
    try:
        if host is not None:
            checks.append(_state_check(host))
            infos = host.discover()
            assert host.catalog is not None
            catalog = host.catalog
            ids = [info.id for info in infos]
            failed = sum(1 for info in infos if info.state.value == "failed")
        else:  # no state to read: what discovery finds alone
            catalog = discover(home.cache_dir)
            ids = [record.id for record in catalog.records]
            failed = sum(1 for record in catalog.records if record.problem is not None)
    except SymphonyError as exc:
        fail(str(exc))
    finally:
        if host is not None:
            host.close()
    try:
        policy = read_policy(home.policy_file)
    except SymphonyError as exc:
        checks.append(_check("policy", "broken", exc.message, exc.hint))
        limits = ResourceLimits().for_workers()
    else:
        trusted = len(policy.trust)
        checks.append(
            _check(
                "policy",
                "ok",
                f"{home.policy_file}: {len(policy.rules)} rule(s), {trusted} trust entr{'y' if trusted == 1 else 'ies'}"
                if home.policy_file.exists()
                else f"no policy file ({home.policy_file}): every extension asks for consent, none is trusted",
            )
        )
        limits = policy.limits.for_workers()
    checks += [_packages_check(catalog), _isolated_check(sandbox)]
    total = len(ids)
    checks.append(
        _check(
            "extensions",
            "warning",
            f"{failed} of {total} installed extension(s) failed",
            "see `symphony list`",
        )
        if failed
        else _check("extensions", "ok", f"{total} installed, none failed")
    )
    verdict = next(
        (status for status in ("broken", "warning") if any(check["status"] == status for check in checks)),
        "ok",
    )
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "home": str(home.root),
        "state_file": str(home.state_file),
        "packages": dict(sorted(catalog.packages.items())),
        "extensions": {"total": total, "failed": failed},
        "enforcement": {
            "guard": (
                "in-process audit hooks see Python-level file, socket and subprocess use; they are not a "
                "sandbox: native code (polars, onnxruntime, ctypes) bypasses them"
            ),
            "isolated": sandbox.summary(),
        },
        "sandbox": sandbox.as_json(),
        "limits": {name: getattr(limits, name) for name in limits.__struct_fields__},
        "disk": disk_report(home, sorted(set(ids)), limits),
        "checks": checks,
        "verdict": {"warning": "warnings"}.get(verdict, verdict),
    }
    if as_json:
        print_json(report)
    else:
        _print_doctor(report, sandbox)
    if verdict == "broken":
        sys.exit(1)


def _check(name: str, status: str, message: str, hint: str | None = None) -> dict[str, Any]:
    """One of doctor's checks: ``status`` is ok, warning or broken."""
    return {"name": name, "status": status, "message": message, "hint": hint}


def _state_check(host: Any) -> dict[str, Any]:
    state = host.state
    if state.read_only is not None:
        return _check(
            "state",
            "warning",
            f"{state.path} is read-only ({state.read_only}): hosts read it, but cannot change enablement, "
            "grants, config or quarantines, nor keep an audit log",
            "make it writable, or give hosts a SYMPHONY_HOME they can write to",
        )
    return _check("state", "ok", f"{state.path}: readable and writable")


def _packages_check(catalog: Any) -> dict[str, Any]:
    """Each installed kit sits on a core it admits (a --no-deps install can break that)."""
    from symphony_core._catalog._compat import _check_core
    from symphony_core._model._kinds import CORE_DISTRIBUTION, KINDS

    for kind in KINDS.values():
        if kind.package in catalog.packages:
            problem = _check_core(kind.package, catalog)
            if problem is not None:
                return _check("packages", "broken", problem.message, problem.hint)
    found = ", ".join(f"{name} {version}" for name, version in sorted(catalog.packages.items()))
    if CORE_DISTRIBUTION not in catalog.packages:
        return _check("packages", "warning", f"{CORE_DISTRIBUTION} is not installed here as a distribution")
    return _check("packages", "ok", found)


def _isolated_check(sandbox: Any) -> dict[str, Any]:
    if not sandbox.supported:
        return _check(
            "isolated",
            "warning",
            f"this platform ({sandbox.platform}) has no isolated tier: hosts run every extension in their "
            "own process, under the in-process guard, which is not a sandbox",
            "run untrusted extensions on Linux",
        )
    if not sandbox.has("landlock"):
        return _check(
            "isolated",
            "warning",
            f"Landlock is not available ({sandbox.mechanisms['landlock'].detail}): isolated workers cannot "
            "keep extensions to the files they were granted",
            "use a kernel with Landlock enabled (5.13 or later, lsm=landlock)",
        )
    return _check("isolated", "ok", sandbox.summary())


_STATUS_STYLES = {"ok": "green", "warning": "yellow", "broken": "bold red"}


def _print_doctor(report: dict[str, Any], sandbox: Any) -> None:
    out = console()
    out.print(f"Python {report['python']} on {report['platform']}", highlight=False)
    out.print(f"home: {escape(report['home'])}", highlight=False)
    for name, version in report["packages"].items():
        out.print(f"  {name} {version}", highlight=False)
    failed = report["extensions"]["failed"]
    out.print(
        f"extensions: {report['extensions']['total']} installed, "
        + (f"[bold red]{failed} failed[/] (see `symphony list`)" if failed else "none failed"),
        highlight=False,
    )
    out.print("[bold]enforcement[/]")
    for tier, text in report["enforcement"].items():
        out.print(f"  {tier}: {escape(text)}", highlight=False)
    out.print(
        f"[bold]isolated tier on this machine[/] (probed: {escape(sandbox.kernel or sandbox.platform)})"
    )
    for name, mechanism in sandbox.mechanisms.items():
        mark = "[green]yes[/]" if mechanism.available else "[bold red]no[/]"
        out.print(f"  {name}: {mark} - {escape(mechanism.detail)}", highlight=False)
    out.print("  enforced in a worker:")
    for concern, text in sandbox.enforced().items():
        out.print(f"    {concern}: {escape(text)}", highlight=False)
    out.print("  [bold]not enforced:[/]")
    for text in sandbox.not_enforced():
        out.print(f"    - {escape(text)}", highlight=False)
    _print_limits(out, report["limits"], report["disk"])
    out.print("[bold]checks[/]")
    for check in report["checks"]:
        style = _STATUS_STYLES[check["status"]]
        out.print(
            f"  [{style}]{check['status']}[/] {check['name']}: {escape(check['message'])}", highlight=False
        )
        if check["hint"] and check["status"] != "ok":
            out.print(f"    what to do: {escape(check['hint'])}", highlight=False)
    verdict = report["verdict"]
    style = _STATUS_STYLES.get(verdict, "yellow")
    explained = {
        "ok": "this host can run extensions",
        "warnings": "this host runs, with the warnings above",
        "broken": "something every host here needs does not work: see the checks above",
    }[verdict]
    out.print(f"[bold]verdict:[/] [{style}]{verdict}[/]: {explained}", highlight=False)


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


@main.command()
@click.argument("extension", required=False)
@click.option(
    "--since",
    metavar="WHEN",
    help="Only what happened since WHEN: a date or time (2025-03-01, 2025-03-01T14:30, UTC unless it "
    "says otherwise) or a span back from now (90m, 12h, 7d).",
)
@json_option
@click.pass_context
def audit(ctx: click.Context, extension: str | None, since: str | None, as_json: bool) -> None:
    """Show the host's audit log, oldest first: what happened to each extension (its lifecycle, grants,
    enablement, config changes, quarantines, denials) and who did it. With EXTENSION, only its records;
    it need not be installed any more.

    \b
    Examples:
      symphony audit
      symphony audit acme.digits --since 7d
      symphony audit --since 2025-03-01 --json | jq '.records[] | select(.event == "granted")'
    """
    from symphony_core._model._kinds import canonical_id
    from symphony_core._store._home import Home
    from symphony_core._store._state import HostState

    start = None if since is None else _since(since)
    try:
        state = HostState(Home.resolve(ctx.obj).state_file)
    except SymphonyError as exc:
        fail(str(exc))
    try:
        records = state.audit_log(None if extension is None else canonical_id(extension), since=start)
    except SymphonyError as exc:
        fail(str(exc))
    finally:
        state.close()
    if as_json:
        print_json(
            {
                "extension": extension,
                "since": None if start is None else start.isoformat(),
                "records": [
                    {
                        "seq": record.seq,
                        "at": record.at.isoformat(),
                        "extension": record.ext_id,
                        "event": record.event,
                        "actor": record.actor,
                        "detail": record.detail,
                    }
                    for record in records
                ],
            }
        )
        return
    out = console()
    if not records:
        out.print(
            "no audit records"
            + (f" for {escape(extension)}" if extension else "")
            + (f" since {since}" if since else ""),
            highlight=False,
        )
        return
    rows = [
        [
            str(record.seq),
            record.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            record.ext_id or "-",
            record.event,
            record.actor,
            json.dumps(record.detail, sort_keys=True) if record.detail else "",
        ]
        for record in records
    ]
    print_table(out, ("seq", "at (UTC)", "extension", "event", "actor", "detail"), rows, title="audit log")


def _since(text: str) -> datetime:
    """The moment ``--since`` names: an ISO date or time (UTC unless it says), or a span back from now."""
    spans = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    unit = text[-1:].lower()
    if unit in spans and text[:-1].isdigit():
        return datetime.now(timezone.utc) - timedelta(**{spans[unit]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is neither a date or time (2025-03-01, 2025-03-01T14:30) nor a span (90m, 12h, 7d)",
            param_hint="--since",
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


main.add_command(new)  # the author's commands, from their own module
main.add_command(validate)
main.add_command(schema)
main.add_command(publish)
main.add_command(call)  # trying an extension from the shell
main.add_command(run)
main.add_command(dev)  # the author's loop
for _command in (install, upgrade, uninstall):  # managed environments, from their own module
    main.add_command(_command)
for _command in (search, catalog):  # the marketplace, from its own module
    main.add_command(_command)
