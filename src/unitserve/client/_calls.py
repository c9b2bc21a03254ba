"""Building calls: each client method becomes one `Call`, ready for either transport.

A `Call` holds what REST sends (method, path, body, headers), what gRPC sends (the
method's path, the request message, the answer type) and how each transport's answer is
read. Nothing here does I/O: the synchronous and the asyncio client send the same calls
and differ only in how they wait.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from grpc_health.v1 import health_pb2

from unitserve.client import _oip_wire as oip
from unitserve.client import _seldon_wire as seldon
from unitserve.client._failures import error_from_body
from unitserve.client._seldon_wire import Answer
from unitserve.proto import Empty, inference_pb2, prediction_pb2
from unitserve.protocol.v2 import binary

DEFAULT_PORTS = {"rest": 9000, "grpc": 5000}
_SELDON = "/seldon.protos."
_OIP = "/inference.GRPCInferenceService/"


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
class Call:
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
    return Answer(seldon.answer_dict(resp.content))


def _seldon_proto_answer(msg: Any) -> Answer:
    return Answer(seldon.from_proto(msg))


def _json_answer(resp: HttpAnswer) -> Any:
    return seldon.answer_dict(resp.content)


class CallBuilder:
    """Where a client goes, and how each of its calls is built (both clients are one)."""

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
        if payload not in seldon.PAYLOADS:
            raise ValueError(f"payload must be one of {', '.join(seldon.PAYLOADS)}")
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

    def _need(self, protocol: str, what: str) -> None:
        if self.protocol != protocol:
            raise ValueError(f"{what} is a {protocol} call; this client speaks {self.protocol}")

    def _seldon(self, op: str, body: dict[str, Any], proto_type: Any = None) -> Call:
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
        return Call(
            op,
            "POST",
            (self.gateway or "") + path,
            seldon.dumps(body) if self.transport == "rest" else None,
            seldon.JSON_HEADERS,
            _SELDON + rpc,
            lambda: seldon.to_proto(body, proto_type),
            prediction_pb2.SeldonMessage,
            _seldon_answer,
            _seldon_proto_answer,
        )

    def _message(self, data: Any, kw: dict[str, Any]) -> dict[str, Any]:
        raw = kw.pop("raw", None)
        if raw is not None:
            return dict(raw)
        kw.setdefault("payload", self.payload)
        return seldon.message(data, **kw)

    def _metadata_call(self) -> Call:
        self._need("seldon", "metadata")
        path = (self.gateway or "") + ("/api/v1.0/metadata" if self.gateway is not None else "")
        return Call(
            "metadata",
            "GET",
            path or "/metadata",
            None,
            {},
            _SELDON + "Model/Metadata",
            Empty,
            prediction_pb2.SeldonModelMetadata,
            _json_answer,
            seldon.from_proto,
        )

    def _health_call(self) -> Call:
        return Call(
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
    ) -> Call:
        name, version, path = self._model_path(model, version)
        body: bytes | None = None
        headers: dict[str, str] = {}
        if self.transport == "rest":
            body, headers = oip.infer_body(
                inputs,
                outputs=outputs,
                binary_data=binary_data,
                parameters=parameters,
                request_id=request_id,
            )
        return Call(
            "infer",
            "POST",
            path + "/infer",
            body,
            headers,
            _OIP + "ModelInfer",
            lambda: oip.infer_proto(
                name,
                version,
                inputs,
                outputs=outputs,
                parameters=parameters,
                request_id=request_id,
            ),
            inference_pb2.ModelInferResponse,
            lambda r: oip.infer_answer(r.content, r.headers.get(binary.HEADER_LENGTH)),
            oip.infer_answer_proto,
        )

    def _model_metadata_call(self, model: str | None, version: str | None) -> Call:
        name, version, path = self._model_path(model, version)
        return Call(
            "model_metadata",
            "GET",
            path,
            None,
            {},
            _OIP + "ModelMetadata",
            lambda: inference_pb2.ModelMetadataRequest(name=name, version=version),
            inference_pb2.ModelMetadataResponse,
            _json_answer,
            oip.model_metadata_proto,
        )

    def _ready_call(self, model: str | None, version: str | None) -> Call:
        name, version, path = self._model_path(model, version)
        return Call(
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


def rest_result(call: Call, resp: HttpAnswer) -> Any:
    """The call's answer read from a REST answer; a ClientError unless it is a 200."""
    if resp.status_code != 200:
        raise error_from_body(resp.status_code, resp.reason_phrase, resp.content)
    return call.rest_answer(resp)
