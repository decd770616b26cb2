"""``symphony run ID [INPUT] [-o OUTPUT]``: an installed operator on a data file, from the shell.

The core's ``symphony run`` finds this command through its table of kinds and passes it a host (not yet
running the operator) and the operator's id in ``ctx.obj``. The operator runs as one step of a pipeline
through that host, so an isolated operator's rows are made in its own workers, as in any pipeline; the
input is checked against the columns it declares before anything is read, and a mismatch is one error
naming each column.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click
import polars as pl

from ._errors import BadData
from ._files import FORMATS, Format, format_of
from ._operator import Operator
from ._pipeline import Pipeline

STDIO = "-"
PARQUET_MAGIC = b"PAR1"
IPC_MAGICS = (b"ARROW1", b"\xff\xff\xff\xff")  # an IPC file, an IPC stream
_READERS: dict[str, Callable[..., pl.DataFrame]] = {
    "csv": pl.read_csv,
    "parquet": pl.read_parquet,
    "ipc": pl.read_ipc,
    "ndjson": pl.read_ndjson,
}


@click.command()
@click.argument("input", required=False, default=STDIO, metavar="[INPUT]")
@click.option(
    "-o",
    "--output",
    metavar="OUTPUT",
    help="The file to write (its format from its suffix: .csv, .parquet, .arrow/.ipc, .ndjson); "
    "default: standard output.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    help="The output's format, whatever OUTPUT's suffix (default: from the suffix, CSV on standard output).",
)
@click.option(
    "--from",
    "input_format",
    type=click.Choice(FORMATS),
    help="The input's format (default: from INPUT's suffix; on standard input, told from its first bytes).",
)
@click.pass_obj
def run(
    obj: dict[str, Any],
    input: str,
    output: str | None,
    output_format: Format | None,
    input_format: Format | None,
) -> None:
    """Run the operator on INPUT, a CSV, Parquet or IPC file (or standard input: INPUT '-' or none).

    The result goes to OUTPUT, or to standard output as CSV. Input whose columns do not fit what the
    operator declares is refused before any row is read, with each missing or mismatched column named.

    \b
    Examples:
      symphony run acme.totals flights.parquet -o totals.csv
      symphony run acme.totals flights.csv > totals.csv
      cat flights.arrow | symphony run acme.totals --format parquet > totals.parquet
    """
    host, extension = obj["host"], obj["extension"]
    data, in_format = _read(input, input_format)
    out_format = _output_format(output, output_format)
    operator = host.start(extension)
    if not isinstance(operator, Operator):
        raise click.UsageError(f"{extension} is not an operator")
    pipeline = (
        Pipeline(name=f"symphony run {extension}")
        .source("input", data, format=in_format)
        .step(operator, host=host)
    )
    if output is not None and output != STDIO:
        pipeline.sink(output, format=out_format).run()
        click.echo(f"wrote {os.path.abspath(output)}", err=True)
        return
    _write(pipeline.collect(), out_format, sys.stdout.buffer)


def _read(source: str, given: Format | None) -> tuple[str | pl.DataFrame, Format]:
    """A path the pipeline scans itself and its format, or the frame read from standard input."""
    if source != STDIO:
        path = Path(source)
        if not path.is_file():
            raise click.BadParameter(f"{source} is not a file", param_hint="INPUT")
        try:
            return source, format_of(source, given)
        except ValueError:  # a suffix that says nothing: the first bytes do
            with path.open("rb") as file:
                return source, _sniff(file.read(64))
    raw = sys.stdin.buffer.read()
    if not raw.strip():
        raise BadData(
            "standard input is empty: nothing to run the operator on", hint="pipe a file in, or name one"
        )
    fmt = given or _sniff(raw)
    try:
        return _READERS[fmt](io.BytesIO(raw)), fmt
    except pl.exceptions.PolarsError as exc:
        raise BadData(
            f"standard input cannot be read as {fmt}: {str(exc).strip().splitlines()[0]}",
            hint="say its format with --from",
        ) from None


def _sniff(raw: bytes) -> Format:
    """The format of bytes on standard input: Parquet and IPC by their magic, NDJSON by its first brace."""
    if raw.startswith(PARQUET_MAGIC):
        return "parquet"
    if raw.startswith(IPC_MAGICS):
        return "ipc"
    if raw.lstrip().startswith(b"{"):
        return "ndjson"
    return "csv"


def _output_format(output: str | None, given: Format | None) -> Format:
    if given is not None:
        return given
    if output is None or output == STDIO:
        return "csv"
    try:
        return format_of(output)
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; or pass --format", param_hint="--output") from None


def _write(frame: pl.DataFrame, fmt: Format, out: IO[bytes]) -> None:
    buffer = io.BytesIO()
    writers: dict[str, Callable[[io.BytesIO], object]] = {
        "csv": frame.write_csv,
        "parquet": frame.write_parquet,
        "ipc": frame.write_ipc,
        "ndjson": frame.write_ndjson,
    }
    writers[fmt](buffer)
    out.write(buffer.getvalue())
    out.flush()
