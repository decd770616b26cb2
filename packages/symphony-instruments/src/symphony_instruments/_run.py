"""``symphony run ID INPUT.json|INPUT.npy [-o OUTPUT.json|.npz]``: an installed instrument on input from a file.

The core's ``symphony run`` finds this command through its table of kinds and passes it a host (not yet
running the instrument) and the instrument's id in ``ctx.obj``. The input's arrays are made with the
dtypes the manifest declares for each input; the request goes through the host's ``infer``, as any
caller's does (batched, checked against the declared tensors, isolated unless trusted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from ._contributions import Contributions, read_contributions
from ._errors import InvalidInput

INPUT_SUFFIXES = (".json", ".npy")
OUTPUT_SUFFIXES = (".json", ".npz")


@click.command()
@click.argument("input", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="INPUT")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the outputs to this .json or .npz file instead of printing them as JSON.",
)
@click.pass_obj
def run(obj: dict[str, Any], input: Path, output: Path | None) -> None:
    """Run the instrument on INPUT and print its outputs as JSON (or write them to OUTPUT).

    INPUT is a .json file holding an object of input name to nested lists (or, for a model of one
    input, the nested list itself), or a .npy file holding the array of a model of one input. Each
    array is made with the dtype the manifest declares for its input.

    \b
    Examples:
      symphony run acme.digits pixels.json
      symphony run acme.digits pixels.npy -o outputs.npz
    """
    host, extension = obj["host"], obj["extension"]
    if input.suffix.lower() not in INPUT_SUFFIXES:
        raise click.BadParameter(f"{input} is neither a .json nor a .npy file", param_hint="INPUT")
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise click.BadParameter(f"{output} is neither a .json nor a .npz file", param_hint="--output")
    info = host.inspect(extension)
    declared = read_contributions(info.manifest or {}, extension=extension)
    inputs = _inputs(_load(input), declared, extension)
    host.start(extension)
    outputs = host.call(extension, "infer", inputs)
    if output is None:
        click.echo(json.dumps(_lists(outputs), indent=2))
    elif output.suffix.lower() == ".npz":
        arrays: dict[str, Any] = {name: np.asarray(value) for name, value in outputs.items()}
        np.savez(output, **arrays)
    else:
        output.write_text(json.dumps(_lists(outputs), indent=2) + "\n", encoding="utf-8")
    if output is not None:
        click.echo(f"wrote {output.absolute()}", err=True)


def _load(path: Path) -> Any:
    """What the file holds: a JSON value, or an array from a .npy file (never pickled objects)."""
    if path.suffix.lower() == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise click.BadParameter(
                f"{path} is not a .npy array of numbers: {exc}", param_hint="INPUT"
            ) from None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"{path} is not JSON: {exc}", param_hint="INPUT") from None


def _inputs(data: Any, declared: Contributions, extension: str) -> dict[str, np.ndarray[Any, Any]]:
    """Each declared input's array, with its declared dtype."""
    names = [spec.name for spec in declared.inputs]
    if not isinstance(data, dict):
        if len(names) != 1:
            raise InvalidInput(
                f"the model takes {len(names)} inputs ({', '.join(names)}), so one array cannot be its input",
                extension=extension,
                hint='give a JSON object of input name to nested lists, e.g. {"' + names[0] + '": [[...]]}',
            )
        data = {names[0]: data}
    unknown = sorted(set(data) - set(names))
    missing = [name for name in names if name not in data]
    if unknown or missing:
        problems = [f"no input '{name}'" for name in unknown] + [
            f"input '{name}' is missing" for name in missing
        ]
        raise InvalidInput(
            f"the input does not match the model's: {'; '.join(problems)}",
            extension=extension,
            hint=f"the model takes {', '.join(spec.describe() for spec in declared.inputs)}",
        )
    arrays = {}
    for spec in declared.inputs:
        try:
            arrays[spec.name] = np.asarray(data[spec.name], dtype=spec.numpy_dtype)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"input '{spec.name}' cannot be made {spec.dtype}: {exc}",
                extension=extension,
                input=spec.name,
                hint=f"give nested lists of one shape, {spec.describe()}",
            ) from None
    return arrays


def _lists(outputs: Any) -> dict[str, Any]:
    return {str(name): np.asarray(value).tolist() for name, value in dict(outputs).items()}
