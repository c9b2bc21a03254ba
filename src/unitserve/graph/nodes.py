"""Where each node of a graph runs, and how one call of it is made.

A local node (its class found by `unitserve.graph.sources`) is a served model called in
memory (`unitserve.graph.families`). A node with no folder but an ``endpoint`` naming a
host is called over the wire (REST with httpx, gRPC with grpcio); the orchestrator's
built-in implementations (RANDOM_ABTEST, AVERAGE_COMBINER, ...) need neither, nor do
Seldon's prepackaged servers (``implementation: SKLEARN_SERVER`` and a ``modelUri``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import orjson
from google.protobuf import json_format

from unitserve import tracing
from unitserve.calls import run_async, run_sync
from unitserve.engine import Engine, Outcome, Steps
from unitserve.errors import ServingError, grpc_code_for_http
from unitserve.graph.families import (
    Family,
    NodeFailed,
    Wire,
    as_message,
    as_reply,
    failure_body,
)

# The command line and the manifest tools find the nodes' classes through this module.
from unitserve.graph.sources import find_sources as find_sources
from unitserve.graph.sources import parse_node_flag as parse_node_flag
from unitserve.graph.spec import NodeSpec
from unitserve.message import Reply
from unitserve.models.served_model import ServedModel
from unitserve.operations import ENGINE_OPERATIONS
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.seldon import proto_fast
from unitserve.protocol.seldon.json_codec import JsonCodec, decode_message
from unitserve.protocol.seldon.proto_codec import encode_reply

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
    """A node run in this process: a served model of its own (its user object, engine,
    ``--threads`` gate, load sequence and metadata), called in memory."""

    def __init__(self, spec: NodeSpec, model: ServedModel) -> None:
        assert model.engine is not None and model.invoker is not None, "built with its user"
        self.spec = spec
        self.model = model
        self.user = model.user
        self.engine: Engine = model.engine
        self.gate = model.invoker.gate
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
                self.spec.name, 500, failure_body(reason), grpc.StatusCode.UNAVAILABLE, reason
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
                self.spec.name, 500, failure_body(reason), grpc.StatusCode.INTERNAL, reason
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
            return 500, failure_body(reason)
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
                body_out = failure_body(details)
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
