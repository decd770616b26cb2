"""The Open Inference Protocol's tensors, as JSON and as binary tensor data, both ways and malformed.

What a replica of ``symphony serve`` reads from a request and `RemoteInstrument` reads from an answer:
every malformed body must be a `TensorError` naming the field, never an array of other bytes.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from symphony_instruments._protocol import (
    TensorError,
    decode_all,
    encode,
    encode_binary,
    split_binary,
)

ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "float16": np.array([[1.5, -2.25]], dtype=np.float16),
    "int64": np.array([-(2**40), 0, 2**40], dtype=np.int64),
    "uint8": np.array([[0, 255]], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "big-endian float64": np.array([1.0, 2.5], dtype=">f8"),
    "strings": np.array(["a", "", "ü and more"], dtype=object),
    "empty": np.zeros((0, 5), dtype=np.float32),
}


def body(arrays: dict[str, Any]) -> tuple[bytes, str]:
    """A request body with every array as binary data, and its header's value."""
    encoded = [encode_binary(name, array) for name, array in arrays.items()]
    head = json.dumps({"inputs": [tensor for tensor, _ in encoded]}).encode()
    return b"".join((head, *(data for _, data in encoded))), str(len(head))


def read(data: bytes, header: str | None) -> dict[str, Any]:
    text, binary = split_binary(data, header)
    return decode_all(json.loads(text)["inputs"], side="input", binary=binary)


@pytest.mark.parametrize("name", ARRAYS)
def test_binary_and_json_tensors_read_back_the_same_values(name: str) -> None:
    array = ARRAYS[name]

    from_binary = read(*body({name: array}))[name]
    from_json = decode_all([json.loads(json.dumps(encode(name, array)))], side="input")[name]

    for found in (from_binary, from_json):
        assert found.shape == array.shape
        assert found.tolist() == array.tolist()
    assert from_binary.dtype == from_json.dtype
    assert from_binary.flags.writeable


def test_several_binary_tensors_are_read_in_their_order_and_json_ones_among_them() -> None:
    data, header = body({"a": ARRAYS["float32"], "s": ARRAYS["strings"], "b": ARRAYS["int64"]})
    text, binary = split_binary(data, header)
    message = json.loads(text)
    message["inputs"].insert(1, encode("j", np.array([1, 2], dtype=np.int32)))

    found = decode_all(message["inputs"], side="input", binary=binary)

    assert list(found) == ["a", "j", "s", "b"]
    assert found["b"].tolist() == ARRAYS["int64"].tolist()
    assert found["s"].tolist() == ARRAYS["strings"].tolist()


def _broken(change: str) -> tuple[bytes, str | None]:
    data, header = body({"x": np.arange(6, dtype=np.float32).reshape(2, 3)})
    head = json.loads(data[: int(header)])
    tensor = head["inputs"][0]
    tail = data[int(header) :]
    if change == "header past the body":
        return data, str(len(data) + 1)
    if change == "header not a number":
        return data, "12abc"
    if change == "no header":
        return data[: int(header)], None
    if change == "size larger than what follows":
        tensor["parameters"]["binary_data_size"] = 100
    elif change == "size smaller than its shape":
        tensor["parameters"]["binary_data_size"] = 20
        tail = tail[:20]
    elif change == "bytes left over":
        tail += b"\0" * 8
    elif change == "negative size":
        tensor["parameters"]["binary_data_size"] = -4
    elif change == "data and size both":
        tensor["data"] = [0.0] * 6
    elif change == "parameters not an object":
        tensor["parameters"] = [24]
    text = json.dumps(head).encode()
    return text + tail, str(len(text))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("header past the body", "inference-header-content-length is"),
        ("header not a number", "inference-header-content-length is '12abc'"),
        ("no header", "binary_data_size is 24, but the body holds 0 bytes"),
        ("size larger than what follows", "binary_data_size is 100, but the body holds 24 bytes"),
        ("size smaller than its shape", "20 bytes of binary data, but shape [2, 3] of FP32 needs 24"),
        ("bytes left over", "add up to 24 bytes, but 32 follow the JSON"),
        ("negative size", "binary_data_size must be a size in bytes"),
        ("data and size both", "data and binary_data_size are both given"),
        ("parameters not an object", "parameters must be an object"),
    ],
)
def test_malformed_binary_data_is_a_tensor_error_naming_what_is_wrong(change: str, words: str) -> None:
    with pytest.raises(TensorError) as refused:
        read(*_broken(change))

    assert words in str(refused.value)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x05\0\0\0ab", "an element of 5 bytes runs past its binary data"),
        (b"\x01\0", "ends inside an element's length"),
        (b"\x02\0\0\0\xff\xfe" * 3, "BYTES elements must be UTF-8 text"),
        (b"\x01\0\0\0a" * 4, "holds 4 elements, but shape [3] needs 3"),
    ],
)
def test_malformed_binary_strings_are_refused(data: bytes, words: str) -> None:
    head = json.dumps(
        {
            "inputs": [
                {
                    "name": "s",
                    "shape": [3],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(data)},
                }
            ]
        }
    ).encode()

    with pytest.raises(TensorError) as refused:
        read(head + data, str(len(head)))

    assert words in str(refused.value)
