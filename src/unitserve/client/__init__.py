"""A Python client for a model served by unitserve (or any Seldon 1.x microservice, or
an Open Inference Protocol server), over REST (httpx) or gRPC (grpcio).

    from unitserve.client import Client
    with Client("localhost:9000") as c:
        answer = c.predict(np.array([[1.0, 2.0]]))
        answer.data           # numpy array
    with Client("localhost:5000", transport="grpc") as c: ...
    with Client("localhost:9000", protocol="v2", model="iris") as c:
        c.infer({"x": np.ones((1, 4), np.float32)}).outputs

`AsyncClient` is the same for asyncio (``await c.predict(...)``). A client keeps its
connections open between calls (a pool, keep-alive); a call that finds no server, loses
its connection or is answered 503 (gRPC UNAVAILABLE) is tried again, up to `retries`
times, waiting longer each time; any other failure raises `ClientError` at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import grpc
import httpx
from grpc import aio as grpc_aio
from grpc_health.v1 import health_pb2

from unitserve.client import wire
from unitserve.client.wire import Answer, ClientError, InferAnswer
from unitserve.proto import Empty, inference_pb2, prediction_pb2
from unitserve.protocol.v2 import binary

__all__ = ["Answer", "AsyncClient", "Client", "ClientError", "InferAnswer"]

DEFAULT_PORTS = {"rest": 9000, "grpc": 5000}
_SELDON = "/seldon.protos."
_OIP = "/inference.GRPCInferenceService/"
_GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 512 * 1024 * 1024),
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
]
# Failures with no answer that a second try may cure (the connection was refused,
# dropped or reset). A read timeout is not among them: the server may still be working
# on the first try.
_RETRY_HTTP = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.PoolTimeout,
)


class HttpAnswer(Protocol):
    """What the client reads of an HTTP answer: httpx's, or the batch tool's lean one."""

    @property
    def status_code(self) -> int: ...
    @property
    def reason_phrase(self) -> str: ...
    @property
    def content(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class _Call:
    """One call, ready for either transport: REST method, path, body and headers;
    gRPC method path, request message and answer type; and how to read the answer."""

    name: str
    http: str
    path: str
    body: bytes | None
    headers: Mapping[str, str]
    rpc: str
    request: Callable[[], Any]
    reply_type: Any
    rest_answer: Callable[[HttpAnswer], Any]
    grpc_answer: Callable[[Any], Any]


def _seldon_answer(resp: HttpAnswer) -> Answer:
    return Answer(wire.answer_dict(resp.content))


def _seldon_proto_answer(msg: Any) -> Answer:
    return Answer(wire.from_proto(msg))


def _json_answer(resp: HttpAnswer) -> Any:
    return wire.answer_dict(resp.content)


class _Base:
    """What both clients share: where to go, and how each call is built."""

    def __init__(
        self,
        url_or_host: str = "localhost",
        protocol: str = "seldon",
        transport: str = "rest",
        *,
        model: str | None = None,
        model_version: str | None = None,
        payload: str = "ndarray",
        gateway: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.1,
        max_connections: int = 100,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """`url_or_host`: ``http://host:port``, ``host:port`` or ``host`` (REST port 9000,
        gRPC 5000). `protocol`: ``seldon`` or ``v2`` (the Open Inference Protocol, which
        needs `model`). `payload`: the array kind sent by default (ndarray, tensor,
        tftensor). `gateway`: None to call the microservice's own paths (``/predict``);
        a path prefix (``""`` or ``/seldon/NAMESPACE/NAME``) to call through Seldon's
        gateway paths (``/api/v1.0/predictions``) and services. `timeout` in seconds per
        try; `retries` more tries after a connection failure or a 503, the first after
        `backoff` seconds, then doubling."""
        if protocol not in ("seldon", "v2"):
            raise ValueError(f"protocol must be 'seldon' or 'v2', not {protocol!r}")
        if transport not in ("rest", "grpc"):
            raise ValueError(f"transport must be 'rest' or 'grpc', not {transport!r}")
        if payload not in wire.PAYLOADS:
            raise ValueError(f"payload must be one of {', '.join(wire.PAYLOADS)}")
        self.protocol, self.transport, self.payload = protocol, transport, payload
        self.model, self.model_version = model, model_version
        self.gateway = gateway
        self.timeout, self.retries, self.backoff = timeout, max(0, retries), backoff
        self.max_connections = max_connections
        self.headers = dict(headers or {})
        #: How many tries were repeated (after a connection failure or a 503), in all.
        self.retried = 0
        self._stubs: dict[str, Any] = {}
        parts = urlsplit(url_or_host if "://" in url_or_host else f"http://{url_or_host}")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or DEFAULT_PORTS[transport]
        self.scheme = parts.scheme or "http"
        self.prefix = parts.path.rstrip("/")
        self.base_url = f"{self.scheme}://{self.host}:{self.port}{self.prefix}"
        self.target = f"{self.host}:{self.port}"

    def _delay(self, attempt: int) -> float:
        """Back-off before try `attempt + 1`: doubling, capped at 5 s, with jitter so that
        many clients do not come back at the same instant."""
        return min(self.backoff * 2**attempt, 5.0) * (0.5 + random.random() / 2)

    # ------------------------------------------------------------------ sending, shared
    # Each twin only does its own I/O (sync or async): what to retry, how long to wait,
    # how the HTTP client is set up and how failures become ClientError are decided here.

    def _tries(self, retries: int | None) -> int:
        return (self.retries if retries is None else retries) + 1

    def _retry_delay(self, exc: ClientError, attempt: int, tries: int) -> float | None:
        """Seconds to wait before trying again after `exc`, or None to give up: the
        failure is not one a retry may cure, or that was the last try."""
        if attempt + 1 >= tries or not _retryable(exc):
            return None
        self.retried += 1
        return self._delay(attempt)

    def _http_options(self) -> dict[str, Any]:
        """The httpx client's settings (both twins')."""
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "headers": self.headers,
            "limits": httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
        }

    def _stub(self, channel: Any, call: _Call) -> Any:
        """The channel's callable for `call`'s method, made once per method."""
        stub = self._stubs.get(call.rpc)
        if stub is None:
            stub = self._stubs[call.rpc] = channel.unary_unary(
                call.rpc,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=call.reply_type.FromString,
            )
        return stub

    def _grpc_metadata(self) -> tuple[tuple[str, str], ...] | None:
        return tuple(self.headers.items()) or None

    # ------------------------------------------------------------------ building calls

    def _need(self, protocol: str, what: str) -> None:
        if self.protocol != protocol:
            raise ValueError(f"{what} is a {protocol} call; this client speaks {self.protocol}")

    def _seldon(self, op: str, body: dict[str, Any], proto_type: Any = None) -> _Call:
        self._need("seldon", op)
        gw = self.gateway is not None
        path, rpc = {
            "predict": (
                "/api/v1.0/predictions" if gw else "/predict",
                "Seldon/Predict" if gw else "Model/Predict",
            ),
            "transform_input": ("/transform-input", "Generic/TransformInput"),
            "transform_output": ("/transform-output", "Generic/TransformOutput"),
            "route": ("/route", "Generic/Route"),
            "aggregate": ("/aggregate", "Generic/Aggregate"),
            "feedback": (
                "/api/v1.0/feedback" if gw else "/send-feedback",
                "Seldon/SendFeedback" if gw else "Model/SendFeedback",
            ),
        }[op]
        proto_type = proto_type or prediction_pb2.SeldonMessage
        return _Call(
            op,
            "POST",
            (self.gateway or "") + path,
            wire.dumps(body) if self.transport == "rest" else None,
            wire.JSON_HEADERS,
            _SELDON + rpc,
            lambda: wire.to_proto(body, proto_type),
            prediction_pb2.SeldonMessage,
            _seldon_answer,
            _seldon_proto_answer,
        )

    def _message(self, data: Any, kw: dict[str, Any]) -> dict[str, Any]:
        raw = kw.pop("raw", None)
        if raw is not None:
            return dict(raw)
        kw.setdefault("payload", self.payload)
        return wire.message(data, **kw)

    def _metadata_call(self) -> _Call:
        self._need("seldon", "metadata")
        path = (self.gateway or "") + ("/api/v1.0/metadata" if self.gateway is not None else "")
        return _Call(
            "metadata",
            "GET",
            path or "/metadata",
            None,
            {},
            _SELDON + "Model/Metadata",
            Empty,
            prediction_pb2.SeldonModelMetadata,
            _json_answer,
            wire.from_proto,
        )

    def _health_call(self) -> _Call:
        return _Call(
            "health",
            "GET",
            "/health/ping" if self.protocol == "seldon" else "/v2/health/ready",
            None,
            {},
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest,
            health_pb2.HealthCheckResponse,
            lambda resp: True,
            lambda msg: msg.status == health_pb2.HealthCheckResponse.SERVING,
        )

    def _model_path(self, model: str | None, version: str | None) -> tuple[str, str, str]:
        self._need("v2", "this")
        name = model or self.model
        if not name:
            raise ValueError("an Open Inference Protocol call needs a model name (model=...)")
        version = version if version is not None else (self.model_version or "")
        path = f"/v2/models/{quote(name, safe='')}"
        if version:
            path += f"/versions/{quote(version, safe='')}"
        return name, version, path

    def _infer_call(
        self,
        inputs: Any,
        model: str | None,
        version: str | None,
        outputs: Sequence[str] | None,
        binary_data: bool,
        parameters: Mapping[str, Any] | None,
        request_id: str | None,
    ) -> _Call:
        name, version, path = self._model_path(model, version)
        body: bytes | None = None
        headers: dict[str, str] = {}
        if self.transport == "rest":
            body, headers = wire.infer_body(
                inputs,
                outputs=outputs,
                binary_data=binary_data,
                parameters=parameters,
                request_id=request_id,
            )
        return _Call(
            "infer",
            "POST",
            path + "/infer",
            body,
            headers,
            _OIP + "ModelInfer",
            lambda: wire.infer_proto(
                name,
                version,
                inputs,
                outputs=outputs,
                parameters=parameters,
                request_id=request_id,
            ),
            inference_pb2.ModelInferResponse,
            lambda r: wire.infer_answer(r.content, r.headers.get(binary.HEADER_LENGTH)),
            wire.infer_answer_proto,
        )

    def _model_metadata_call(self, model: str | None, version: str | None) -> _Call:
        name, version, path = self._model_path(model, version)
        return _Call(
            "model_metadata",
            "GET",
            path,
            None,
            {},
            _OIP + "ModelMetadata",
            lambda: inference_pb2.ModelMetadataRequest(name=name, version=version),
            inference_pb2.ModelMetadataResponse,
            _json_answer,
            wire.model_metadata_proto,
        )

    def _ready_call(self, model: str | None, version: str | None) -> _Call:
        name, version, path = self._model_path(model, version)
        return _Call(
            "ready",
            "GET",
            path + "/ready",
            None,
            {},
            _OIP + "ModelReady",
            lambda: inference_pb2.ModelReadyRequest(name=name, version=version),
            inference_pb2.ModelReadyResponse,
            lambda resp: True,
            lambda msg: bool(msg.ready),
        )


def _rest_error(resp: HttpAnswer) -> ClientError:
    return wire.error_from_body(resp.status_code, resp.reason_phrase, resp.content)


def _grpc_error(exc: grpc.RpcError) -> ClientError:
    code = exc.code()
    name = code.name if code is not None else "UNKNOWN"
    return ClientError(name, name, exc.details() or "")


def _retryable(exc: ClientError) -> bool:
    """What a retry may cure: no answer at all, or the server saying it is unavailable."""
    return exc.reason == "NO_ANSWER" or exc.status in (503, "UNAVAILABLE")


def _no_answer(call: _Call, exc: Exception) -> ClientError:
    return ClientError(0, "NO_ANSWER", f"{call.name}: {type(exc).__name__}: {exc}")


def _timed_out(call: _Call) -> ClientError:
    return ClientError(0, "TIMEOUT", f"{call.name}: no answer in time")


@contextmanager
def _http_errors(call: _Call) -> Iterator[None]:
    """httpx's failures as ClientError: no answer (a retry may cure it) or a timeout."""
    try:
        yield
    except _RETRY_HTTP as exc:
        raise _no_answer(call, exc) from None
    except httpx.TimeoutException as exc:
        raise _timed_out(call) from exc


@contextmanager
def _grpc_errors() -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as exc:
        raise _grpc_error(exc) from None


def _rest_result(call: _Call, resp: HttpAnswer) -> Any:
    """The call's answer read from a REST answer; a ClientError unless it is a 200."""
    if resp.status_code != 200:
        raise _rest_error(resp)
    return call.rest_answer(resp)


class Client(_Base):
    """A synchronous client; see the module's description. Use it in a ``with`` block,
    or call `close`."""

    def __init__(self, url_or_host: str = "localhost", *args: Any, **kwargs: Any) -> None:
        super().__init__(url_or_host, *args, **kwargs)
        self._http: httpx.Client | None = None
        self._channel: grpc.Channel | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # ------------------------------------------------------------------ Seldon

    def predict(self, data: Any = None, **kw: Any) -> Answer:
        """Predict on `data` (an array, str or bytes). Keywords: ``payload``
        (ndarray/tensor/tftensor), ``names``, ``str_data``, ``bin_data``, ``json_data``,
        ``meta``, ``tags``, or ``raw`` (a whole SeldonMessage dict, sent as is)."""
        return self._run(self._seldon("predict", self._message(data, kw)))

    def transform_input(self, data: Any = None, **kw: Any) -> Answer:
        return self._run(self._seldon("transform_input", self._message(data, kw)))

    def transform_output(self, data: Any = None, **kw: Any) -> Answer:
        return self._run(self._seldon("transform_output", self._message(data, kw)))

    def route(self, data: Any = None, **kw: Any) -> Answer:
        return self._run(self._seldon("route", self._message(data, kw)))

    def aggregate(self, messages: Sequence[Any], **kw: Any) -> Answer:
        """Combine `messages` (arrays, SeldonMessage dicts or Answers)."""
        body = {"seldonMessages": [wire._as_dict(m) for m in messages]}
        return self._run(self._seldon("aggregate", body, prediction_pb2.SeldonMessageList))

    def feedback(
        self,
        request: Any,
        response: Any = None,
        reward: float = 0.0,
        truth: Any = None,
        routing: int | None = None,
    ) -> Answer:
        body = wire.feedback(request, response, reward, truth, routing)
        return self._run(self._seldon("feedback", body, prediction_pb2.Feedback))

    def metadata(self) -> dict[str, Any]:
        return dict(self._run(self._metadata_call()))

    def health(self) -> bool:
        """True when the server answers its health check (no retries)."""
        try:
            return bool(self._run(self._health_call(), retries=0))
        except ClientError:
            return False

    # ------------------------------------------------------------------ OIP

    def infer(
        self,
        inputs: Any,
        *,
        model: str | None = None,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        binary_data: bool = False,
        parameters: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> InferAnswer:
        """Run the model on `inputs` (arrays by name, a list, or one array) with the Open
        Inference Protocol; `binary_data` sends and receives tensors as raw bytes."""
        call = self._infer_call(
            inputs, model, version, outputs, binary_data, parameters, request_id
        )
        result: InferAnswer = self._run(call)
        return result

    def model_metadata(self, model: str | None = None, version: str | None = None) -> Any:
        return self._run(self._model_metadata_call(model, version))

    def ready(self, model: str | None = None, version: str | None = None) -> bool:
        try:
            return bool(self._run(self._ready_call(model, version), retries=0))
        except ClientError:
            return False

    # ------------------------------------------------------------------ sending

    def _run(self, call: _Call, retries: int | None = None) -> Any:
        tries = self._tries(retries)
        for attempt in range(tries):
            try:
                return self._once(call)
            except ClientError as exc:
                delay = self._retry_delay(exc, attempt, tries)
                if delay is None:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, call: _Call) -> Any:
        if self.transport == "rest":
            if self._http is None:
                self._http = httpx.Client(**self._http_options())
            with _http_errors(call):
                resp = self._http.request(
                    call.http, call.path, content=call.body, headers=call.headers
                )
            return _rest_result(call, resp)
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target, options=_GRPC_OPTIONS)
        stub = self._stub(self._channel, call)
        with _grpc_errors():
            reply = stub(call.request(), timeout=self.timeout, metadata=self._grpc_metadata())
        return call.grpc_answer(reply)


class AsyncClient(_Base):
    """The asyncio twin of `Client`: the same methods, awaited. Use it in an
    ``async with`` block, or await `close`."""

    def __init__(self, url_or_host: str = "localhost", *args: Any, **kwargs: Any) -> None:
        super().__init__(url_or_host, *args, **kwargs)
        self._http: httpx.AsyncClient | None = None
        self._channel: grpc_aio.Channel | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def predict(self, data: Any = None, **kw: Any) -> Answer:
        """As `Client.predict`."""
        result: Answer = await self._run(self._seldon("predict", self._message(data, kw)))
        return result

    async def transform_input(self, data: Any = None, **kw: Any) -> Answer:
        result: Answer = await self._run(self._seldon("transform_input", self._message(data, kw)))
        return result

    async def transform_output(self, data: Any = None, **kw: Any) -> Answer:
        call = self._seldon("transform_output", self._message(data, kw))
        result: Answer = await self._run(call)
        return result

    async def route(self, data: Any = None, **kw: Any) -> Answer:
        result: Answer = await self._run(self._seldon("route", self._message(data, kw)))
        return result

    async def aggregate(self, messages: Sequence[Any], **kw: Any) -> Answer:
        body = {"seldonMessages": [wire._as_dict(m) for m in messages]}
        call = self._seldon("aggregate", body, prediction_pb2.SeldonMessageList)
        result: Answer = await self._run(call)
        return result

    async def feedback(
        self,
        request: Any,
        response: Any = None,
        reward: float = 0.0,
        truth: Any = None,
        routing: int | None = None,
    ) -> Answer:
        body = wire.feedback(request, response, reward, truth, routing)
        result: Answer = await self._run(self._seldon("feedback", body, prediction_pb2.Feedback))
        return result

    async def metadata(self) -> dict[str, Any]:
        return dict(await self._run(self._metadata_call()))

    async def health(self) -> bool:
        try:
            return bool(await self._run(self._health_call(), retries=0))
        except ClientError:
            return False

    async def infer(
        self,
        inputs: Any,
        *,
        model: str | None = None,
        version: str | None = None,
        outputs: Sequence[str] | None = None,
        binary_data: bool = False,
        parameters: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> InferAnswer:
        """As `Client.infer`."""
        call = self._infer_call(
            inputs, model, version, outputs, binary_data, parameters, request_id
        )
        result: InferAnswer = await self._run(call)
        return result

    async def model_metadata(self, model: str | None = None, version: str | None = None) -> Any:
        return await self._run(self._model_metadata_call(model, version))

    async def ready(self, model: str | None = None, version: str | None = None) -> bool:
        try:
            return bool(await self._run(self._ready_call(model, version), retries=0))
        except ClientError:
            return False

    async def _run(self, call: _Call, retries: int | None = None) -> Any:
        tries = self._tries(retries)
        for attempt in range(tries):
            try:
                return await self._once(call)
            except ClientError as exc:
                delay = self._retry_delay(exc, attempt, tries)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _once(self, call: _Call) -> Any:
        if self.transport == "rest":
            return await self._rest(call)
        return await self._grpc(call)

    async def _rest(self, call: _Call) -> Any:
        if self._http is None:
            self._http = httpx.AsyncClient(**self._http_options())
        with _http_errors(call):
            resp = await self._http.request(
                call.http, call.path, content=call.body, headers=call.headers
            )
        return _rest_result(call, resp)

    async def _grpc(self, call: _Call) -> Any:
        if self._channel is None:
            self._channel = grpc_aio.insecure_channel(self.target, options=_GRPC_OPTIONS)
        stub = self._stub(self._channel, call)
        with _grpc_errors():
            reply = await stub(call.request(), timeout=self.timeout, metadata=self._grpc_metadata())
        return call.grpc_answer(reply)
