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

import click
from rich.markup import escape

from ._output import console, print_json

KINDS = ("instrument", "operator", "motif")


def _fail(message: str, hint: str | None = None, *, code: int = 1) -> None:
    out = console(stderr=True)
    out.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if hint:
        out.print(f"[bold]what to do:[/] {escape(hint)}", highlight=False)
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
    from symphony_core._authoring._scaffold import BadName, ScaffoldError, new_project

    try:
        created = new_project(kind, name, folder, ext_id=ext_id)
    except BadName as exc:
        _fail(exc.message, exc.hint, code=2)
    except ScaffoldError as exc:
        _fail(exc.message, exc.hint)
    if as_json:
        print_json(created.as_json())
        return
    names = created.names
    out = console()
    out.print(
        f"[bold green]created[/] the {kind} [bold]{escape(names.id)}[/] in {escape(str(created.folder))}",
        highlight=False,
    )
    for path in created.files:
        out.print(f"  {escape(str(path.relative_to(created.folder)))}", highlight=False)
    out.print("\n[bold]next:[/]")
    for step in (
        f"cd {created.folder}",
        'python -m pip install -e ".[test]"',
        "python -m pytest",
        "symphony validate .",
    ):
        out.print(f"  {escape(step)}", highlight=False)


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
