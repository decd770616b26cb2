"""``symphony search`` and ``symphony catalog``: a marketplace's catalog, for hosts and for its operator.

Everything a catalog holds is shown as text: names, summaries and READMEs are printed as they are, never
read as markup, with control and bidi characters shown as escapes, so a README with HTML or scripts in it,
or one that carries terminal escapes, is only ever read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from symphony_core._model._errors import SymphonyError

from ._output import console, print_json, print_table
from ._session import fail

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of text.")
_out = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The folder the marketplace is published from (served as it is).",
)
_keys = click.option(
    "--keys",
    type=click.Path(file_okay=False, path_type=Path),
    help="The folder of the marketplace's private keys, outside --out "
    "(default: marketplace-keys in the Symphony home).",
)
_expires = click.option(
    "--timestamp-expires",
    "lifetime",
    default="1d",
    show_default=True,
    help="How long hosts accept the signed timestamp (90s, 30m, 12h, 7d): refresh more often than this.",
)
_BIDI = frozenset(map(chr, (*range(0x202A, 0x202F), *range(0x2066, 0x206A))))


@click.command()
@click.argument("text", required=False, default="")
@click.option("--kind", type=click.Choice(["instrument", "operator", "motif"]), help="Only this kind.")
@_json
@click.pass_context
def search(ctx: click.Context, text: str, kind: str | None, as_json: bool) -> None:
    """Search the host's marketplace (its catalog, verified first) for extensions.

    Every word of TEXT must appear in an extension's id, name, summary or distribution.

    \b
    Examples:
      symphony search weather
      symphony search --kind instrument digits --json
    """
    found = _listings(ctx).search(text, kind=kind)
    if as_json:
        print_json([listing.summary_json() for listing in found])
        return
    out = console()
    if not found:
        out.print(Text(f"nothing in the catalog matches {text!r}" if text else "the catalog is empty"))
        return
    rows = [
        [
            listing.id,
            _shown(listing.name),
            listing.kind,
            listing.latest.version,
            str(len(listing.permissions)),
            _shown(listing.summary),
        ]
        for listing in found
    ]
    print_table(out, ["id", "name", "kind", "latest", "permissions", "summary"], rows)
    for listing in found:
        for warning in listing.warnings:
            out.print(Text(f"look twice: {listing.id} {warning['field']}: {_shown(warning['message'])}"))


@click.group()
def catalog() -> None:
    """A marketplace's signed catalog: build and sign one (operators), or read one entry (hosts).

    \b
    Examples:
      symphony catalog build --index https://pypi.example.org/simple/ --out site/ --keys ~/market-keys
      symphony catalog refresh --out site/ --keys ~/market-keys
      symphony catalog rotate --out site/ --keys ~/market-keys --role timestamp
      symphony catalog show acme.weather
    """


@catalog.command()
@click.option("--index", required=True, help="The simple-API index whose extensions to list (…/simple/).")
@_out
@_keys
@_expires
@_json
@click.pass_context
def build(ctx: click.Context, index: str, out: Path, keys: Path | None, lifetime: str, as_json: bool) -> None:
    """Build the catalog of every extension an index publishes, and publish it signed (TUF) in OUT.

    Wheels are downloaded and read without running anything; a wheel that is not a valid extension is
    left out and reported. The first build makes the keys (ed25519) and the root metadata to give hosts.
    """
    from symphony_core._runtime._publish import build as build_catalog
    from symphony_core._runtime._publish import parse_lifetime

    progress = None if as_json else (lambda message: console(stderr=True).print(Text(message)))
    try:
        done = build_catalog(
            index,
            out,
            _keys_folder(ctx, keys),
            timestamp_lifetime=parse_lifetime(lifetime),
            progress=progress,
        )
    except SymphonyError as exc:
        fail(str(exc))
    _report(done, as_json)


@catalog.command()
@_out
@_keys
@_expires
@_json
@click.pass_context
def refresh(ctx: click.Context, out: Path, keys: Path | None, lifetime: str, as_json: bool) -> None:
    """Sign the timestamp (and snapshot) of a published catalog again, so hosts keep accepting it."""
    from symphony_core._runtime._publish import parse_lifetime
    from symphony_core._runtime._publish import refresh as refresh_catalog

    try:
        done = refresh_catalog(out, _keys_folder(ctx, keys), timestamp_lifetime=parse_lifetime(lifetime))
    except SymphonyError as exc:
        fail(str(exc))
    _report(done, as_json)


@catalog.command()
@_out
@_keys
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["root", "targets", "snapshot", "timestamp"]),
    help="A role whose key to replace (repeat it; default: all four).",
)
@_expires
@_json
@click.pass_context
def rotate(
    ctx: click.Context, out: Path, keys: Path | None, roles: tuple[str, ...], lifetime: str, as_json: bool
) -> None:
    """Replace the marketplace's keys: a new root, signed by the old root key and the new, names them.

    Hosts that pinned an older root follow the chain of roots; the old private keys move to
    KEYS/retired/.
    """
    from symphony_core._runtime._publish import ROLES, parse_lifetime
    from symphony_core._runtime._publish import rotate as rotate_keys

    try:
        done = rotate_keys(
            out, _keys_folder(ctx, keys), roles or ROLES, timestamp_lifetime=parse_lifetime(lifetime)
        )
    except SymphonyError as exc:
        fail(str(exc))
    _report(done, as_json)


@catalog.command()
@click.argument("extension")
@_json
@click.pass_context
def show(ctx: click.Context, extension: str, as_json: bool) -> None:
    """One extension of the host's marketplace: publisher, versions, permissions, links and README.

    \b
    Examples:
      symphony catalog show acme.weather
    """
    found = _listings(ctx).get(extension)
    if found is None:
        fail(f"{extension} is not in the marketplace's catalog; `symphony search` lists what is")
    if as_json:
        print_json(found.as_json())
        return
    print_listing(console(), found)


def print_listing(out: Console, listing: Any, *, preview: bool = False) -> None:
    """One extension as a marketplace lists it, for people: every text it holds shown as text.

    ``preview`` is the listing ``symphony publish`` makes of the version it is about to upload: that
    version alone, the index only if one was named, and a word when there is no README to show.
    """
    which = "version" if preview else "latest"
    lines = [
        f"{_shown(listing.name)} ({listing.id}), {listing.kind}, {which} {listing.latest.version}",
        _shown(listing.summary),
        f"publisher: {listing.distribution}" + (f" on {listing.index}" if listing.index else ""),
        f"targets: {listing.targets}",
    ]
    if not preview:
        lines.append("versions: " + ", ".join(version.version for version in listing.versions))
    lines.append(f"requests {len(listing.permissions)} permission(s):")
    for permission in listing.permissions:
        scopes = [
            str(item)
            for key, value in permission.items()
            if key not in ("type", "reason")
            for item in (value if isinstance(value, list) else [value])
        ]
        lines.append(f"  {permission['type']} {' '.join(scopes)}".rstrip())
        lines.append(f"    reason: {_shown(str(permission.get('reason', '')))}")
    lines += [f"look twice: {warning['field']}: {_shown(warning['message'])}" for warning in listing.warnings]
    lines += [f"link {_shown(label)}: {_shown(url)}" for label, url in listing.links.items()]
    for line in lines:
        out.print(Text(line))
    if listing.readme.strip():
        out.print(Text(f"\nREADME ({listing.readme_type}, shown as text):", style="bold"))
        out.print(Text(_shown(listing.readme, keep_lines=True)))
    elif preview:
        out.print(Text("no README: the listing's page will be empty (set readme in pyproject.toml)"))


def _listings(ctx: click.Context) -> Any:
    from symphony_core._runtime._marketplace import open_marketplace
    from symphony_core._store._home import Home

    try:
        market = open_marketplace(Home.resolve(ctx.obj))
    except SymphonyError as exc:
        fail(str(exc))
    if market is None:
        fail(
            "this host has no marketplace: name one in install.toml in the Symphony home "
            '([marketplace] url = "..." and root = "root.json"; see the marketplace guide)'
        )
    return market.listings


def _keys_folder(ctx: click.Context, keys: Path | None) -> Path:
    if keys is not None:
        return keys
    from symphony_core._store._home import Home

    return Home.resolve(ctx.obj).root / "marketplace-keys"


def _report(done: Any, as_json: bool) -> None:
    if as_json:
        print_json(done.as_json())
        return
    out = console()
    versions = ", ".join(f"{role} v{version}" for role, version in done.versions.items())
    if done.listings is not None:
        out.print(Text(f"published {len(done.listings)} extension(s) in {done.out} ({versions})"))
    else:
        out.print(Text(f"signed {done.out} again ({versions})"))
    out.print(Text(f"the timestamp expires {done.expires}: run `symphony catalog refresh` before then"))
    for refusal in done.refused:
        out.print(Text(f"left out {refusal.file}: {_shown(refusal.why)}"))
    if done.created_keys:
        out.print(
            Text(
                f"made new keys ({', '.join(done.created_keys)}); keep them safe and never publish them. "
                f"Give hosts {done.root} out of band: they pin it as [marketplace] root"
            )
        )
    if done.rotated:
        out.print(Text(f"rotated the keys of {', '.join(done.rotated)}; the old ones are in retired/"))


def _shown(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with control and bidi characters as visible escapes (newlines and tabs kept with
    ``keep_lines``)."""
    kept = "\n\t" if keep_lines else ""
    return "".join(
        f"\\u{ord(char):04x}"
        if (char in _BIDI or (ord(char) < 32 or 127 <= ord(char) < 160)) and char not in kept
        else char
        for char in text
    )
