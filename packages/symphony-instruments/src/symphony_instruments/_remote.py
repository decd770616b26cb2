"""`RemoteInstrument`: an instrument whose model runs behind an Open Inference Protocol endpoint.

httpx is imported when one activates (the ``remote`` extra), never by ``import symphony_instruments``.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field

from symphony_core import ConfigError, PermissionDenied

from ._config import BatchingConfig, InstrumentConfig
from ._contributions import Array, Contributions
from ._errors import DeadlineExceeded, EndpointError, InvalidInput, ModelMismatch, Overloaded
from ._executors import Executor, OnLoop
from ._instrument import Batch, Instrument
from ._protocol import (
    BINARY_EXTENSION,
    DATATYPES,
    HEADER_LENGTH,
    TensorError,
    decode_all,
    encode,
    encode_binary,
    split_binary,
)

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")
REMOTE_EXTRA = "pip install 'symphony-instruments[remote]'"
RETRIED = (429, 502, 503)
"""Statuses answered before the model ran, retried after a backoff (or the endpoint's Retry-After)."""


class RemoteConfig(InstrumentConfig):
    """The config of a `RemoteInstrument`: where the model is served and how it is called."""

    url: str = Field(
        min_length=1,
        pattern=r"^https?://",
        description="The endpoint's base URL, e.g. `http://models.internal:8000`; the manifest's "
        "`net.connect` permission must name its host and port.",
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        description="The model's name at the endpoint (default: this extension's id).",
    )
    version: str | None = Field(default=None, min_length=1, description="One version of the model, or any.")
    timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        description="Each call's deadline (seconds): past it the batch gets `DeadlineExceeded`.",
    )
    connect_timeout_s: float = Field(
        default=2.0, gt=0.0, description="How long connecting may take (seconds)."
    )
    retries: int = Field(
        default=3,
        ge=0,
        le=20,
        description="Attempts after the first, for connect errors and 429/502/503 answers.",
    )
    backoff_s: float = Field(
        default=0.05, ge=0.0, description="The first wait between attempts (seconds); it doubles each time."
    )
    max_backoff_s: float = Field(
        default=2.0, ge=0.0, description="The longest wait between attempts (seconds)."
    )
    max_connections: int = Field(default=16, ge=1, description="Connections kept open to the endpoint.")
    batching: BatchingConfig = Field(
        default_factory=lambda: BatchingConfig(in_flight=4),
        description="See `BatchingConfig`; `in_flight` (default 4 here) is the requests sent at once.",
    )
    check_metadata: bool = Field(
        default=True,
        description="At activation, check the endpoint's model metadata against the manifest's tensors.",
    )
    binary: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Send and ask for tensors as binary data (the protocol's binary tensor data extension) "
        "instead of JSON lists: `auto` when the server's metadata (`GET /v2`) lists the extension, as "
        "`symphony serve` and Triton do.",
    )


class RemoteInstrument(Instrument[RemoteConfig]):
    """An instrument that sends its batches to a model served behind an Open Inference Protocol (KServe
    v2 REST) endpoint: ``symphony serve``, KServe, Triton, Seldon MLServer...

    Callers use ``infer`` as with any instrument: requests are checked against the manifest's
    ``[contributes]``, batched, and each batch is one ``POST {url}/v2/models/{model}/infer`` over a pool of
    kept-alive connections (async httpx on a thread of the instrument's own). Name the endpoint in the
    config (``url``, and ``model`` unless it is the extension's id), and request ``net.connect`` for its
    ``host:port`` in the manifest: activation refuses a URL the manifest does not name, and the host lets
    the instrument connect only where it was granted. Tensors travel as the protocol's binary tensor data
    where the server's metadata lists that extension (``binary``), else as JSON lists.

    What is retried, with exponential backoff (``backoff_s`` doubling up to ``max_backoff_s``, or the
    endpoint's ``Retry-After``), at most ``retries`` times: a connection that could not be made (nothing
    was sent), and the answers 429, 502 and 503 (the model did not run). Inference has no side effects,
    but nothing else is retried: a request the endpoint timed out on, or whose connection dropped
    while the model ran (it may have crashed the replica), is answered at once.

    Raised to the requests of a batch: `InvalidInput` (400), `Overloaded` (429 or 503 after the retries),
    `DeadlineExceeded` (no answer within ``timeout_s``, or 504), `EndpointError` (unreachable, 413, any
    other status, or an answer that is not the protocol's JSON or lacks the declared outputs and shapes).
    """

    config_model: ClassVar[type[InstrumentConfig]] = RemoteConfig

    endpoint: str
    """The URL each batch is posted to, as resolved at activation."""
    binary: bool = False
    """Whether batches travel as binary tensor data, as decided at activation."""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _client: httpx.AsyncClient | None = None

    async def load(self) -> None:
        """Check the manifest grants the URL, open the connection pool, and check the model's metadata."""
        config = self.config
        name = config.model or self.context.id
        base = f"{config.url.rstrip('/')}/v2/models/{name}"
        if config.version is not None:
            base += f"/versions/{config.version}"
        self.endpoint = f"{base}/infer"
        self._check_declared(config.url)
        try:
            import httpx
        except ImportError as exc:
            raise ConfigError(
                f"RemoteInstrument needs httpx ({exc})", extension=self.context.id, hint=REMOTE_EXTRA
            ) from None
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        # The host's guard knows whose code runs from the context: the thread runs in this one.
        thread = threading.Thread(
            target=contextvars.copy_context().run, args=(run,), name=f"{self.context.id} http", daemon=True
        )
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread
        limits = httpx.Limits(
            max_connections=config.max_connections, max_keepalive_connections=config.max_connections
        )
        timeout = httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s)

        async def client() -> httpx.AsyncClient:
            return httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False)

        self._client = self._wait(client())
        self.binary = config.binary == "always" or (
            config.binary == "auto"
            and await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._speaks_binary(), loop))
        )
        if config.check_metadata:
            found = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._metadata(base), loop))
            self._check_metadata(found)

    async def unload(self) -> None:
        """Close the connections and stop the instrument's HTTP thread."""
        loop, thread, client = self._loop, self._thread, self._client
        self._loop = self._thread = self._client = None
        if loop is None or thread is None:
            return
        if client is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(client.aclose(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()

    def _executor(self) -> Executor:
        # Batches are formed and sent on the HTTP thread's loop: no thread hop on the way.
        assert self._loop is not None
        return OnLoop(self._infer, self._loop, self.config.batching.in_flight)

    def predict(self, batch: Batch) -> Batch:
        """Send one batch to the endpoint and return its declared outputs (runs on the batcher's thread)."""
        return self._wait(self._infer(batch))

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coroutine.close()
            raise EndpointError(self.endpoint, "the instrument is not active", extension=self.context.id)
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    # Requests

    async def _infer(self, batch: Batch) -> dict[str, Array]:
        outputs = self.contributions.outputs
        headers = {"content-type": "application/json"}
        if self.binary:
            encoded = [encode_binary(name, array) for name, array in batch.items()]
            head = json.dumps(
                {
                    "inputs": [tensor for tensor, _ in encoded],
                    "outputs": [{"name": spec.name, "parameters": {"binary_data": True}} for spec in outputs],
                }
            ).encode()
            body = b"".join((head, *(data for _, data in encoded)))
            headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
        else:
            body = json.dumps(
                {
                    "inputs": [encode(name, array) for name, array in batch.items()],
                    "outputs": [{"name": spec.name} for spec in outputs],
                }
            ).encode()
        response = await self._send("POST", self.endpoint, body, headers)
        try:
            text, binary = split_binary(response.content, response.headers.get(HEADER_LENGTH))
        except TensorError as exc:
            raise self._garbage(f"its answer breaks the protocol: {exc}", response) from None
        answer = self._json(response, text)
        try:
            found = decode_all(
                answer.get("outputs") if isinstance(answer, dict) else None, side="output", binary=binary
            )
        except TensorError as exc:
            raise self._garbage(f"it answered outputs that break the protocol: {exc}", response) from None
        items = len(next(iter(batch.values())))
        result: dict[str, Array] = {}
        for spec in outputs:
            array = found.get(spec.name)
            if array is None:
                raise self._garbage(
                    f"its answer lacks output '{spec.name}' (it has {sorted(found)})", response
                )
            if (
                array.ndim != len(spec.shape)
                or array.shape[0] != items
                or any(
                    isinstance(size, int) and size != got
                    for size, got in zip(spec.shape[1:], array.shape[1:], strict=False)
                )
            ):
                raise self._garbage(
                    f"output '{spec.name}' has shape {list(array.shape)} for {items} items, but the manifest "
                    f"declares {spec.describe()}",
                    response,
                )
            result[spec.name] = array.astype(spec.numpy_dtype, copy=False)
        return result

    async def _metadata(self, url: str) -> Any:
        return self._json(await self._send("GET", url, None))

    async def _speaks_binary(self) -> bool:
        """Whether the server's metadata lists the binary tensor data extension (asked once, not retried:
        a server that cannot say is sent JSON)."""
        import httpx

        assert self._client is not None
        try:
            response = await self._client.get(f"{self.config.url.rstrip('/')}/v2")
            extensions = response.json().get("extensions") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            denied = _denied(exc)
            if denied is not None:
                raise denied from None
            return False
        return isinstance(extensions, list) and BINARY_EXTENSION in extensions

    async def _send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """One call, retried as the class says; an answer of 2xx, else the error its status means."""
        import httpx

        assert self._client is not None
        config = self.config
        started = time.monotonic()
        wait = config.backoff_s
        if headers is None:
            headers = {"content-type": "application/json"} if body is not None else {}
        for attempt in range(config.retries + 1):
            last = attempt == config.retries
            try:
                response = await self._client.request(method, url, content=body, headers=headers)
            except httpx.ConnectError as exc:  # nothing was sent
                denied = _denied(exc)
                if denied is not None:
                    raise denied from None
                if last:
                    raise self._unreachable(
                        url, f"cannot connect after {attempt + 1} attempt(s): {exc}"
                    ) from None
            except httpx.TimeoutException as exc:
                raise DeadlineExceeded(
                    f"{url}: no answer within {config.timeout_s} s ({type(exc).__name__})",
                    extension=self.context.id,
                    hint="the endpoint hangs or is overloaded: check it, or raise timeout_s",
                    deadline=config.timeout_s,
                    waited=time.monotonic() - started,
                ) from None
            except httpx.TransportError as exc:  # the connection broke after the request was sent
                raise self._unreachable(
                    url, f"the connection broke before an answer ({type(exc).__name__}: {exc})"
                ) from None
            else:
                if response.status_code < 300:
                    return response
                if response.status_code not in RETRIED or last:
                    raise self._refused(url, response)
                wait = max(wait, _retry_after(response))
            await asyncio.sleep(min(wait, config.max_backoff_s))
            wait = max(wait * 2, config.backoff_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    # Errors

    def _json(self, response: httpx.Response, text: bytes | None = None) -> Any:
        try:
            return response.json() if text is None else json.loads(text)
        except ValueError as exc:
            raise self._garbage(
                f"its answer is not JSON ({exc}): {response.text[:200]!r}", response
            ) from None

    def _garbage(self, reason: str, response: httpx.Response) -> EndpointError:
        return EndpointError(
            str(response.request.url),
            reason,
            status=response.status_code,
            extension=self.context.id,
            hint="the endpoint does not speak the Open Inference Protocol, or serves another model: check url and model",
        )

    def _unreachable(self, url: str, reason: str) -> EndpointError:
        return EndpointError(
            url, reason, extension=self.context.id, hint="check that the endpoint runs and that url is right"
        )

    def _refused(self, url: str, response: httpx.Response) -> Exception:
        status = response.status_code
        try:
            told = response.json().get("error")
        except (ValueError, AttributeError):
            told = None
        said = str(told) if told else (response.text[:200] or response.reason_phrase)
        extension = self.context.id
        if status in (400, 422):
            return InvalidInput(f"{url} refused the request: {said}", extension=extension)
        if status in (429, 503):
            return Overloaded(
                f"{url} is overloaded ({status}) after {self.config.retries + 1} attempt(s): {said}",
                extension=extension,
                hint="retry later, send fewer requests at once, or add replicas to the endpoint",
                retry_after=_retry_after(response) or None,
            )
        if status == 504:
            return DeadlineExceeded(f"{url} timed out (504): {said}", extension=extension)
        if status == 413:
            return EndpointError(
                url,
                f"the request ({len(response.request.content)} bytes) is larger than the endpoint accepts (413)",
                status=status,
                extension=extension,
                hint="lower batching.max_batch_size so each batch is smaller, or raise the endpoint's limit",
            )
        return EndpointError(url, f"answered {status}: {said}", status=status, extension=extension)

    # Checks at activation

    def _check_declared(self, url: str) -> None:
        """Refuse a URL the manifest's ``net.connect`` does not name: the grant would not let it through."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        wanted = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        permissions = self.context.manifest.get("permissions") or []
        declared = [
            str(item)
            for permission in permissions
            if isinstance(permission, Mapping) and permission.get("type") == "net.connect"
            for item in permission.get("hosts", ())
        ]
        for item in declared:
            h, _, p = item.rpartition(":")
            if h.lower() in (host.lower(), f"[{host.lower()}]", "*") and p in (str(port), "*"):
                return
        raise ConfigError(
            f"its url {url} connects to {wanted}, which its manifest does not request",
            extension=self.context.id,
            hint=f'add to symphony.toml: [[permissions]] type = "net.connect", hosts = ["{wanted}"], '
            'reason = "..."; or point url at a host it requests',
        )

    def _check_metadata(self, found: Any) -> None:
        problems = _differences(self.contributions, found)
        if problems:
            raise ModelMismatch(
                f"the model at {self.endpoint.removesuffix('/infer')} differs from the manifest's [contributes]",
                extension=self.context.id,
                hint="point url and model at the model the manifest describes, or update [contributes]",
                problems=problems,
            )


def _differences(declared: Contributions, found: Any) -> list[tuple[str, str]]:
    """What the endpoint's metadata says differently from the declared tensors."""
    if not isinstance(found, Mapping):
        return [("metadata", f"is not a JSON object: {found!r:.200}")]
    problems = []
    for side, specs in (("inputs", declared.inputs), ("outputs", declared.outputs)):
        listed = found.get(side)
        tensors = (
            {item.get("name"): item for item in listed if isinstance(item, Mapping)}
            if isinstance(listed, list)
            else {}
        )
        for spec in specs:
            tensor = tensors.get(spec.name)
            if tensor is None:
                problems.append((f"{side}.{spec.name}", "the endpoint's model has no such tensor"))
            elif tensor.get("datatype") != DATATYPES[spec.dtype]:
                problems.append(
                    (
                        f"{side}.{spec.name}",
                        f"is {tensor.get('datatype')} there, {DATATYPES[spec.dtype]} here",
                    )
                )
    return problems


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:  # an HTTP date: wait as the backoff says
        return 0.0


def _denied(error: BaseException) -> PermissionDenied | None:
    """The host's refusal behind a connection error, if the guard refused it."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, PermissionDenied):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
