"""The Open Inference Protocol (KServe v2, REST): tensors, model metadata, and their checks.

Both sides of the wire use it: ``symphony serve``'s replicas read requests and write answers with it,
and `RemoteInstrument` writes requests and reads answers. A tensor is ``{"name", "shape", "datatype",
"data"}`` with ``data`` flat in row-major order (nested lists are read too); ``string`` tensors are the
protocol's ``BYTES``, carried as JSON strings.

With the protocol's binary tensor data extension, a tensor's values travel as raw bytes after the JSON
instead: the ``Inference-Header-Content-Length`` header gives the JSON's length, and each such tensor says
``"parameters": {"binary_data_size": N}`` in place of ``data``, its N bytes following in the order of the
tensors (numbers little-endian in row-major order; each ``BYTES`` element as a 4-byte little-endian length
and its UTF-8 bytes). No list of floats is written or parsed: for large tensors, most of JSON's cost.
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
BINARY_EXTENSION = "binary_tensor_data"
"""The extension's name in a server's metadata (``GET /v2``)."""
HEADER_LENGTH = "inference-header-content-length"
"""The HTTP header giving the length of the JSON before the binary tensor data."""


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


def encode_binary(name: str, array: Array) -> tuple[dict[str, Any], bytes]:
    """One array as a protocol tensor whose values travel as binary data, and those bytes."""
    value = np.asarray(array)
    if value.dtype.kind in "OUS":
        items = [str(item).encode() for item in value.reshape(-1)]
        data = b"".join(len(item).to_bytes(4, "little") + item for item in items)
        datatype = "BYTES"
    else:
        datatype = DATATYPES.get(value.dtype.name, "")
        if not datatype:
            raise TensorError(f"tensor '{name}' is {value.dtype}, which the protocol cannot carry")
        data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
    tensor = {
        "name": name,
        "shape": list(value.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(data)},
    }
    return tensor, data


def split_binary(body: bytes, header_length: str | None) -> tuple[bytes, memoryview | None]:
    """A body's JSON and the binary tensor data after it (None without the header that splits them)."""
    if header_length is None:
        return body, None
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise TensorError(
            f"{HEADER_LENGTH} is {header_length[:40]!r}: it must be the length of the JSON that starts the "
            f"body ({len(body)} bytes)"
        )
    size = int(header_length)
    return body[:size], memoryview(body)[size:]


def decode(
    tensor: Any, *, side: str = "tensor", binary: memoryview | None = None, at: int = 0
) -> tuple[str, Array]:
    """A protocol tensor as its name and array, its values in ``data`` or, when its parameters give a
    ``binary_data_size``, in ``binary`` from ``at`` on; `TensorError` names the field at fault."""
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
    size = binary_size(tensor, side=side)
    if size is not None:
        if "data" in tensor:
            raise TensorError(f"{side} '{name}': data and binary_data_size are both given")
        if binary is None or at + size > len(binary):
            raise TensorError(
                f"{side} '{name}': binary_data_size is {size}, but the body holds "
                f"{0 if binary is None else max(0, len(binary) - at)} bytes of binary data for it"
            )
        return name, _from_binary(binary[at : at + size], dtype, DATATYPES[dtype], shape, f"{side} '{name}'")
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


def binary_size(tensor: Mapping[str, Any], *, side: str = "tensor") -> int | None:
    """The ``binary_data_size`` a tensor's parameters give, or None."""
    parameters = tensor.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, Mapping):
        raise TensorError(f"{side} '{tensor.get('name')}': parameters must be an object")
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise TensorError(f"{side} '{tensor.get('name')}': binary_data_size must be a size in bytes")
    return size


def _from_binary(chunk: memoryview, dtype: str, datatype: str, shape: list[int], what: str) -> Array:
    count = math.prod(shape)
    if dtype != "string":
        kind = np.dtype(dtype).newbyteorder("<")
        if len(chunk) != count * kind.itemsize:
            raise TensorError(
                f"{what}: {len(chunk)} bytes of binary data, but shape {shape} of {datatype} needs "
                f"{count * kind.itemsize}"
            )
        return np.frombuffer(chunk, dtype=kind).astype(kind.newbyteorder("="), copy=True).reshape(shape)
    items: list[str] = []
    at = 0
    while at < len(chunk):
        if at + 4 > len(chunk):
            raise TensorError(f"{what}: its binary BYTES data ends inside an element's length")
        length = int.from_bytes(chunk[at : at + 4], "little")
        if at + 4 + length > len(chunk):
            raise TensorError(f"{what}: an element of {length} bytes runs past its binary data")
        try:
            items.append(bytes(chunk[at + 4 : at + 4 + length]).decode())
        except UnicodeDecodeError:
            raise TensorError(f"{what}: BYTES elements must be UTF-8 text") from None
        at += 4 + length
        if len(items) > count:
            break
    if len(items) != count:
        raise TensorError(
            f"{what}: its binary data holds {len(items)} elements, but shape {shape} needs {count}"
        )
    return np.asarray(items, dtype=object).reshape(shape)


def decode_all(tensors: Any, *, side: str, binary: memoryview | None = None) -> dict[str, Array]:
    """A list of protocol tensors as named arrays, those sent as binary data read from ``binary`` in
    their order (which they must use up); a name given twice is an error."""
    if not isinstance(tensors, list):
        raise TensorError(f"'{side}s' must be a list of tensors")
    arrays: dict[str, Array] = {}
    at = 0
    for tensor in tensors:
        name, array = decode(tensor, side=side, binary=binary, at=at)
        if name in arrays:
            raise TensorError(f"{side} '{name}' is given twice")
        arrays[name] = array
        at += binary_size(tensor, side=side) or 0
    if binary is not None and at != len(binary):
        raise TensorError(
            f"the {side}s' binary_data_size add up to {at} bytes, but {len(binary)} follow the JSON"
        )
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
