"""`symphony serve` deploys the digits example on a real Ray cluster; it answers the Open Inference
Protocol over real HTTP as the in-process host answers."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from symphony_core import Host

DIGITS = "examples.digits"

pytestmark = pytest.mark.slow


def _pixels(count: int) -> np.ndarray:
    return (load_digits().data[:count] / 16.0).astype(np.float32)


def test_the_served_digits_answer_health_metadata_and_readiness(digits_url: str) -> None:
    assert httpx.get(f"{digits_url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{digits_url}/v2/health/ready").json() == {"ready": True}
    metadata = httpx.get(f"{digits_url}/v2/models/{DIGITS}").json()
    assert metadata["name"] == DIGITS
    assert metadata["versions"] == ["0.1.0"]
    assert metadata["platform"] == "symphony_instruments"
    assert metadata["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
    ]
    assert httpx.get(f"{digits_url}/v2/models/{DIGITS}/ready").json() == {"name": DIGITS, "ready": True}


def test_the_served_digits_read_what_the_in_process_host_reads(digits_url, tmp_path) -> None:
    pixels = _pixels(40)
    with httpx.Client(base_url=digits_url, timeout=60) as client:
        answer = client.post(
            f"/v2/models/{DIGITS}/infer",
            json={
                "id": "r1",
                "inputs": [
                    {"name": "pixels", "shape": [40, 64], "datatype": "FP32", "data": pixels.ravel().tolist()}
                ],
            },
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_name"], body["id"]) == (DIGITS, "r1")
    outputs = {tensor["name"]: tensor for tensor in body["outputs"]}
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["label"]["shape"] == [40]
    assert outputs["probabilities"]["shape"] == [40, 10]
    with Host(tmp_path, isolation="guard") as host:
        host.discover()
        host.grant(DIGITS)
        host.start(DIGITS)
        local = host.call(DIGITS, "infer", {"pixels": pixels})
    assert outputs["label"]["data"] == local["label"].tolist()
    np.testing.assert_allclose(
        np.asarray(outputs["probabilities"]["data"]).reshape(40, 10),
        local["probabilities"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_server_says_it_speaks_binary_tensor_data_and_answers_it_as_json_answers(digits_url) -> None:
    from symphony_instruments._protocol import HEADER_LENGTH, decode_all, encode_binary, split_binary

    server = httpx.get(f"{digits_url}/v2").json()
    assert server["name"] == "symphony"
    assert "binary_tensor_data" in server["extensions"]
    pixels = _pixels(25)
    tensor, data = encode_binary("pixels", pixels)
    head = json.dumps(
        {
            "inputs": [tensor],
            "outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"binary_data": True}}],
        }
    ).encode()
    with httpx.Client(base_url=digits_url, timeout=60) as client:
        binary = client.post(
            f"/v2/models/{DIGITS}/infer",
            content=head + data,
            headers={"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))},
        )
        as_json = client.post(
            f"/v2/models/{DIGITS}/infer",
            json={
                "inputs": [
                    {"name": "pixels", "shape": [25, 64], "datatype": "FP32", "data": pixels.ravel().tolist()}
                ]
            },
        ).json()
        broken = client.post(
            f"/v2/models/{DIGITS}/infer",
            content=head + data[:-4],
            headers={"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))},
        )

    assert binary.status_code == 200, binary.text
    text, tail = split_binary(binary.content, binary.headers[HEADER_LENGTH])
    answer = json.loads(text)
    kinds = {tensor["name"]: "data" in tensor for tensor in answer["outputs"]}
    assert kinds == {"label": True, "probabilities": False}  # only what was asked for as binary data
    found = decode_all(answer["outputs"], side="output", binary=tail)
    expected = decode_all(as_json["outputs"], side="output")
    assert found["label"].tolist() == expected["label"].tolist()
    np.testing.assert_array_equal(found["probabilities"], expected["probabilities"])
    assert broken.status_code == 400
    assert "binary_data_size is 6400, but the body holds 6396 bytes" in broken.json()["error"]
