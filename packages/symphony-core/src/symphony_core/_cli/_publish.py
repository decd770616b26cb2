"""``symphony publish``: build an extension project, validate the wheel strictly, show its marketplace
listing, and upload it to the index its author names (see ``_authoring._publish``).

Exit codes: 0 uploaded (or, with ``--dry-run``, ready to upload); 1 it was not uploaded (the build failed,
the wheel is not valid, the index refused a file or could not be reached, the author declined, or there
was no terminal to ask on and no ``--yes``, or build and twine are missing); 2 the command line was wrong
(PATH is not an extension project, no ``--repository-url``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.markup import escape
from rich.text import Text

from ._author import _fail, validate
from ._marketplace import print_listing
from ._output import console, print_json


@click.command()
@click.argument(
    "path", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False
)
@click.option(
    "--repository-url",
    "index",
    envvar="TWINE_REPOSITORY_URL",
    metavar="URL",
    help="The index's upload URL, e.g. https://upload.pypi.org/legacy/ (or TWINE_REPOSITORY_URL).",
)
@click.option(
    "--username", "-u", envvar="TWINE_USERNAME", help="Who uploads (or TWINE_USERNAME); __token__ for PyPI."
)
@click.option(
    "--password",
    "-p",
    envvar="TWINE_PASSWORD",
    help="The password or API token (better: TWINE_PASSWORD, which other users cannot see).",
)
@click.option(
    "--dist-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the built files are kept (default: PATH/dist).",
)
@click.option("--dry-run", is_flag=True, help="Build, validate and show the listing; upload nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before uploading (for scripts and CI).")
@click.option("--json", "as_json", is_flag=True, help="Print what was built, found and uploaded as JSON.")
@click.pass_context
def publish(
    ctx: click.Context,
    path: Path,
    index: str | None,
    username: str | None,
    password: str | None,
    dist_dir: Path | None,
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Build the extension project at PATH, check the wheel, show its listing, and upload it.

    The steps: build the sdist and the wheel (python -m build, in isolated environments) into
    --dist-dir; run `symphony validate --strict` on the wheel and stop on any error or warning; show the
    listing a marketplace will make of it (name, summary, permissions with their reasons, links, README);
    then, once you say yes, upload the wheel and the sdist with twine to the index at --repository-url.
    Without a terminal it uploads only with --yes.

    Needs build and twine: pip install 'symphony-sdk-core[publish]'.

    \b
    Examples:
      symphony publish --dry-run
      symphony publish --repository-url https://test.pypi.org/legacy/
      TWINE_USERNAME=__token__ TWINE_PASSWORD=pypi-... symphony publish . \\
          --repository-url https://upload.pypi.org/legacy/ --yes

    \b
    Exit codes: 0 uploaded (with --dry-run: ready to upload); 1 not uploaded (the build failed, the wheel
    is not valid, the index refused a file or cannot be reached, you declined, no terminal and no --yes,
    build or twine missing); 2 PATH is not an extension project, or no --repository-url.
    """
    from symphony_core._authoring._publish import (
        BuildFailed,
        NotAnExtension,
        PublishError,
        build,
        check,
        preview,
        read_project,
        require_tools,
        upload,
    )
    from symphony_core._model._errors import SymphonyError

    folder = path.resolve()
    try:
        distribution, version = read_project(folder)
    except NotAnExtension as exc:
        _fail(exc.summary, exc.hint, code=2)
    if not index and not dry_run:
        raise click.UsageError(
            "missing --repository-url: the index's upload URL, e.g. https://upload.pypi.org/legacy/ "
            "(or --dry-run to stop before uploading)"
        )
    out = console(stderr=as_json)
    try:
        require_tools(upload=not dry_run)
        named = " ".join(part for part in (distribution, version) if part)
        out.print(f"building {escape(named)} from {escape(str(folder))} (python -m build)", highlight=False)
        built = build(folder, (dist_dir or folder / "dist").resolve())
    except BuildFailed as exc:
        for line in exc.output:
            out.print(Text(f"  {line}"))
        _fail(exc.summary, exc.hint)
    except PublishError as exc:
        _fail(exc.summary, exc.hint)
    for file in built.files:
        out.print(f"built {escape(str(file))}", highlight=False)

    if as_json:
        report = check(built.wheel)
        if report.errors or report.warnings:
            print_json(_result(folder, built, index, report=report, dry_run=dry_run))
            sys.exit(1)
    else:
        out.print(f"\n[bold]symphony validate --strict {escape(built.wheel.name)}[/]", highlight=False)
        ctx.invoke(validate, target=built.wheel, strict=True, as_json=False)  # exits 1 when invalid
        report = None

    try:
        listings = preview(built.wheel, index or "")
    except SymphonyError as exc:
        _fail(exc.summary, exc.hint)
    out.print("\n[bold]The marketplace will list it as:[/]", highlight=False)
    for listed in listings:
        print_listing(out, listed, preview=True)

    if dry_run:
        out.print("\n[bold]dry run:[/] nothing was uploaded", highlight=False)
        if as_json:
            print_json(_result(folder, built, index, report=report, listings=listings, dry_run=True))
        return
    assert index is not None
    names = ", ".join(file.name for file in built.files)
    if not yes:
        if not sys.stdin.isatty():
            _fail(
                f"not uploaded: no terminal to ask on before uploading {names} to {index}",
                "pass --yes to upload from a script (or --dry-run to stop before uploading)",
            )
        if not click.confirm(f"\nUpload {names} to {index}?", default=False, err=as_json):
            _declined(names, index)
        if not username:
            username = click.prompt("Username (__token__ for an API token)", default="__token__", err=as_json)
        if not password:
            password = click.prompt("Password or API token", hide_input=True, err=as_json)
    out.print(f"uploading {escape(names)} to {escape(index)} (twine)", highlight=False)
    try:
        uploaded = upload(built.files, index, username=username, password=password)
    except PublishError as exc:
        if exc.uploaded:
            out.print(f"uploaded before it stopped: {escape(', '.join(exc.uploaded))}", highlight=False)
        _fail(exc.summary, exc.hint)
    for name in uploaded:
        out.print(f"[bold green]uploaded[/] {escape(name)} to {escape(index)}", highlight=False)
    if as_json:
        print_json(_result(folder, built, index, report=report, listings=listings, uploaded=uploaded))


def _declined(names: str, index: str) -> NoReturn:
    console(stderr=True).print(f"not uploaded: you declined to upload {escape(names)} to {escape(index)}")
    sys.exit(1)


def _result(
    folder: Path,
    built: Any,
    index: str | None,
    *,
    report: Any,
    listings: Any = None,
    dry_run: bool = False,
    uploaded: list[str] | None = None,
) -> dict[str, Any]:
    """What ``publish --json`` prints."""
    return {
        "project": str(folder),
        "files": built.as_json(),
        "validation": report.as_json(),
        "listings": [] if listings is None else [listed.as_json() for listed in listings],
        "repository_url": index,
        "dry_run": dry_run,
        "uploaded": uploaded or [],
    }
