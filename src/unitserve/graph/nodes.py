"""Where each node of a graph runs, and how one call of it is made.

A node's class is found without any edit of the YAML: ``--node NAME=DIR[:Interface]``
first, else the folder ``<YAML's folder>/<node name>/``, whose ``.s2i/environment``
names the class (``MODEL_NAME``) as the s2i image built from that folder would. A
node with no folder but an ``endpoint`` naming a host is called over the wire (REST
with httpx, gRPC with grpcio); the orchestrator's built-in implementations
(RANDOM_ABTEST, AVERAGE_COMBINER, ...) need neither, nor do Seldon's prepackaged servers
(``implementation: SKLEARN_SERVER`` and a ``modelUri``, fetched to a local cache first).

Between local nodes nothing is encoded: a node's answer (a `Reply`) becomes the next
node's request (`as_message`) in memory. A node's user methods that want the request as
it came off the wire (``predict_raw`` and the deprecated ones) get it in the wire form
of the transport the graph's client used, built for them alone.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
from google.protobuf import json_format

from unitserve import component, storage, tracing
from unitserve.calls import run_async, run_sync, user_call_gate
from unitserve.engine import Engine, EngineConfig, MetricsRecorder, Outcome, Steps
from unitserve.errors import ServingError, StartupError, grpc_code_for_http
from unitserve.graph.spec import GraphError, GraphSpec, NodeSpec
from unitserve.message import DATA_KINDS, NDARRAY, TENSOR, Codec, FeedbackMessage, Message, Reply
from unitserve.operations import ENGINE_OPERATIONS
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.seldon import proto_fast
from unitserve.protocol.seldon.json_codec import JsonCodec, decode_message
from unitserve.protocol.seldon.proto_codec import FeedbackJsonCodec, ProtoCodec, encode_reply
from unitserve.servers import IMPLEMENTATIONS
from unitserve.transport.grpc.handlers import BytesCodec

# ----------------------------------------------------------------------------- finding classes


@dataclass(frozen=True)
class LocalSource:
    folder: Path
    interface: str


def parse_node_flag(text: str) -> tuple[str, Path, str | None]:
    """``NAME=DIR[:Interface]`` → (name, folder, interface or None)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise GraphError(f"--node {text!r}: expected NAME=DIR or NAME=DIR:Interface")
    folder, _, interface = rest.partition(":")
    return name, Path(folder), interface or None


# Where a node folder names its class, as for an s2i image built from it.
ENV_FILE = Path(".s2i") / "environment"


def find_sources(
    graph: GraphSpec,
    overrides: dict[str, tuple[Path, str | None]],
    read_environment: Callable[[Path], dict[str, str]],
) -> dict[str, LocalSource | None]:
    """Each node's class (None: remote or built in); a GraphError for a node that has
    neither a class nor an endpoint, or whose folder does not say which class.
    `read_environment` reads an ``.s2i/environment`` file as `unitserve serve` does."""
    names = {n.name for n in graph.root.walk()}
    for name in overrides:
        if name not in names:
            raise GraphError(f"--node {name}=...: the graph has no node named {name!r}")
    found: dict[str, LocalSource | None] = {}
    for node in graph.root.walk():
        if node.name in overrides:
            folder, interface = overrides[node.name]
            folder = folder.resolve()
            if not folder.is_dir():
                raise GraphError(f"node {node.name!r}: folder {folder} (--node) does not exist")
        elif node.implementation in IMPLEMENTATIONS:
            found[node.name] = LocalSource(graph.folder, node.implementation)
            continue
        else:
            folder, interface = graph.folder / node.name, None
            if not folder.is_dir():
                if node.endpoint is not None or node.builtin:
                    found[node.name] = None
                    continue
                raise GraphError(
                    f"node {node.name!r}: no class and no endpoint: no folder {folder} "
                    f"(or give --node {node.name}=DIR[:Interface], or an endpoint with "
                    "service_host)"
                )
        if interface is None:
            try:
                interface = read_environment(folder / ENV_FILE).get("MODEL_NAME")
            except Exception as exc:  # SettingsError: an unreadable or malformed file
                raise GraphError(f"node {node.name!r}: {exc}") from None
            if not interface:
                raise GraphError(
                    f"node {node.name!r}: {folder / ENV_FILE} does not name the class "
                    f"(MODEL_NAME=...); or give --node {node.name}=DIR:Interface"
                )
        found[node.name] = LocalSource(folder, interface)
    return found


def load_user(node: NodeSpec, source: LocalSource) -> Any:
    """The node's user object, built from its folder with the node's parameters.

    Node folders often hold modules of the same name (``Model.py`` in each): a module
    imported from another folder is forgotten first so that each node gets its own."""
    module = source.interface.rpartition(".")[0] or source.interface
    top = module.split(".")[0]
    loaded = sys.modules.get(top)
    if loaded is not None and not _inside(loaded, source.folder):
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
    folder = str(source.folder)
    sys.path.insert(0, folder)
    try:
        importlib.invalidate_caches()
        user_class = component.import_user_class(source.interface, folder)
        kwargs = component.parse_parameters(json.dumps(node.parameters))
        if node.model_uri and source.interface in IMPLEMENTATIONS:
            kwargs["model_uri"] = _fetch_model(node)
        return component.construct(user_class, kwargs)
    except StartupError as exc:
        raise GraphError(f"node {node.name!r}: {exc}") from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)


def _fetch_model(node: NodeSpec) -> str:
    """A prepackaged server node's ``modelUri`` as a local path (downloaded once)."""
    assert node.model_uri is not None
    try:
        return storage.download(node.model_uri)
    except Exception as exc:  # load_user names the node
        raise GraphError(f"cannot fetch modelUri {node.model_uri}: {exc}") from None


def _inside(module: Any, folder: Path) -> bool:
    where = getattr(module, "__file__", None) or ""
    return bool(where) and Path(where).resolve().is_relative_to(folder.resolve())


# ----------------------------------------------------------------------------- messages in memory


class Wire:
    """An answer a node's raw method produced, already in the transport's wire form."""

    __slots__ = ("body",)

    def __init__(self, body: bytes) -> None:
        self.body = body


class LocalCodec:
    """The codec local nodes are run with: requests are `Message`s already, answers
    stay `Reply`s; raw answers go through the transport's own codec (`wire`)."""

    def __init__(self, wire: Codec) -> None:
        self.wire = wire
        self.proto = wire.proto
        self._feedback = ProtoCodec()

    def decode(self, request: Any) -> Message:
        return request if isinstance(request, Message) else self.wire.decode(request)

    def decode_list(self, request: Any) -> list[Message]:
        if isinstance(request, list) and request and isinstance(request[0], Message):
            return request
        return self.wire.decode_list(request)

    def decode_feedback(self, request: Any, routing_key: str) -> FeedbackMessage:
        return self._feedback.decode_feedback(request, routing_key)

    def encode(self, reply: Reply) -> Reply:
        return reply

    def raw_metrics(self, answer: Any) -> list[dict[str, Any]]:
        return [] if isinstance(answer, Message) else self.wire.raw_metrics(answer)

    def without_raw_metrics(self, answer: Any) -> Any:
        return self.wire.without_raw_metrics(answer)

    def encode_raw(self, answer: Any) -> Wire:
        return Wire(self.wire.encode_raw(answer))


def as_message(reply: Reply, proto: bool) -> Message:
    """A node's answer as the next node's request. Arrays are what the next node would
    have decoded from the wire: a numpy array, and on gRPC numbers as doubles."""
    value = reply.value
    if reply.kind in DATA_KINDS:
        if not isinstance(value, np.ndarray):
            value = np.array(value)
        if proto and reply.kind in (NDARRAY, TENSOR) and value.dtype.kind in "iub":
            value = value.astype(np.float64)
    return Message(reply.kind, value, list(reply.names or []), reply.meta)


def as_reply(msg: Message) -> Reply:
    return Reply(str(msg.kind), msg.features, msg.names, msg.meta or {})


@dataclass(frozen=True)
class Family:
    """What depends on the transport the graph's client used (REST JSON or gRPC)."""

    proto: bool
    local: LocalCodec
    local_feedback: LocalCodec

    def to_wire(self, payload: Reply | list[Reply]) -> Any:
        """The request a raw or deprecated user method receives."""
        if isinstance(payload, list):
            if self.proto:
                out = pb.SeldonMessageList()
                for r in payload:
                    out.seldonMessages.append(encode_reply(r))
                return out
            return {"seldonMessages": [orjson.loads(JsonCodec().encode(r)) for r in payload]}
        if self.proto:
            return encode_reply(payload)
        return orjson.loads(JsonCodec().encode(payload))

    def from_wire(self, body: bytes) -> Reply:
        if self.proto:
            return as_reply(proto_fast.decode(body))
        try:
            return as_reply(decode_message(orjson.loads(body)))
        except orjson.JSONDecodeError as exc:
            raise ServingError(f"a node answered something that is not JSON: {exc}") from None


REST_FAMILY = Family(False, LocalCodec(JsonCodec()), LocalCodec(FeedbackJsonCodec()))
GRPC_FAMILY = Family(True, LocalCodec(BytesCodec()), LocalCodec(BytesCodec()))


# ----------------------------------------------------------------------------- errors


class NodeFailed(Exception):
    """A node answered with an error: its status and body reach the client unchanged
    (gRPC: its code and details)."""

    def __init__(
        self, node: str, status: int, body: bytes, code: grpc.StatusCode, details: str
    ) -> None:
        super().__init__(f"node {node!r} answered {status}: {details}")
        self.node = node
        self.status = status
        self.body = body
        self.code = code
        self.details = details


def _failure_body(reason: str) -> bytes:
    return orjson.dumps({"status": {"code": 500, "info": reason, "status": "FAILURE"}})


# ----------------------------------------------------------------------------- nodes


class Runner:
    """How a local node's operation runs: on this thread, or on the worker's event loop
    for ``async def`` user methods."""

    def __init__(self, loop: asyncio.AbstractEventLoop, offload: Callable[..., Any]) -> None:
        self.loop = loop
        self.offload = offload

    def on_loop(self, steps: Steps) -> Outcome:
        return asyncio.run_coroutine_threadsafe(run_async(steps, self.offload), self.loop).result()


class LocalNode:
    def __init__(
        self,
        spec: NodeSpec,
        user: Any,
        config: EngineConfig,
        recorder: MetricsRecorder,
        threads: int,
    ) -> None:
        self.spec = spec
        self.user = user
        self.engine = Engine(user, config, recorder)
        self.gate = user_call_gate(threads)
        self.async_ops = {
            op.name for op in ENGINE_OPERATIONS if self.engine.is_async(*op.user_methods)
        }
        # Decided once, not per call: each operation's engine method, and the operations
        # whose user method takes the request in wire form.
        self.entries = {op.name: getattr(self.engine, op.name) for op in ENGINE_OPERATIONS}
        self.wire_ops = frozenset(
            op.name for op in ENGINE_OPERATIONS if self.engine.wants_message(op.name)
        )
        # The operations that take one message, run on the calling thread, and whose
        # user methods all take it decoded: their answer is always a Reply (never a raw
        # answer in wire form).
        self.message_ops = frozenset(
            {"predict", "transform_input", "transform_output", "route"}
            - self.wire_ops
            - self.async_ops
        )
        self.metadata: dict[str, Any] | None = None
        self.runner: Runner | None = None

    def call(self, op: str, payload: Any, family: Family) -> Reply:
        """Run operation `op` of this node; `payload` is a Reply (a list for aggregate,
        a protobuf Feedback for send_feedback)."""
        if op in self.message_ops:
            # The usual hop of a chain, on this thread: the previous node's answer as
            # this node's request, and this node's answer as it is (no wire form).
            return run_sync(
                self.entries[op](as_message(payload, family.proto), family.local), self.gate
            )[1]
        return self._call(op, payload, family)

    def _call(self, op: str, payload: Any, family: Family) -> Reply:
        if op == "send_feedback":
            codec, request = family.local_feedback, payload
        else:
            codec = family.local
            if op in self.wire_ops:
                request = family.to_wire(payload)
            elif isinstance(payload, list):
                request = [as_message(r, family.proto) for r in payload]
            else:
                request = as_message(payload, family.proto)
        steps = self.entries[op](request, codec)
        if op in self.async_ops and self.runner is not None:
            status, answer = self.runner.on_loop(steps)
        else:
            status, answer = run_sync(steps, self.gate)
        if isinstance(answer, Wire):
            if status != 200:
                raise NodeFailed(
                    self.spec.name,
                    status,
                    answer.body,
                    grpc_code_for_http(status),
                    answer.body.decode(errors="replace"),
                )
            return family.from_wire(answer.body)
        return answer

    def close(self) -> None:
        pass


# The user-facing path and gRPC method of each operation on a component.
_REST_PATHS = {
    "predict": "/predict",
    "transform_input": "/transform-input",
    "transform_output": "/transform-output",
    "route": "/route",
    "aggregate": "/aggregate",
    "send_feedback": "/send-feedback",
}
_GRPC_METHODS = {
    "predict": "/seldon.protos.Model/Predict",
    "transform_input": "/seldon.protos.Transformer/TransformInput",
    "transform_output": "/seldon.protos.OutputTransformer/TransformOutput",
    "route": "/seldon.protos.Router/Route",
    "aggregate": "/seldon.protos.Combiner/Aggregate",
    "send_feedback": "/seldon.protos.Model/SendFeedback",
}
_HTTP_FOR_GRPC = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def _puid(payload: Any) -> str | None:
    """The request's id, which the orchestrator sends every node as Seldon-Puid (the
    walk puts it in the message's meta)."""
    first = payload[0] if isinstance(payload, list) and payload else payload
    meta = getattr(first, "meta", None)
    if isinstance(meta, dict) and meta.get("puid"):
        return str(meta["puid"])
    return None


class RestNode:
    """A node served elsewhere, called over REST (the component's own paths)."""

    def __init__(self, spec: NodeSpec, timeout: float | None) -> None:
        assert spec.endpoint is not None
        self.spec = spec
        self.metadata: dict[str, Any] | None = None
        self.base = f"http://{spec.endpoint.host}:{spec.endpoint.http_port}"
        self.client = httpx.Client(base_url=self.base, timeout=timeout)

    def _post(self, path: str, body: bytes, puid: str | None = None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if puid:
            headers["seldon-puid"] = puid
        if tracing.ACTIVE is not None:  # the node's spans join this request's trace
            tracing.ACTIVE.inject(headers)
        try:
            response = self.client.post(path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            reason = f"node {self.spec.name!r} at {self.base}: {type(exc).__name__}: {exc}"
            raise NodeFailed(
                self.spec.name, 500, _failure_body(reason), grpc.StatusCode.UNAVAILABLE, reason
            ) from None
        if response.status_code != 200:
            raise NodeFailed(
                self.spec.name,
                response.status_code,
                response.content,
                grpc_code_for_http(response.status_code),
                response.text,
            )
        return response

    def call(self, op: str, payload: Any, family: Family) -> Reply:
        if op == "send_feedback":
            body = orjson.dumps(json_format.MessageToDict(payload))
        elif isinstance(payload, list):
            body = orjson.dumps(
                {"seldonMessages": [orjson.loads(JsonCodec().encode(r)) for r in payload]}
            )
        else:
            body = JsonCodec().encode(payload)
        response = self._post(_REST_PATHS[op], body, _puid(payload))
        try:
            return as_reply(decode_message(orjson.loads(response.content)))
        except (orjson.JSONDecodeError, ServingError) as exc:
            reason = (
                f"node {self.spec.name!r} answered something that is not a SeldonMessage: {exc}"
            )
            raise NodeFailed(
                self.spec.name, 500, _failure_body(reason), grpc.StatusCode.INTERNAL, reason
            ) from None

    def not_ready(self) -> str | None:
        """None if the node answers 200 on /ready, else why not (asked at each probe,
        briefly: a probe must not wait on a node that hangs)."""
        try:
            response = self.client.get("/ready", timeout=2.0)
        except httpx.HTTPError as exc:
            return f"node {self.spec.name!r} at {self.base}: {type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return f"node {self.spec.name!r} at {self.base} is not ready ({response.status_code})"
        return None

    def get_json(self, path: str) -> tuple[int, bytes]:
        try:
            response = self.client.get(path)
        except httpx.HTTPError as exc:
            reason = f"node {self.spec.name!r} at {self.base}: {type(exc).__name__}: {exc}"
            return 500, _failure_body(reason)
        return response.status_code, response.content

    def close(self) -> None:
        self.client.close()


class GrpcNode:
    """A node served elsewhere, called over gRPC (the component services)."""

    def __init__(self, spec: NodeSpec, timeout: float | None) -> None:
        assert spec.endpoint is not None
        self.spec = spec
        self.metadata: dict[str, Any] | None = None
        self.timeout = timeout
        self.target = f"{spec.endpoint.host}:{spec.endpoint.grpc_port}"
        self.channel = grpc.insecure_channel(self.target)
        self.methods = {
            op: self.channel.unary_unary(path, request_serializer=None, response_deserializer=None)
            for op, path in _GRPC_METHODS.items()
        }
        if spec.type == "ROUTER":
            self.methods["send_feedback"] = self.channel.unary_unary(
                "/seldon.protos.Router/SendFeedback"
            )

    def call(self, op: str, payload: Any, family: Family) -> Reply:
        if op == "send_feedback":
            body = payload.SerializeToString()
        elif isinstance(payload, list):
            out = pb.SeldonMessageList()
            for r in payload:
                out.seldonMessages.append(encode_reply(r))
            body = out.SerializeToString()
        else:
            body = proto_fast.encode(payload)
        try:
            puid = _puid(payload)
            metadata = (("seldon-puid", puid),) if puid else None
            if tracing.ACTIVE is not None:  # the node's spans join this request's trace
                metadata = (*(metadata or ()), *tracing.ACTIVE.inject({}).items())
            answer = self.methods[op](body, timeout=self.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
            details = (exc.details() if callable(getattr(exc, "details", None)) else "") or ""
            status = _HTTP_FOR_GRPC.get(code, 500)
            if code == grpc.StatusCode.UNAVAILABLE:
                details = f"node {self.spec.name!r} at {self.target}: {details}"
                body_out = _failure_body(details)
            else:
                body_out = orjson.dumps(
                    {"status": {"code": status, "info": details, "status": "FAILURE"}}
                )
            raise NodeFailed(self.spec.name, status, body_out, code, details) from None
        return as_reply(proto_fast.decode(answer))

    def not_ready(self) -> str | None:
        """None if the node's gRPC port accepts a connection within 2 seconds."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=2.0)
        except grpc.FutureTimeoutError:
            return f"node {self.spec.name!r} at {self.target} does not answer"
        return None

    def get_metadata(self) -> dict[str, Any] | None:
        """The node's metadata (``Model/Metadata``), or None if it does not answer."""
        method = self.channel.unary_unary("/seldon.protos.Model/Metadata")
        try:
            answer = method(b"", timeout=self.timeout or 10)
        except grpc.RpcError:
            return None
        meta = json_format.MessageToDict(pb.SeldonModelMetadata.FromString(answer))
        # protobuf has no empty list: put back the ones the node's REST /metadata has
        for key in ("versions", "inputs", "outputs"):
            meta.setdefault(key, [])
        return meta

    def close(self) -> None:
        self.channel.close()


class BuiltinNode:
    """A node the orchestrator plays itself (RANDOM_ABTEST, AVERAGE_COMBINER, ...): no
    user code, so every operation leaves the message as it is."""

    def __init__(self, spec: NodeSpec) -> None:
        self.spec = spec
        self.metadata: dict[str, Any] | None = None

    def close(self) -> None:
        pass


AnyNode = LocalNode | RestNode | GrpcNode | BuiltinNode
