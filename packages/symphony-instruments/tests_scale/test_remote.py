"""`RemoteInstrument` against the digits example served on the Ray cluster, and against small real HTTP
servers on loopback that misbehave: answers that are not JSON, wrong shapes, hangs, 413, 503."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from symphony_core import ConsentRequired, Host, State, SymphonyError, write_distribution
from symphony_core._security._sandbox._probe import probe
from symphony_instruments import (
    DeadlineExceeded,
    EndpointError,
    InvalidInput,
    ModelMismatch,
    Overloaded,
    RemoteInstrument,
)

pytestmark = pytest.mark.slow

DIGITS = "examples.digits"
REMOTE = "acme.remote-digits"
CONTRIBUTES = {
    "inputs": [{"name": "pixels", "dtype": "float32", "shape": ["batch", 64]}],
    "outputs": [
        {"name": "label", "dtype": "int64", "shape": ["batch"]},
        {"name": "probabilities", "dtype": "float32", "shape": ["batch", 10]},
    ],
}
MANIFEST = """
id = "acme.remote-digits"
kind = "instrument"
name = "Remote digits"
summary = "The digits model, served elsewhere."
targets = "symphony-instruments>=0.1,<0.2"
config = "symphony_instruments:RemoteConfig"

[[permissions]]
type = "net.connect"
hosts = ["{where}"]
reason = "Send the pixels to the model server."

[contributes]
inputs = [{{ name = "pixels", dtype = "float32", shape = ["batch", 64] }}]
outputs = [
  {{ name = "label", dtype = "int64", shape = ["batch"] }},
  {{ name = "probabilities", dtype = "float32", shape = ["batch", 10] }},
]
"""


def _pixels(count: int) -> np.ndarray[Any, Any]:
    return (load_digits().data[:count] / 16.0).astype(np.float32)


def _served(url: str, pixels: np.ndarray[Any, Any]) -> dict[str, Any]:
    body = {
        "inputs": [
            {
                "name": "pixels",
                "shape": list(pixels.shape),
                "datatype": "FP32",
                "data": pixels.ravel().tolist(),
            }
        ]
    }
    answer = httpx.post(f"{url}/v2/models/{DIGITS}/infer", json=body, timeout=60).json()
    return {
        tensor["name"]: np.asarray(tensor["data"]).reshape(tensor["shape"]) for tensor in answer["outputs"]
    }


def _install(tmp_path: Path, url: str, requested: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """An extension serving the digits through RemoteInstrument, requesting ``net.connect requested``,
    installed where the host finds it (and imports it, in the guard tier)."""
    site, home = tmp_path / "site", tmp_path / "home"
    monkeypatch.syspath_prepend(str(site))
    write_distribution(
        site,
        "acme-remote-digits",
        files={
            "acme_remote_digits/__init__.py": "from symphony_instruments import RemoteInstrument as RemoteDigits\n",
            "acme_remote_digits/symphony.toml": textwrap.dedent(MANIFEST.format(where=requested)).lstrip(),
        },
        entry_points={"symphony.instruments": {REMOTE: "acme_remote_digits:RemoteDigits"}},
        requires=["symphony-instruments[remote]>=0.1,<0.2"],
    )
    (home / "config").mkdir(parents=True)
    (home / "config" / f"{REMOTE}.toml").write_text(f'url = "{url}"\nmodel = "{DIGITS}"\n')
    return site, home


TIERS = [
    "guard",
    pytest.param("isolated", marks=pytest.mark.skipif(not probe().supported, reason="needs Linux")),
]


@pytest.mark.parametrize("isolation", TIERS)
def test_a_remote_instrument_reads_what_the_served_model_reads(
    digits_url, tmp_path, isolation, monkeypatch
) -> None:
    port = digits_url.rsplit(":", 1)[1]
    site, home = _install(tmp_path, digits_url, f"127.0.0.1:{port}", monkeypatch)
    pixels = _pixels(30)
    with Host(home, path=[str(site), *sys.path], isolation=isolation) as host:
        host.discover()
        host.grant(REMOTE)
        host.start(REMOTE)

        async def callers() -> list[dict[str, Any]]:
            return await asyncio.gather(*(host.acall(REMOTE, "infer", {"pixels": p}) for p in pixels))

        answers = asyncio.run(callers())
        with pytest.raises(InvalidInput):
            host.call(REMOTE, "infer", {"pixels": pixels[:, :10]})
    served = _served(digits_url, pixels)
    assert [int(answer["label"]) for answer in answers] == served["label"].tolist()
    np.testing.assert_allclose(
        np.stack([a["probabilities"] for a in answers]), served["probabilities"], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("isolation", TIERS)
def test_a_remote_instrument_not_granted_its_host_and_port_cannot_connect(
    digits_url, tmp_path, isolation, monkeypatch
) -> None:
    port = digits_url.rsplit(":", 1)[1]
    site, home = _install(tmp_path, digits_url, f"127.0.0.1:{port}", monkeypatch)
    with Host(home, path=[str(site), *sys.path], isolation=isolation) as host:
        host.discover()
        with pytest.raises(ConsentRequired) as refused:
            host.start(REMOTE)  # nothing granted: the host refuses to run it at all
    assert REMOTE in str(refused.value)
    assert f"net.connect 127.0.0.1:{port}" in str(refused.value)


def test_a_remote_instrument_refuses_a_url_its_manifest_does_not_request(
    digits_url, tmp_path, monkeypatch
) -> None:
    site, home = _install(tmp_path, digits_url, "127.0.0.1:1", monkeypatch)
    with Host(home, path=[str(site), *sys.path], isolation="guard") as host:
        host.discover()
        host.grant(REMOTE)
        with pytest.raises(SymphonyError, match="does not request"):
            host.start(REMOTE)


# Misbehaving endpoints


class _Endpoint(BaseHTTPRequestHandler):
    """Answers the metadata right and each model's infer wrongly, as its name says."""

    attempts: ClassVar[dict[str, int]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if not self.path.startswith("/v2/models/"):  # no server metadata: as some servers do
            self._answer(404, b'{"error": "no such route"}')
            return
        meta = {
            "name": self.path.split("/")[3],
            "versions": ["1"],
            "platform": "test",
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}],
            "outputs": [
                {
                    "name": "label",
                    "datatype": "INT64" if "mismatch" not in self.path else "FP32",
                    "shape": [-1],
                },
                {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            ],
        }
        self._answer(200, json.dumps(meta).encode())

    def do_POST(self) -> None:
        model = self.path.split("/")[3]
        length = int(self.headers.get("content-length", "0"))
        if model == "large" and length > 1000:
            self._answer(413, b'{"error": "too large"}')
            return
        request = json.loads(self.rfile.read(length))
        items = request["inputs"][0]["shape"][0]
        type(self).attempts[model] = type(self).attempts.get(model, 0) + 1
        if model == "garbage":
            self._answer(200, b"<html>surprise</html>")
        elif model == "shape":
            outputs = [
                {"name": "label", "shape": [items + 1], "datatype": "INT64", "data": [0] * (items + 1)},
                {
                    "name": "probabilities",
                    "shape": [items, 10],
                    "datatype": "FP32",
                    "data": [0.0] * items * 10,
                },
            ]
            self._answer(200, json.dumps({"outputs": outputs}).encode())
        elif model == "hang":
            time.sleep(3)
            self._answer(200, b"{}")
        elif model == "busy":
            self._answer(503, b'{"error": "queue full"}', {"retry-after": "0"})
        elif model == "picky":
            self._answer(400, b'{"error": "pixels out of range"}')
        else:
            self._answer(200, b'{"outputs": []}')


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _create(url: str, model: str, **config: Any) -> RemoteInstrument:
    host_port = url.removeprefix("http://")
    manifest = {
        "id": "acme.remote",
        "contributes": CONTRIBUTES,
        "permissions": [{"type": "net.connect", "hosts": [host_port], "reason": "its model"}],
    }
    values = {"url": url, "model": model, "warmup_batches": 0, "backoff_s": 0.01, **config}
    return RemoteInstrument.create(values, manifest=manifest)


async def _infer(url: str, model: str, items: int = 2, **config: Any) -> dict[str, Any]:
    async with _create(url, model, **config) as remote:
        return await remote.infer({"pixels": np.zeros((items, 64), np.float32)})


@pytest.mark.parametrize(
    ("model", "error", "words"),
    [
        ("garbage", EndpointError, "not JSON"),
        ("shape", EndpointError, "output 'label' has shape [3]"),
        ("empty", EndpointError, "lacks output 'label'"),
        ("picky", InvalidInput, "pixels out of range"),
    ],
)
def test_a_remote_that_answers_garbage_is_an_error_naming_the_endpoint(endpoint, model, error, words) -> None:
    with pytest.raises(error) as raised:
        asyncio.run(_infer(endpoint, model))
    assert words in str(raised.value)
    if error is EndpointError:
        assert raised.value.endpoint == f"{endpoint}/v2/models/{model}/infer"


def test_a_remote_that_hangs_is_a_deadline_exceeded_naming_the_endpoint(endpoint) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"no answer within 0\.5 s"):
        asyncio.run(_infer(endpoint, "hang", timeout_s=0.5))
    assert time.monotonic() - started < 2.5


def test_a_request_over_the_remote_limit_is_an_endpoint_error_with_its_413(endpoint) -> None:
    with pytest.raises(EndpointError) as raised:
        asyncio.run(_infer(endpoint, "large", items=8))
    assert raised.value.status == 413
    assert "larger than the endpoint accepts" in str(raised.value)


def test_an_overloaded_remote_is_retried_then_overloaded(endpoint) -> None:
    _Endpoint.attempts.pop("busy", None)
    with pytest.raises(Overloaded, match="after 3 attempt"):
        asyncio.run(_infer(endpoint, "busy", retries=2))
    assert _Endpoint.attempts["busy"] == 3


def test_a_remote_whose_metadata_differs_from_the_manifest_is_refused(endpoint) -> None:
    with pytest.raises(ModelMismatch, match=r"outputs\.label"):
        asyncio.run(_infer(endpoint, "mismatch"))


def test_a_remote_where_nothing_listens_is_unreachable_after_its_retries() -> None:
    with socket.socket() as probe_socket:  # a port just freed: what a stopped cluster leaves
        probe_socket.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe_socket.getsockname()[1]}"
    with pytest.raises(EndpointError, match=r"cannot connect after 3 attempt"):
        asyncio.run(_infer(url, DIGITS, retries=2))


@pytest.mark.stops_cluster
def test_a_remote_instrument_whose_cluster_went_away_answers_each_caller_an_endpoint_error(
    cluster, digits_url, tmp_path, monkeypatch
) -> None:
    port = digits_url.rsplit(":", 1)[1]
    site, home = _install(tmp_path, digits_url, f"127.0.0.1:{port}", monkeypatch)
    (home / "config" / f"{REMOTE}.toml").write_text(
        f'url = "{digits_url}"\nmodel = "{DIGITS}"\nretries = 2\nbackoff_s = 0.05\ntimeout_s = 10\n'
    )
    pixels = _pixels(4)
    with Host(home, path=[str(site), *sys.path], isolation="guard") as host:
        host.discover()
        host.grant(REMOTE)
        host.start(REMOTE)
        assert (
            host.call(REMOTE, "infer", {"pixels": pixels[0]})["label"]
            == _served(digits_url, pixels[:1])["label"][0]
        )

        cluster.stop()

        async def callers() -> list[BaseException | dict[str, Any]]:
            calls = (host.acall(REMOTE, "infer", {"pixels": p}) for p in pixels)
            return await asyncio.gather(*calls, return_exceptions=True)

        started = time.monotonic()
        answers = asyncio.run(callers())
        assert time.monotonic() - started < 30, "every caller is answered, none is left waiting"
        assert all(isinstance(answer, EndpointError) for answer in answers), answers
        assert all(digits_url in str(answer) for answer in answers)
        assert (
            host.inspect(REMOTE).state is State.ACTIVE
        )  # the instrument stays, for when the endpoint returns


def test_a_remote_instrument_sends_binary_tensor_data_where_the_server_speaks_it(digits_url) -> None:
    pixels = _pixels(33)

    async def answers(binary: str) -> tuple[bool, dict[str, Any]]:
        async with _create(digits_url, DIGITS, binary=binary) as remote:
            return remote.binary, await remote.infer({"pixels": pixels})

    (binary, found), (plain, expected) = asyncio.run(answers("auto")), asyncio.run(answers("never"))

    assert (binary, plain) == (True, False)
    assert found["label"].tolist() == expected["label"].tolist()
    np.testing.assert_array_equal(found["probabilities"], expected["probabilities"])


def test_a_remote_without_server_metadata_is_sent_json(endpoint) -> None:
    async def probe() -> bool:
        async with _create(endpoint, "empty") as remote:
            return remote.binary

    assert asyncio.run(probe()) is False
