"""The author's commands of ``symphony``: ``new`` (generate an extension project), ``validate``, and
``schema`` (the manifest's JSON Schema, for editors).

Exit codes of ``symphony new``: 0 the project was written; 1 it could not be (the kit of that kind is
not installed, the folder is in the way); 2 the command line was wrong (unknown kind, a name that
cannot be a distribution, an import name or an extension id).

Exit codes of ``symphony validate``: 0 valid (warnings allowed unless ``--strict``); 1 problems found;
2 the target is neither a project folder with a pyproject.toml nor a wheel.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.markup import escape

from ._output import console, print_json

KINDS = ("instrument", "operator", "motif")


def _fail(message: str, hint: str | None = None, *, code: int = 1) -> NoReturn:
    out = console(stderr=True)
    out.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if hint:
        out.print(f"[bold]what to do:[/] {escape(hint)}", highlight=False)
    sys.exit(code)


@click.command()
@click.argument("kind", type=click.Choice(KINDS), required=False)
@click.argument("name", required=False)
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    help="The project's folder (default: ./NAME as a distribution name); it must not exist or be empty.",
)
@click.option("--id", "ext_id", metavar="PUBLISHER.NAME", help="The extension id, if not derived from NAME.")
@click.option(
    "--license",
    "spdx",
    metavar="SPDX",
    help="The project's license, by SPDX id: MIT (the default), Apache-2.0 or BSD-3-Clause.",
)
@click.option("--author", metavar="NAME", help="Who holds the copyright (default: git's user.name).")
@click.option(
    "--git/--no-git", default=True, help="Make the folder a git repository (when git is installed)."
)
@click.option(
    "--install",
    is_flag=True,
    help="Then install the project into this Python, editable, with its test dependencies.",
)
@click.option("--no-input", is_flag=True, help="Never ask: take the defaults for what is not given.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def new(
    kind: str | None,
    name: str | None,
    folder: Path | None,
    ext_id: str | None,
    spdx: str | None,
    author: str | None,
    git: bool,
    install: bool,
    no_input: bool,
    as_json: bool,
) -> None:
    """Generate a complete extension project of KIND: instrument, operator or motif.

    NAME is the distribution name, publisher first (acme-sentiment: the extension id becomes
    acme.sentiment and the import name acme_sentiment), or the id itself (acme.sentiment). The
    project has its pyproject.toml with the entry point and the kit it depends on, the manifest
    symphony.toml, a config model, a working example implementation, tests that run it in a real host,
    a README, a CHANGELOG.md with a changes/ folder for its fragments, the LICENSE chosen, a .gitignore
    and a CI workflow (.github/workflows/test.yml) that runs its tests on every Python the kit supports
    and `symphony validate --strict`. It passes its own tests and builds as it is; an instrument's also
    has scripts/build_model.py, which trains its model and converts it to ONNX.

    In a terminal it asks for what the command line does not say; --no-input (or no terminal) takes
    the defaults, and fails on a missing KIND or NAME.

    The template comes from the kit of that kind (symphony-instruments, symphony-operators,
    symphony-motifs), which must be installed.

    \b
    Examples:
      symphony new
      symphony new instrument acme-sentiment --license Apache-2.0
      symphony new operator acme.route-stats --dir ~/code/route-stats --install
      symphony new operator acme-clean --no-input --no-git --json

    \b
    Exit codes: 0 written; 1 the kit is missing, the folder is in the way or the install failed; 2 bad
    arguments.
    """
    from symphony_core._authoring._scaffold import LICENSES, BadName, ScaffoldError, new_project

    ask = not no_input and not as_json and sys.stdin.isatty()
    if kind is None:
        if not ask:
            raise click.UsageError("missing KIND: instrument, operator or motif")
        kind = click.prompt("Kind of extension", type=click.Choice(KINDS), default="operator")
    if name is None:
        if not ask:
            raise click.UsageError("missing NAME, e.g. acme-sentiment (the id becomes acme.sentiment)")
        name = click.prompt("Name (publisher-name, e.g. acme-sentiment)")
    if ask and ext_id is None and "." not in name:
        publisher, _, rest = name.strip().lower().partition("-")
        ext_id = click.prompt("Extension id", default=f"{publisher}.{rest}" if rest else None)
    if spdx is None:
        spdx = LICENSES[0]
        if ask:
            spdx = click.prompt("License (SPDX id)", type=click.Choice(LICENSES), default=spdx)
    chosen = {known.lower(): known for known in LICENSES}.get(spdx.lower())
    if chosen is None:
        _fail(f"unknown license '{spdx}'", f"use one of these SPDX ids: {', '.join(LICENSES)}", code=2)
    if author is None:
        author = _git_user()
        if ask:
            author = click.prompt("Copyright holder", default=author or f"the authors of {name}")
    if ask and not install:
        install = click.confirm("Install it into this Python (editable, with its test tools)?", default=True)
    try:
        created = new_project(kind, name, folder, ext_id=ext_id, license=chosen, holder=author, git=git)
    except BadName as exc:
        _fail(exc.message, exc.hint, code=2)
    except ScaffoldError as exc:
        _fail(exc.message, exc.hint)
    if install:
        _install(created.folder, quiet=as_json)
    if as_json:
        print_json(created.as_json() | {"installed": install})
        return
    names = created.names
    out = console()
    out.print(
        f"[bold green]created[/] the {kind} [bold]{escape(names.id)}[/] in {escape(str(created.folder))}"
        + (" (a git repository)" if created.git else ""),
        highlight=False,
    )
    for path in created.files:
        out.print(f"  {escape(str(path.relative_to(created.folder)))}", highlight=False)
    out.print("\n[bold]next:[/]")
    steps = [] if install else ['python -m pip install -e "' + str(created.folder) + '[test]"']
    for step in (
        *steps,
        f"python -m pytest {created.folder}",
        f"symphony validate --strict {created.folder}",
    ):
        out.print(f"  {escape(step)}", highlight=False)


def _git_user() -> str | None:
    """git's ``user.name``, when git is installed and it is set."""
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "config", "user.name"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _install(folder: Path, *, quiet: bool) -> None:
    """Install the project at ``folder`` into this Python, editable, with its ``test`` extra."""
    import importlib.util
    import shutil
    import subprocess

    target = f"{folder}[test]"
    if importlib.util.find_spec("pip") is not None:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--editable", target]
    elif (uv := shutil.which("uv")) is not None:  # a venv made by uv has no pip
        command = [uv, "pip", "install", "--quiet", "--python", sys.executable, "--editable", target]
    else:
        _fail(
            f"cannot install {folder}: this Python has no pip",
            f'install pip (python -m ensurepip), then: python -m pip install -e "{target}"',
        )
    if not quiet:
        console(stderr=True).print(f"installing: {escape(' '.join(command))}", highlight=False)
    done = subprocess.run(command, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        _fail(
            f"the project was written, but installing it failed (status {done.returncode})",
            f'see the installer\'s messages above, then: python -m pip install -e "{target}"',
        )


SEVERITY_STYLES = {"error": "bold red", "warning": "yellow"}
OUTCOME_MARKS = {"passed": "[green]ok[/]", "warned": "[yellow]warnings[/]", "failed": "[bold red]failed[/]"}


@click.command()
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON for machines.")
def validate(target: Path, strict: bool, as_json: bool) -> None:
    """Check an extension project folder, or a wheel built from it, before publishing it.

    Checks the distribution's metadata and Symphony entry points; each manifest (schema, kind, id,
    version, and the files it names under [contributes]); that each permission is well-formed and has
    a real reason; that each entry point and config model loads (imported in a separate Python
    process, with a wheel itself on the path, never in this one); that the code imports only public
    packages, never symphony_core; and that the declared dependencies cover what it imports. Each
    problem names the file, line and field, and what to do.

    \b
    Examples:
      symphony validate .
      symphony validate dist/acme_sentiment-0.1.0-py3-none-any.whl
      symphony validate . --json | jq '.findings[] | select(.severity == "error")'

    \b
    Exit codes: 0 valid (warnings allowed, unless --strict); 1 problems found; 2 TARGET is neither a
    project folder with a pyproject.toml nor a .whl file.
    """
    from symphony_core._authoring._validate import CHECKS, BadTarget
    from symphony_core._authoring._validate import validate as run_checks

    try:
        report = run_checks(target)
    except BadTarget as exc:
        _fail(exc.message, exc.hint, code=2)
    failed = bool(report.errors) or (strict and bool(report.warnings))
    if as_json:
        print_json(report.as_json())
        sys.exit(1 if failed else 0)
    out = console()
    label = f"{report.distribution or '?'} {report.version or ''}".strip()
    out.print(f"[bold]{escape(label)}[/] ({report.type} {escape(report.target)})", highlight=False)
    if report.extensions:
        out.print(f"extensions: {escape(', '.join(report.extensions))}", highlight=False)
    out.print("  ".join(f"{check}: {OUTCOME_MARKS[report.outcome(check)]}" for check in CHECKS))
    for finding in report.findings:
        style = SEVERITY_STYLES[finding.severity]
        where = f"{finding.where}: " if finding.where else ""
        field = f"{finding.field}: " if finding.field else ""
        out.print(
            f"[{style}]{finding.severity}[/] {escape(f'[{finding.check}] ' + where + field + finding.message)}",
            highlight=False,
        )
        if finding.hint:
            out.print(f"    [bold]what to do:[/] {escape(finding.hint)}", highlight=False)
    errors, warnings = len(report.errors), len(report.warnings)
    if failed:
        out.print(f"[bold red]invalid:[/] {errors} error(s), {warnings} warning(s)")
        sys.exit(1)
    out.print(f"[bold green]valid[/] ({warnings} warning(s))" if warnings else "[bold green]valid[/]")


@click.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the schema to this file instead of standard output.",
)
def schema(out: Path | None) -> None:
    """Print the JSON Schema of symphony.toml, for editors that check a manifest as it is typed.

    \b
    Scaffolded manifests start with a line editors built on Taplo read:
      #:schema https://symphony-sdk.readthedocs.io/en/latest/schema/symphony.json
    To check against this installed version instead (offline, or ahead of a release):
      symphony schema --out .symphony.schema.json
    and point the line at that file: #:schema ./.symphony.schema.json
    """
    import json

    from symphony_core._authoring._schema import manifest_schema

    text = json.dumps(manifest_schema(), indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}", "choose a folder you can write to")
    console(stderr=True).print(f"wrote the manifest schema to {escape(str(out))}", highlight=False)
