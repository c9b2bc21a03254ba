"""SeldonMessage JSON (the REST path) ⇄ `Message` / `Reply`.

REST keeps JSON numbers as they came: ints stay ints (int64 arrays) and come
back as ints, as Seldon's REST wrapper does (its protobuf path turns every number into
a double; that is `proto_codec`).
"""

from __future__ import annotations

import base64
import binascii
import itertools
import reprlib
from typing import Any

import numpy as np

from unitserve.errors import BadRequest
from unitserve.message import (
    BIN,
    DATA_EMPTY,
    JSON,
    NDARRAY,
    STR,
    TENSOR,
    TFTENSOR,
    FeedbackMessage,
    Message,
    Reply,
)
from unitserve.protocol import shapes
from unitserve.protocol.jsonio import dumps, finite_array, finite_tree
from unitserve.protocol.seldon import tftensor

_REPR_LIMIT = 1000


class _Repr(reprlib.Repr):
    """str() of a whole 100 MB request would be built before being cut to _REPR_LIMIT;
    reprlib stops early, and writes small values as str() does once dicts keep their
    order (reprlib sorts their keys)."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = itertools.islice(x.items(), self.maxdict)
        pieces = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in items]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"


_REPR = _Repr()
_REPR.maxlevel = 10
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = 100
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = _REPR_LIMIT


def _shown(value: Any) -> str:
    """Seldon quotes the request with Python's str(); keep that, but bounded."""
    if isinstance(value, str):
        text = value[: _REPR_LIMIT + 1]
    elif isinstance(value, bytes | bytearray):
        text = str(bytes(value[:_REPR_LIMIT]))
    else:
        text = _REPR.repr(value)
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT] + "..."


def invalid_request(value: Any) -> BadRequest:
    return BadRequest(f"Invalid request data type: {_shown(value)}")


def ndarray_from_json(value: Any, where: str = "data.ndarray") -> np.ndarray:
    try:
        return np.array(value)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"{where} is not a rectangular array: {exc}") from None


def tensor_from_json(tensor: Any) -> np.ndarray:
    if not isinstance(tensor, dict):
        raise BadRequest("data.tensor must be an object with shape and values")
    shape, values = tensor.get("shape"), tensor.get("values", [])
    if not isinstance(values, list):
        raise BadRequest("data.tensor.values must be a list")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadRequest("data.tensor.shape must be a list of non-negative integers")
    arr = ndarray_from_json(values, "data.tensor.values")
    if arr.ndim != 1:
        raise BadRequest("data.tensor.values must be a flat list")
    return shapes.reshape(arr, shape, "data.tensor")


def _names(data: dict[str, Any]) -> list[Any]:
    names = data.get("names")
    if names is None:
        return []
    if not isinstance(names, list):
        raise BadRequest("data.names must be a list")
    return names


def decode_message(obj: Any) -> Message:
    """One SeldonMessage dict (data, jsonData, strData or binData) → Message."""
    if not isinstance(obj, dict):
        raise invalid_request(obj)
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise BadRequest("meta must be a JSON object")
    if "data" in obj:
        data = obj["data"]
        if not isinstance(data, dict):
            raise BadRequest("data must be an object holding one of ndarray, tensor, tftensor")
        names = _names(data)
        if "tensor" in data:
            return Message(TENSOR, tensor_from_json(data["tensor"]), names, meta)
        if "ndarray" in data:
            return Message(NDARRAY, ndarray_from_json(data["ndarray"]), names, meta)
        if "tftensor" in data:
            return Message(TFTENSOR, tftensor.from_json(data["tftensor"]), names, meta)
        return Message(DATA_EMPTY, np.array([]), names, meta)
    if "jsonData" in obj:
        return Message(JSON, obj["jsonData"], [], meta)
    if "strData" in obj:
        value = obj["strData"]
        if not isinstance(value, str):
            raise BadRequest("strData must be a string")
        return Message(STR, value, [], meta)
    if "binData" in obj:
        value = obj["binData"]
        if isinstance(value, bytes):  # a multipart file, already raw bytes
            return Message(BIN, value, [], meta)
        if not isinstance(value, str):
            raise BadRequest("binData must be a base64 string")
        try:
            return Message(BIN, base64.b64decode(value, validate=True), [], meta)
        except (binascii.Error, ValueError) as exc:
            raise BadRequest(f"binData is not valid base64: {exc}") from None
    raise invalid_request(obj)


def _encode_array(kind: str, value: Any) -> Any:
    if kind == NDARRAY:
        return finite_tree(value) if isinstance(value, list) else finite_array(value)
    if kind == TENSOR:
        return {"shape": list(value.shape), "values": finite_array(value.ravel())}
    return tftensor.to_json(value)


def reply_dict(reply: Reply) -> dict[str, Any]:
    kind = reply.kind
    if kind == STR:
        out: dict[str, Any] = {STR: reply.value}
    elif kind == BIN:
        out = {BIN: base64.b64encode(reply.value).decode("ascii")}
    elif kind == JSON:
        out = {JSON: finite_tree(reply.value)}
    else:
        out = {"data": {"names": reply.names or [], kind: _encode_array(kind, reply.value)}}
    meta = reply.meta
    if "tags" in meta:
        meta = {**meta, "tags": finite_tree(meta["tags"])}
    out["meta"] = meta
    return out


class JsonCodec:
    """The REST codec: parsed JSON in, JSON bytes out."""

    proto = False

    def decode(self, request: Any) -> Message:
        return decode_message(request)

    def decode_list(self, request: Any) -> list[Message]:
        """Aggregate input: a bare list of messages or ``{"seldonMessages": [...]}``."""
        if isinstance(request, list):
            messages = request
        elif isinstance(request, dict) and isinstance(request.get("seldonMessages"), list):
            messages = request["seldonMessages"]
        else:
            raise invalid_request(request)
        if not messages:
            raise BadRequest("aggregate needs at least one message in seldonMessages")
        return [decode_message(m) for m in messages]

    def decode_feedback(self, request: Any, routing_key: str) -> FeedbackMessage:
        raise NotImplementedError("REST feedback goes through the protobuf codec")

    def encode(self, reply: Reply) -> bytes:
        return dumps(reply_dict(reply))

    def raw_metrics(self, answer: Any) -> list[dict[str, Any]]:
        if isinstance(answer, dict):
            meta = answer.get("meta")
            if isinstance(meta, dict) and isinstance(meta.get("metrics"), list):
                return meta["metrics"]
        return []

    def without_raw_metrics(self, answer: Any) -> Any:
        if self.raw_metrics(answer):
            meta = {k: v for k, v in answer["meta"].items() if k != "metrics"}
            return {**answer, "meta": meta}
        return answer

    def encode_raw(self, answer: Any) -> bytes:
        if isinstance(answer, bytes | bytearray):
            return bytes(answer)
        if isinstance(answer, str):
            return answer.encode()
        return dumps(finite_tree(answer))


class PassthroughCodec(JsonCodec):
    """PAYLOAD_PASSTHROUGH on the predict routes: the request is never decoded (a
    normal ``predict`` then fails as in Seldon) and ``predict_raw``'s return value is
    the body, sent as is."""

    def decode(self, request: Any) -> Message:
        raise invalid_request(request)

    def raw_metrics(self, answer: Any) -> list[dict[str, Any]]:
        return []
