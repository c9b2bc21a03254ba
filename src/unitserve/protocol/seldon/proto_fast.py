"""SeldonMessage bytes ⇄ `Message` / `Reply` for gRPC, without building protobuf
objects for large numeric arrays.

Parsing a 100x100 `ndarray` into protobuf objects and back costs about a
millisecond (ten thousand `Value` messages each way); reading and writing the
array's bytes with numpy (`proto_arrays`) costs a tenth of that. Here the top levels of
the message are read field by field; small parts (meta, strings, jsonData,
tftensor) still go through the protobuf classes. Anything unusual — a field
repeated, an unexpected encoding — takes the general path (parse the whole
message, `proto_codec.decode_message`), so both paths mean the same.

`BytesCodec` is the codec on these bytes, for the gRPC transport and a graph's
messages alike.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from unitserve.errors import BadRequest, MalformedMessage
from unitserve.message import (
    BIN,
    CUSTOM,
    DATA_EMPTY,
    JSON,
    NDARRAY,
    STR,
    TENSOR,
    TFTENSOR,
    Message,
    Reply,
)
from unitserve.proto import Any as AnyMessage
from unitserve.proto import ListValue, Value, tensor_pb2
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol import protowire
from unitserve.protocol.seldon import proto_arrays, tftensor
from unitserve.protocol.seldon.proto_codec import (
    ProtoCodec,
    encode_reply,
    listvalue_to_array,
    meta_from_dict,
    tensor_from_parts,
    tensor_to_array,
    value_to_python,
)

_LEN = 2
_PAYLOADS = {3, 4, 5, 6, 7}  # SeldonMessage's data_oneof
# Small messages are quicker through the protobuf classes than field by field here.
_SMALL_BYTES = 1024

M = TypeVar("M", bound=ProtoMessage)


class _General(Exception):
    """This message needs the general path."""


def decode(data: bytes) -> Message:
    """A serialised SeldonMessage → Message. Raises MalformedMessage for bytes that are
    not a SeldonMessage, BadRequest for a message that cannot be served."""
    if len(data) > _SMALL_BYTES:
        try:
            return _decode_fast(memoryview(data))
        except (_General, ValueError, UnicodeDecodeError, DecodeError):
            pass  # the general path parses it all, and says what is wrong if anything
    return _decode_general(data)


def _decode_general(data: bytes) -> Message:
    from unitserve.protocol.seldon.proto_codec import decode_message

    try:
        message = pb.SeldonMessage.FromString(data)
    except DecodeError as exc:
        raise MalformedMessage(f"the request is not a SeldonMessage: {exc}") from None
    return decode_message(message)


def _decode_fast(view: memoryview) -> Message:
    top: dict[int, tuple[int, int]] = {}
    for number, kind, start, end in protowire.fields(view):
        if number == 1:
            continue  # status: not read on requests
        if number in top or (number in _PAYLOADS and top.keys() & _PAYLOADS):
            raise _General
        if number in (2, *_PAYLOADS) and kind != _LEN:
            raise _General
        top[number] = (start, end)
    meta: dict[str, Any] = {}
    if 2 in top:
        start, end = top[2]
        meta = json_format.MessageToDict(_parse(pb.Meta, view[start:end]))
    payload = (top.keys() & _PAYLOADS) or {0}
    (number,) = payload
    start, end = top.get(number, (0, 0))
    chunk = view[start:end]
    if number == 3:
        return _decode_data(chunk, meta)
    if number == 4:
        return Message(BIN, bytes(chunk), [], meta)
    if number == 5:
        return Message(STR, str(chunk, "utf-8"), [], meta)
    if number == 6:
        return Message(JSON, value_to_python(_parse(Value, chunk)), [], meta)
    if number == 7:
        return Message(CUSTOM, _parse(AnyMessage, chunk), [], meta)
    raise BadRequest(
        "Unknown data in SeldonMessage: set one of data, binData, strData, jsonData, customData"
    )


def _parse(message_type: type[M], view: memoryview) -> M:
    """Parse a part of the request in place: protobuf reads any buffer, though its type
    stubs name only `bytes` (a copy of each part would cost what the fast path saves)."""
    return message_type.FromString(view)  # type: ignore[arg-type]


def _decode_data(view: memoryview, meta: dict[str, Any]) -> Message:
    names: list[str] = []
    payload: tuple[int, int, int] | None = None
    for number, kind, start, end in protowire.fields(view):
        if number == 1 and kind == _LEN:
            names.append(str(view[start:end], "utf-8"))
        elif number in (2, 3, 4):
            if payload is not None or kind != _LEN:
                raise _General
            payload = (number, start, end)
    if payload is None:
        return Message(DATA_EMPTY, np.array([]), names, meta)
    number, start, end = payload
    chunk = view[start:end]
    if number == 2:
        parsed = proto_arrays.tensor_values(chunk)
        if parsed is None:
            return Message(TENSOR, tensor_to_array(_parse(pb.Tensor, chunk)), names, meta)
        return Message(TENSOR, tensor_from_parts(*parsed), names, meta)
    if number == 3:
        numbers = proto_arrays.listvalue_numbers(chunk) if len(chunk) > _SMALL_BYTES else None
        if numbers is None:
            numbers = listvalue_to_array(_parse(ListValue, chunk))
        return Message(NDARRAY, numbers, names, meta)
    return Message(TFTENSOR, tftensor.to_array(_parse(tensor_pb2.TensorProto, chunk)), names, meta)


# ----------------------------------------------------------------------------- encode


_EMPTY_META = protowire.field(2, b"")

_NAMES_CACHE: dict[tuple[Any, ...], bytes] = {}


def _names(names: list[Any] | None) -> bytes:
    """The serialised names field; the same few lists (``t:0``..., class names) come
    back on every answer, so their bytes are kept."""
    if not names:
        return b""
    key = tuple(names)
    cached = _NAMES_CACHE.get(key)
    if cached is None:
        cached = b"".join(protowire.field(1, str(n).encode()) for n in names)
        if len(_NAMES_CACHE) < 256:
            _NAMES_CACHE[key] = cached
    return cached


def encode(reply: Reply) -> bytes:
    """Reply → serialised SeldonMessage, numeric arrays written straight from numpy."""
    value = reply.value
    if (
        reply.kind in (TENSOR, NDARRAY)
        and isinstance(value, np.ndarray)
        and value.dtype.kind in "iuf"
        and (reply.kind == TENSOR or value.ndim >= 1)
    ):
        names = _names(reply.names)
        if reply.kind == TENSOR:
            data = names + protowire.field(2, proto_arrays.tensor_bytes(value))
        else:
            data = names + protowire.field(3, proto_arrays.numbers_listvalue(value))
        if not reply.meta:  # the common case: an empty Meta, always written (as Seldon does)
            return _EMPTY_META + protowire.field(3, data)
        meta = pb.Meta()
        meta_from_dict(reply.meta, meta)
        return protowire.field(2, meta.SerializeToString()) + protowire.field(3, data)
    return encode_reply(reply).SerializeToString()


class BytesCodec(ProtoCodec):
    """The proto codec on bytes: requests that are still serialised are read here
    (numeric arrays straight into numpy), answers are serialised bytes."""

    def decode(self, request: Any) -> Any:
        if isinstance(request, bytes):
            return decode(request)
        return super().decode(request)

    def encode(self, reply: Any) -> bytes:
        return encode(reply)

    def encode_raw(self, answer: Any) -> bytes:
        return super().encode_raw(answer).SerializeToString()
