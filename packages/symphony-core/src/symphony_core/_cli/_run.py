"""``symphony call`` and ``symphony run``: try an installed extension from the shell, without Python.

``call`` is the same for every kind: start the extension in the tier the host would choose, call one of
its methods with arguments read as JSON, print the answer as JSON. ``run`` speaks each kind's own
language (an operator on a data file, an instrument on JSON or ``.npy`` input, a motif in the browser);
the kit of the extension's kind provides it as a click command, named by the kind in the core's table
of kinds (``Kind.runner``), never found through an entry point, so no installed distribution can put a
command there.

Exit codes: 0 done; 1 the extension could not be started or the call failed (the message says why and
what to do); 2 the command line was wrong (an argument that is not the JSON it must be).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import msgspec

from symphony_core._model._errors import SymphonyError

from ._session import fail, open_host


def _argument(text: str) -> Any:
    """A command-line argument as JSON when it is JSON (``3``, ``[1, 2]``, ``{"a": 1}``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def jsonable(value: Any) -> Any:
    """What a method returned, as data JSON can carry: arrays and frames become lists, models and
    dataclasses their fields, anything else its ``repr``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, msgspec.Struct):
        return {name: jsonable(getattr(value, name)) for name in value.__struct_fields__}
    for method in ("model_dump", "to_dicts", "tolist", "as_json"):  # pydantic, polars, numpy, Symphony
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return jsonable(convert())
            except Exception:  # noqa: BLE001 - a conversion that fails falls back to the repr
                break
    if isinstance(value, Path):
        return str(value)
    return repr(value)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("extension")
@click.argument("method")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--kwargs", "keywords", metavar="JSON", help="Keyword arguments, as one JSON object.")
@click.pass_context
def call(
    ctx: click.Context, extension: str, method: str, args: tuple[str, ...], keywords: str | None
) -> None:
    """Start EXTENSION and call its METHOD with ARGS; print the answer as JSON.

    Each argument is read as JSON when it is JSON (a number, a list, an object), else as text. The
    extension runs where the host would run it (isolated unless trusted), with what was granted to it.

    \b
    Examples:
      symphony call acme.greeter greet '"Ada"'
      symphony call acme.digits infer '{"pixels": [[0, 0.5, 1, 0.5]]}'
      symphony call acme.totals describe --kwargs '{"verbose": true}'
    """
    named: Any = {}
    if keywords is not None:
        try:
            named = json.loads(keywords)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--kwargs") from None
        if not isinstance(named, dict):
            raise click.BadParameter("must be a JSON object, e.g. '{\"limit\": 3}'", param_hint="--kwargs")
    positional = [_argument(arg) for arg in args]
    with open_host(ctx) as host:
        host.start(extension)
        try:
            answer = host.call(extension, method, *positional, **named)
        except SymphonyError:
            raise
        except Exception as exc:  # noqa: BLE001 - an error a method raised is reported, never a traceback
            fail(f"{extension}.{method} raised {type(exc).__name__}: {exc}")
        click.echo(json.dumps(jsonable(answer), indent=2, ensure_ascii=False))


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("extension")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run(ctx: click.Context, extension: str, args: tuple[str, ...]) -> None:
    """Run EXTENSION on input from the shell, as its kind does it (ARGS go to the kind's runner).

    \b
    An operator on a CSV, Parquet or IPC file (or standard input) to a file or standard output:
      symphony run acme.totals flights.parquet -o totals.csv
    An instrument on JSON or .npy input:
      symphony run acme.digits input.json
    A motif, served for a browser:
      symphony run acme.dashboard --serve

    `symphony run EXTENSION --help` shows what that extension's kind takes.
    """
    import pkgutil

    from symphony_core._model._kinds import KINDS

    with open_host(ctx) as host:
        info = host.inspect(extension)
        kind = KINDS[info.kind]
        if kind.runner is None:
            fail(f"extensions of kind {info.kind!r} cannot be run from the shell; try `symphony call`")
        try:
            command = pkgutil.resolve_name(kind.runner)
        except (ImportError, AttributeError) as exc:
            fail(
                f"{extension} is {'an' if info.kind[0] in 'aeiou' else 'a'} {info.kind} extension, and running "
                f"it needs {kind.package}, which cannot be imported here ({exc}); install it: pip install {kind.package}"
            )
        if not isinstance(command, click.Command):
            fail(f"{kind.runner} is not a command; reinstall {kind.package}")
        status = command.main(
            list(args),
            prog_name=f"symphony run {extension}",
            standalone_mode=False,
            obj={"host": host, "extension": extension},
        )
    if isinstance(status, int) and status:  # the runner stopped with ctx.exit(status)
        sys.exit(status)
