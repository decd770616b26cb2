"""The Open Inference Protocol (KServe v2, REST) as JSON: tensors, model metadata, and their checks.

Both sides of the wire use it: ``symphony serve``'s replicas read requests and write answers with it,
and `RemoteInstrument` writes requests and reads answers. A tensor is ``{"name", "shape", "datatype",
"data"}`` with ``data`` flat in row-major order (nested lists are read too); ``string`` tensors are the
protocol's ``BYTES``, carried as JSON strings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._contributions import Array, Contributions, TensorSpec

DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}
"""The protocol's datatype of each dtype a manifest may declare."""
DTYPES = {datatype: dtype for dtype, datatype in DATATYPES.items()}
PLATFORM = "symphony_instruments"


class TensorError(ValueError):
    """A tensor that breaks the protocol; the message names it and what is wrong."""


def encode(name: str, array: Array) -> dict[str, Any]:
    """One array as a protocol tensor."""
    value = np.asarray(array)
    dtype = "string" if value.dtype.kind in "OUS" else value.dtype.name
    datatype = DATATYPES.get(dtype)
    if datatype is None:
        raise TensorError(f"tensor '{name}' is {value.dtype}, which the protocol cannot carry")
    flat = value.reshape(-1)
    data = [str(item) for item in flat] if datatype == "BYTES" else flat.tolist()
    return {"name": name, "shape": list(value.shape), "datatype": datatype, "data": data}


def decode(tensor: Any, *, side: str = "tensor") -> tuple[str, Array]:
    """A protocol tensor as its name and array; `TensorError` names the field at fault."""
    if not isinstance(tensor, Mapping):
        raise TensorError(f"each {side} must be an object with name, shape, datatype and data")
    name = tensor.get("name")
    if not isinstance(name, str) or not name:
        raise TensorError(f"an {side} has no name")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape
    ):
        raise TensorError(f"{side} '{name}': shape must be a list of sizes, not {shape!r}")
    datatype = tensor.get("datatype")
    dtype = DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise TensorError(f"{side} '{name}': datatype {datatype!r} is not one of {', '.join(sorted(DTYPES))}")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise TensorError(f"{side} '{name}': data must be a list")
    try:
        values = np.asarray(data, dtype=object if dtype == "string" else np.dtype(dtype))
    except (TypeError, ValueError, OverflowError) as exc:
        raise TensorError(f"{side} '{name}': data cannot be read as {datatype}: {exc}") from None
    if values.size != math.prod(shape):
        raise TensorError(
            f"{side} '{name}': data holds {values.size} values, but shape {shape} needs {math.prod(shape)}"
        )
    if dtype == "string" and not all(isinstance(item, str) for item in values.reshape(-1)):
        raise TensorError(f"{side} '{name}': BYTES data must be strings")
    return name, values.reshape(shape)


def decode_all(tensors: Any, *, side: str) -> dict[str, Array]:
    """A list of protocol tensors as named arrays; a name given twice is an error."""
    if not isinstance(tensors, list):
        raise TensorError(f"'{side}s' must be a list of tensors")
    arrays: dict[str, Array] = {}
    for tensor in tensors:
        name, array = decode(tensor, side=side)
        if name in arrays:
            raise TensorError(f"{side} '{name}' is given twice")
        arrays[name] = array
    return arrays


def describe(specs: Iterable[TensorSpec]) -> list[dict[str, Any]]:
    """Declared tensors as the protocol's metadata lists them (a dynamic axis is -1)."""
    return [
        {
            "name": spec.name,
            "datatype": DATATYPES[spec.dtype],
            "shape": [size if isinstance(size, int) else -1 for size in spec.shape],
        }
        for spec in specs
    ]


def metadata(name: str, version: str, contributions: Contributions) -> dict[str, Any]:
    """The model metadata answer: its name, versions, platform, inputs and outputs."""
    return {
        "name": name,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": describe(contributions.inputs),
        "outputs": describe(contributions.outputs),
    }
