"""SeldonMessage protobuf (gRPC, and REST feedback) ⇄ `Message` / `Reply`.

The rules shared with the JSON codec (which payload kind an answer takes, its
names, its meta) live in the engine; this module only knows the protobuf
form. On this path every number is a double, as in Seldon. Numeric arrays
move through numpy (`proto_arrays`), never one Python float at a time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from unitserve.errors import BadModelOutput, BadRequest
from unitserve.message import (
    BIN,
    CUSTOM,
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
from unitserve.proto import Any as AnyMessage
from unitserve.proto import as_local
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol import shapes
from unitserve.protocol.jsonio import dumps, finite_tree
from unitserve.protocol.seldon import proto_arrays, tftensor
from unitserve.protocol.seldon.json_types import check_json_types

SeldonMessage = pb.SeldonMessage
_SMALL_LIST_BYTES = 1024  # below this a ListValue is read value by value
_METRIC_TYPES = {name: pb.Metric.MetricType.Value(name) for name in ("COUNTER", "GAUGE", "TIMER")}


# ----------------------------------------------------------------------------- Value ⇄ Python


def value_to_python(value: Any) -> Any:
    """google.protobuf.Value → Python (numbers are floats, as protobuf has them)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "list_value":
        return [value_to_python(v) for v in value.list_value.values]
    if kind == "struct_value":
        return {k: value_to_python(v) for k, v in value.struct_value.fields.items()}
    return None


def python_to_value(obj: Any, value: Any) -> None:
    """Fill a google.protobuf.Value from a JSON-like Python object (numpy included)."""
    if obj is None:
        value.null_value = 0
    elif isinstance(obj, bool | np.bool_):
        value.bool_value = bool(obj)
    elif isinstance(obj, int | float | np.integer | np.floating):
        value.number_value = float(obj)
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, dict):
        fields = value.struct_value.fields
        if not obj:
            value.struct_value.SetInParent()
        for k, v in obj.items():
            python_to_value(v, fields[str(k)])
    elif isinstance(obj, list | tuple | np.ndarray):
        items = obj.tolist() if isinstance(obj, np.ndarray) else obj
        listvalue = value.list_value
        listvalue.SetInParent()
        for v in items:
            python_to_value(v, listvalue.values.add())
    elif isinstance(obj, bytes):
        value.string_value = obj.decode("utf-8", errors="replace")
    else:
        raise BadModelOutput(f"{type(obj).__name__} cannot be sent as JSON data")


def fill_listvalue(listvalue: Any, arr: Any) -> None:
    """ListValue from an array or list: numbers through `proto_arrays`, the rest one by one."""
    if isinstance(arr, np.ndarray) and arr.dtype.kind in "iuf" and arr.size > 64:
        data = proto_arrays.numbers_listvalue(arr)
        if data is not None:
            listvalue.MergeFromString(data)
            return
    listvalue.SetInParent()
    items = arr.tolist() if isinstance(arr, np.ndarray) else arr
    if not isinstance(items, list):  # a 0-d array
        items = [items]
    for item in items:
        python_to_value(item, listvalue.values.add())


def listvalue_to_array(listvalue: Any) -> np.ndarray:
    # Big all-number arrays through their bytes; small ones are quicker one by one.
    if listvalue.ByteSize() > _SMALL_LIST_BYTES:
        numbers = proto_arrays.listvalue_numbers(listvalue.SerializeToString())
        if numbers is not None:
            return numbers
    items = [value_to_python(v) for v in listvalue.values]
    try:
        return np.array(items)
    except (ValueError, TypeError) as exc:
        raise BadRequest(f"data.ndarray is not a rectangular array: {exc}") from None


def tensor_to_array(tensor: Any) -> np.ndarray:
    parsed = proto_arrays.tensor_values(tensor.SerializeToString())
    if parsed is None:  # never expected from a protobuf serializer; be general anyway
        shape, values = list(tensor.shape), np.array(tensor.values, dtype=np.float64)
    else:
        shape, values = parsed
    return tensor_from_parts(shape, values)


def tensor_from_parts(shape: list[int], values: np.ndarray) -> np.ndarray:
    """A Tensor's shape and values as an array: the count must match the shape."""
    if not shape:
        raise BadRequest("data.tensor has no shape")
    if any(d < 0 for d in shape):
        raise BadRequest(f"data.tensor shape {shapes.shown(shape)} has a negative dimension")
    return shapes.reshape(values, shape, "data.tensor")


def meta_to_dict(msg: Any) -> dict[str, Any]:
    """The meta a user method receives on the proto path: Seldon's MessageToDict view."""
    if not msg.HasField("meta"):
        return {}
    return json_format.MessageToDict(msg.meta)


def meta_from_dict(meta: dict[str, Any], target: Any) -> None:
    """Fill a Meta message from the engine's meta dict (puid, tags, metrics, requestPath)."""
    target.SetInParent()
    if not meta:
        return
    if meta.get("puid"):
        target.puid = str(meta["puid"])
    tags = meta.get("tags")
    if tags:
        if not isinstance(tags, dict):
            raise BadRequest("meta.tags must be an object")
        for key, value in tags.items():
            python_to_value(finite_tree(value), target.tags[str(key)])
    for key, value in (meta.get("requestPath") or {}).items():
        target.requestPath[str(key)] = str(value)
    for key, value in (meta.get("routing") or {}).items():  # set by a graph only
        target.routing[str(key)] = int(value)
    for metric in meta.get("metrics") or []:
        if not isinstance(metric, dict):
            raise BadRequest("meta.metrics must hold metric objects")
        item = target.metrics.add()
        item.key = str(metric.get("key", ""))
        kind = metric.get("type", "COUNTER")
        if kind in _METRIC_TYPES:
            item.type = _METRIC_TYPES[kind]
        try:
            item.value = float(metric.get("value", 0))
        except (TypeError, ValueError):
            raise BadRequest(f"metric {item.key!r} has a non-numeric value") from None
        for k, v in (metric.get("tags") or {}).items():
            item.tags[str(k)] = str(v)


# ----------------------------------------------------------------------------- decode


def decode_message(msg: Any) -> Message:
    """SeldonMessage → Message."""
    meta = meta_to_dict(msg)
    which = msg.WhichOneof("data_oneof")
    if which == "data":
        data = msg.data
        names = list(data.names)
        inner = data.WhichOneof("data_oneof")
        if inner == "tensor":
            return Message(TENSOR, tensor_to_array(data.tensor), names, meta)
        if inner == "ndarray":
            return Message(NDARRAY, listvalue_to_array(data.ndarray), names, meta)
        if inner == "tftensor":
            return Message(TFTENSOR, tftensor.to_array(data.tftensor), names, meta)
        return Message(DATA_EMPTY, np.array([]), names, meta)
    if which == "binData":
        return Message(BIN, msg.binData, [], meta)
    if which == "strData":
        return Message(STR, msg.strData, [], meta)
    if which == "jsonData":
        return Message(JSON, value_to_python(msg.jsonData), [], meta)
    if which == "customData":
        return Message(CUSTOM, msg.customData, [], meta)
    raise BadRequest(
        "Unknown data in SeldonMessage: set one of data, binData, strData, jsonData, customData"
    )


def data_array(data: Any) -> np.ndarray:
    """A DefaultData's array, for feedback (which reads only `data` payloads)."""
    inner = data.WhichOneof("data_oneof")
    if inner == "tensor":
        return tensor_to_array(data.tensor)
    if inner == "ndarray":
        return listvalue_to_array(data.ndarray)
    if inner == "tftensor":
        return tftensor.to_array(data.tftensor)
    return np.array([])


# ----------------------------------------------------------------------------- encode


def encode_reply(reply: Reply) -> Any:
    out = SeldonMessage()
    kind = reply.kind
    if kind == STR:
        out.strData = reply.value
    elif kind == BIN:
        out.binData = reply.value
    elif kind == JSON:
        python_to_value(finite_tree(reply.value), out.jsonData)
    elif kind == CUSTOM:
        out.customData.CopyFrom(as_local(reply.value, AnyMessage))
    else:
        data = out.data
        if reply.names:
            data.names.extend(str(n) for n in reply.names)
        value = reply.value
        if kind == TENSOR:
            arr = np.asarray(value)
            if arr.dtype.kind == "c":
                raise BadModelOutput("complex numbers cannot be sent in a Tensor")
            data.tensor.MergeFromString(
                proto_arrays.tensor_bytes(arr.astype(np.float64, copy=False))
            )
        elif kind == TFTENSOR:
            tftensor.from_array(np.asarray(value), data.tftensor)
        else:
            fill_listvalue(data.ndarray, value)
    meta_from_dict(reply.meta, out.meta)
    return out


def _metric_dicts(meta: Any) -> list[dict[str, Any]]:
    out = []
    for m in meta.metrics:
        item: dict[str, Any] = {
            "key": m.key,
            "type": pb.Metric.MetricType.Name(m.type),
            "value": m.value,
        }
        if m.tags:
            item["tags"] = dict(m.tags)
        out.append(item)
    return out


class ProtoCodec:
    """The gRPC codec: SeldonMessage / SeldonMessageList / Feedback in, SeldonMessage out."""

    proto = True

    def decode(self, request: Any) -> Message:
        return decode_message(request)

    def decode_list(self, request: Any) -> list[Message]:
        if not request.seldonMessages:
            raise BadRequest("aggregate needs at least one message in seldonMessages")
        return [decode_message(m) for m in request.seldonMessages]

    def decode_feedback(self, request: Any, routing_key: str) -> FeedbackMessage:
        fb_request = request.request
        kind = fb_request.WhichOneof("data_oneof")
        if kind == "data":
            inner = fb_request.data.WhichOneof("data_oneof")
            kind = {"tensor": TENSOR, "ndarray": NDARRAY, "tftensor": TFTENSOR}.get(
                inner or "", DATA_EMPTY
            )
        features = data_array(fb_request.data)
        message = Message(kind, features, list(fb_request.data.names), meta_to_dict(fb_request))
        routing = request.response.meta.routing
        return FeedbackMessage(
            request=message,
            reward=float(request.reward),
            truth=data_array(request.truth.data),
            routing=routing.get(routing_key),
        )

    def encode(self, reply: Reply) -> Any:
        return encode_reply(reply)

    def raw_metrics(self, answer: Any) -> list[dict[str, Any]]:
        if isinstance(answer, ProtoMessage) and hasattr(answer, "meta"):
            return _metric_dicts(answer.meta)
        if isinstance(answer, dict):  # a dict answer is accepted and converted
            meta = answer.get("meta")
            if isinstance(meta, dict) and isinstance(meta.get("metrics"), list):
                return meta["metrics"]
        return []

    def without_raw_metrics(self, answer: Any) -> Any:
        if isinstance(answer, ProtoMessage) and hasattr(answer, "meta"):
            answer = as_local(answer, SeldonMessage)
            stripped = SeldonMessage()
            stripped.CopyFrom(answer)
            del stripped.meta.metrics[:]
            return stripped
        if isinstance(answer, dict) and isinstance(answer.get("meta"), dict):
            return {**answer, "meta": {k: v for k, v in answer["meta"].items() if k != "metrics"}}
        return answer

    def encode_raw(self, answer: Any) -> Any:
        """A raw method's answer as our SeldonMessage (a dict is parsed as its JSON form)."""
        if answer is None:
            return SeldonMessage()
        if isinstance(answer, dict):
            try:
                return json_format.ParseDict(
                    finite_tree(answer), SeldonMessage(), ignore_unknown_fields=True
                )
            except json_format.ParseError as exc:
                raise BadModelOutput(f"the raw answer is not a SeldonMessage: {exc}") from None
        try:
            return as_local(answer, SeldonMessage)
        except TypeError as exc:
            raise BadModelOutput(
                f"a raw method must return a SeldonMessage on gRPC: {exc}"
            ) from None


class FeedbackJsonCodec(ProtoCodec):
    """REST feedback: Seldon converts the JSON to a protobuf Feedback (strictly) and
    answers with the protobuf JSON form, so numbers come back as floats."""

    def parse_feedback(self, obj: Any) -> Any:
        # Wrong JSON types first, in words: ParseDict would answer with Python's own
        # ("'NoneType' object is not iterable", "unhashable type: 'list'").
        check_json_types(obj, pb.Feedback.DESCRIPTOR, "feedback", prefix="Invalid JSON: ")
        feedback = pb.Feedback()
        try:
            json_format.ParseDict(obj, feedback)
        except (json_format.ParseError, TypeError, ValueError, AttributeError) as exc:
            raise BadRequest(f"Invalid JSON: {exc}") from None
        return feedback

    def encode(self, reply: Reply) -> bytes:
        return _proto_json(encode_reply(reply))

    def encode_raw(self, answer: Any) -> bytes:
        if isinstance(answer, bytes | str):
            return answer.encode() if isinstance(answer, str) else answer
        if isinstance(answer, dict):
            return dumps(finite_tree(answer))
        return _proto_json(super().encode_raw(answer))


def _proto_json(message: Any) -> bytes:
    return dumps(json_format.MessageToDict(message))
