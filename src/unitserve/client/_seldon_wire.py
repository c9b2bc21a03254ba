"""The Seldon half of what the client sends and reads: pure functions, no I/O.

A Seldon request is built once as a JSON-ready dict (numpy arrays left to the JSON
writer, which serialises them in C); the gRPC transport turns that same dict into a
protobuf message, so both transports send the same thing and read the same answer.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from google.protobuf import json_format

from unitserve.client._failures import ClientError
from unitserve.errors import ServingError
from unitserve.proto import POOL
from unitserve.protocol import jsonio
from unitserve.protocol.seldon import json_codec, tftensor

PAYLOADS = ("ndarray", "tensor", "tftensor")
KINDS = ("ndarray", "tensor", "tftensor", "strData", "binData", "jsonData")
JSON_HEADERS = {"content-type": "application/json"}


def message(
    data: Any = None,
    *,
    payload: str = "ndarray",
    names: Sequence[str] | None = None,
    str_data: str | None = None,
    bin_data: bytes | None = None,
    json_data: Any = None,
    meta: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A SeldonMessage as a JSON-ready dict. `data` that is a str or bytes is sent as
    strData or binData; anything else as an array of kind `payload`."""
    if payload not in PAYLOADS:
        raise ValueError(f"payload must be one of {', '.join(PAYLOADS)}, not {payload!r}")
    msg: dict[str, Any] = {}
    if isinstance(data, str) and str_data is None:
        str_data, data = data, None
    elif isinstance(data, bytes | bytearray) and bin_data is None:
        bin_data, data = bytes(data), None
    if str_data is not None:
        msg["strData"] = str_data
    elif bin_data is not None:
        msg["binData"] = base64.b64encode(bin_data).decode("ascii")
    elif json_data is not None:
        msg["jsonData"] = json_data
    elif data is not None:
        arr = np.asarray(data)
        body: dict[str, Any] = {}
        if names is not None:
            body["names"] = list(names)
        if payload == "ndarray":
            body["ndarray"] = arr
        elif payload == "tensor":
            body["tensor"] = {"shape": list(arr.shape), "values": arr.reshape(-1)}
        else:
            body["tftensor"] = tftensor.to_json(arr)
        msg["data"] = body
    full_meta = dict(meta or {})
    if tags:
        full_meta["tags"] = {**full_meta.get("tags", {}), **tags}
    if full_meta:
        msg["meta"] = full_meta
    return msg


def dumps(obj: Any) -> bytes:
    return jsonio.dumps(obj)


def plain(obj: Any) -> Any:
    """`obj` with numpy arrays turned into lists (for protobuf's dict reader)."""
    return orjson.loads(jsonio.dumps(obj))


def to_proto(obj: Any, message_type: type) -> Any:
    """A JSON-ready dict as a protobuf message of ours; a ValueError saying why not."""
    try:
        return json_format.ParseDict(plain(obj), message_type(), descriptor_pool=POOL)
    except json_format.ParseError as exc:
        raise ValueError(f"cannot send this as a {message_type.__name__}: {exc}") from None


def from_proto(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(
        msg, descriptor_pool=POOL, always_print_fields_with_no_presence=True
    )


class Answer:
    """A Seldon answer. ``raw`` is the answer as the server wrote it (a dict); the
    other attributes read it: ``kind`` (ndarray, tensor, tftensor, strData, binData,
    jsonData, or None), ``data`` (a numpy array for the array kinds, str, bytes or the
    JSON value otherwise), ``names``, ``meta`` and ``tags``."""

    __slots__ = ("_data", "raw")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self._data: Any = _UNREAD

    @property
    def kind(self) -> str | None:
        data = self.raw.get("data")
        if isinstance(data, dict):
            return next((k for k in ("ndarray", "tensor", "tftensor") if k in data), None)
        return next((k for k in KINDS[3:] if k in self.raw), None)

    @property
    def data(self) -> Any:
        if self._data is _UNREAD:
            self._data = _read_data(self.raw, self.kind)
        return self._data

    @property
    def names(self) -> list[str]:
        data = self.raw.get("data")
        return list(data.get("names") or []) if isinstance(data, dict) else []

    @property
    def meta(self) -> dict[str, Any]:
        return dict(self.raw.get("meta") or {})

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self.meta.get("tags") or {})

    def __repr__(self) -> str:
        return f"Answer({self.raw!r})"


_UNREAD = object()


def _read_data(raw: dict[str, Any], kind: str | None) -> Any:
    try:
        if kind == "ndarray":
            return json_codec.ndarray_from_json(raw["data"]["ndarray"])
        if kind == "tensor":
            return json_codec.tensor_from_json(raw["data"]["tensor"])
        if kind == "tftensor":
            return tftensor.from_json(raw["data"]["tftensor"])
        if kind == "binData":
            return base64.b64decode(raw["binData"])
        if kind is not None:
            return raw[kind]
    except ServingError as exc:
        raise ClientError(200, "BAD_ANSWER", f"the answer's {kind} is unreadable: {exc}") from None
    return None


def feedback(
    request: Any, response: Any, reward: float, truth: Any = None, routing: int | None = None
) -> dict[str, Any]:
    """A Feedback body; request, response and truth are SeldonMessage dicts or Answers."""
    body: dict[str, Any] = {"request": as_dict(request), "reward": float(reward)}
    if response is not None:
        resp = as_dict(response)
        if routing is not None:
            meta = dict(resp.get("meta") or {})
            meta["routing"] = {**meta.get("routing", {}), "0": routing}
            resp = {**resp, "meta": meta}
        body["response"] = resp
    if truth is not None:
        body["truth"] = as_dict(truth)
    return body


def as_dict(obj: Any) -> dict[str, Any]:
    """A SeldonMessage dict from an Answer, a dict (as is) or data (as `message` makes it)."""
    if isinstance(obj, Answer):
        return obj.raw
    if isinstance(obj, dict):
        return obj
    return message(obj)


def answer_dict(content: bytes) -> dict[str, Any]:
    try:
        body = jsonio.loads(content)
    except ServingError as exc:
        raise ClientError(200, "BAD_ANSWER", f"the answer is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ClientError(200, "BAD_ANSWER", "the answer is not a JSON object")
    return body
