"""A graph's messages in memory, and a node's failure.

Between local nodes nothing is encoded: a node's answer (a `Reply`) becomes the next
node's request (`as_message`) in memory. A node's user methods that want the request as
it came off the wire (``predict_raw`` and the deprecated ones) get it in the wire form
of the transport the graph's client used (its `Family`), built for them alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import orjson

from unitserve.errors import ServingError
from unitserve.message import DATA_KINDS, NDARRAY, TENSOR, Codec, FeedbackMessage, Message, Reply
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.seldon import proto_fast
from unitserve.protocol.seldon.json_codec import JsonCodec, decode_message
from unitserve.protocol.seldon.proto_codec import FeedbackJsonCodec, ProtoCodec, encode_reply
from unitserve.protocol.seldon.proto_fast import BytesCodec


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


def failure_body(reason: str) -> bytes:
    return orjson.dumps({"status": {"code": 500, "info": reason, "status": "FAILURE"}})
