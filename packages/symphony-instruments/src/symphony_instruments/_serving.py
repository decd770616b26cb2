"""One replica of ``symphony serve``: a real `Host` running one instrument, answering the Open Inference
Protocol (KServe v2 REST) over Ray Serve's HTTP proxy.

Each replica opens its own host in a fresh home, grants the instrument what it was granted where
``symphony serve`` ran (no more), applies the same config values, and starts it in the same tier: an
instrument that host would isolate runs in this replica's isolated workers. Requests go through the
host's ``infer``, so the instrument's own batcher gathers the replica's concurrent requests into batches.

Imported by Ray in each replica (and by ``symphony serve``, which needs the `ray` extra): never by the
kit's own modules.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from symphony_core import Host, State, SymphonyError

from ._contributions import read_contributions
from ._errors import BatcherClosed, DeadlineExceeded, InvalidInput, Overloaded
from ._protocol import (
    BINARY_EXTENSION,
    HEADER_LENGTH,
    TensorError,
    decode_all,
    encode,
    encode_binary,
    metadata,
    split_binary,
)

JSON_TYPE = "application/json"


class Replica:
    """A Ray Serve replica of one instrument; ``spec`` is what `symphony serve` read from its own host:
    ``extension``, ``isolation`` (the tier), ``grants`` (scopes as `Host.grant` takes them), ``config``
    (top-level key to the text `Host.set_config` takes) and ``max_request_bytes``."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.extension: str = spec["extension"]
        self.max_request_bytes = int(spec["max_request_bytes"])
        self._home = Path(tempfile.mkdtemp(prefix="symphony-replica-"))
        self.host = Host(self._home, isolation=spec["isolation"], actor="symphony serve")
        try:
            self.host.discover()
            if spec["grants"]:  # Host.grant with no scope grants every request: grant only these
                self.host.grant(self.extension, list(spec["grants"]))
            for key, text in spec["config"].items():
                self.host.set_config(self.extension, key, text)
            self.host.start(self.extension)
            info = self.host.inspect(self.extension)
            self.version = info.version
            contributions = read_contributions(info.manifest or {}, extension=self.extension)
            self.metadata = metadata(self.extension, self.version, contributions)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the instrument and remove this replica's home."""
        try:
            self.host.close()
        finally:
            shutil.rmtree(self._home, ignore_errors=True)

    def __del__(self) -> None:  # Ray Serve drops a replica it stops; its host stops with it
        if self._home.exists():
            self.close()

    def check_health(self) -> None:
        """Ray Serve's health check: the instrument is still active (a quarantined one is not)."""
        state = self.host.inspect(self.extension).state
        if state is not State.ACTIVE:
            raise RuntimeError(f"{self.extension} is {state.value}, no longer active")

    async def __call__(self, request: Request) -> Response:
        route = _route(request)[2:]  # after v2/models
        if not route or route[0] != self.extension:
            return _error(
                404, f"no model '{route[0] if route else ''}' here; this route serves '{self.extension}'"
            )
        rest = route[1:]
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or rest[1] != self.version:
                return _error(404, f"model '{self.extension}' has version {self.version} only")
            rest = rest[2:]
        if rest == [] and request.method == "GET":
            return JSONResponse(self.metadata)
        if rest == ["ready"] and request.method == "GET":
            return JSONResponse({"name": self.extension, "ready": True})
        if rest == ["infer"] and request.method == "POST":
            return await self._infer(request)
        known = rest in ([], ["ready"], ["infer"])
        return _error(405 if known else 404, f"no route {request.method} {request.url.path}")

    async def _infer(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        try:
            text, binary = split_binary(body, request.headers.get(HEADER_LENGTH))
        except TensorError as exc:
            return _error(400, str(exc))
        try:
            message = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(400, f"the request body is not JSON: {exc}")
        if not isinstance(message, dict):
            return _error(400, "the request body must be a JSON object with 'inputs'")
        try:
            inputs = decode_all(message.get("inputs"), side="input", binary=binary)
            wanted, as_binary = _wanted(message.get("outputs"), message.get("parameters"))
        except TensorError as exc:
            return _error(400, str(exc))
        try:
            outputs = await self.host.acall(self.extension, "infer", inputs)
        except InvalidInput as exc:
            return _error(400, str(exc))
        except Overloaded as exc:
            wait = 1 if exc.retry_after is None else max(1, math.ceil(exc.retry_after))
            return _error(503, str(exc), {"Retry-After": str(wait)})
        except BatcherClosed as exc:
            return _error(503, str(exc), {"Retry-After": "1"})
        except DeadlineExceeded as exc:
            return _error(504, str(exc))
        except SymphonyError as exc:
            return _error(500, str(exc))
        unknown = sorted(set(wanted or ()) - set(outputs))
        if unknown:
            return _error(
                400, f"no output {', '.join(map(repr, unknown))}: the model answers {sorted(outputs)}"
            )
        tensors, chunks = [], []
        for name, array in outputs.items():
            if wanted is not None and name not in wanted:
                continue
            if as_binary(name):
                tensor, chunk = encode_binary(name, array)
                tensors.append(tensor)
                chunks.append(chunk)
            else:
                tensors.append(encode(name, array))
        answer: dict[str, Any] = {
            "model_name": self.extension,
            "model_version": self.version,
            "outputs": tensors,
        }
        if isinstance(message.get("id"), str):
            answer["id"] = message["id"]
        if not chunks:
            return JSONResponse(answer)
        head = json.dumps(answer).encode()
        return Response(
            b"".join((head, *chunks)),
            media_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(head))},
        )

    async def _body(self, request: Request) -> bytes | Response:
        """The body, or a 413 answer once it is larger than the limit (read no further)."""
        limit = self.max_request_bytes
        too_large = _error(
            413,
            f"the request body is larger than this server accepts ({limit} bytes): send fewer items per "
            "request, or raise serving.max_request_mb",
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return too_large
            chunks.append(chunk)
        return b"".join(chunks)


class Health:
    """The server's own routes: its metadata at ``/v2`` (the protocol's extensions it speaks: binary tensor
    data), ``/v2/health/live`` and ``/v2/health/ready``, answered while the HTTP proxy and this deployment
    run (each model says whether it is ready at ``/v2/models/{id}/ready``); any other route under ``/v2``
    that no model's deployment takes is a 404 naming it."""

    async def __call__(self, request: Request) -> Response:
        route = _route(request)
        if request.method == "GET" and route in (["v2", "health", "live"], ["v2", "health", "ready"]):
            return JSONResponse({route[2]: True})
        if request.method == "GET" and route == ["v2"]:
            return JSONResponse({"name": "symphony", "version": _version(), "extensions": [BINARY_EXTENSION]})
        return _error(404, f"no route {request.method} {request.url.path}")


def _route(request: Request) -> list[str]:
    """The request's path segments from ``v2`` on, whether or not the proxy took its prefix off."""
    path, root = request.scope.get("path", ""), request.scope.get("root_path", "")
    if root and not path.startswith(root):
        path = root + path
    return [part for part in path.split("/") if part]


def _wanted(outputs: Any, parameters: Any) -> tuple[set[str] | None, Callable[[str], bool]]:
    """The outputs asked for (None: all), and which of them to send as binary data: those whose
    parameters say ``binary_data``, else all when the request's say ``binary_data_output``."""
    every = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    if outputs is None:
        return None, lambda name: every
    if not isinstance(outputs, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in outputs
    ):
        raise TensorError("'outputs' must be a list of objects with a name")
    chosen: dict[str, bool] = {}
    for item in outputs:
        given = item.get("parameters")
        flag = given.get("binary_data") if isinstance(given, dict) else None
        chosen[item["name"]] = flag if isinstance(flag, bool) else every
    return set(chosen), lambda name: chosen.get(name, every)


def _version() -> str:
    from importlib.metadata import version

    return version("symphony-instruments")


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))
