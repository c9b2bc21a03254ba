"""What the client sends and how it reads the answers: pure functions, no I/O.

The synchronous and the asyncio client share everything here, and differ only in how
they wait. A Seldon request is built once as a JSON-ready dict (numpy arrays left to the
JSON writer, which serialises them in C); the gRPC transport turns that same dict into
a protobuf message, so both transports send the same thing and read the same answer.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from google.protobuf import json_format

from unitserve.errors import ServingError
from unitserve.proto import POOL, inference_pb2, prediction_pb2
from unitserve.protocol import jsonio
from unitserve.protocol.seldon import json_codec, tftensor
from unitserve.protocol.v2 import binary, datatypes, tensors

PAYLOADS = ("ndarray", "tensor", "tftensor")
KINDS = ("ndarray", "tensor", "tftensor", "strData", "binData", "jsonData")
JSON_HEADERS = {"content-type": "application/json"}


class ClientError(Exception):
    """A call that failed: the server said no, or could not be reached.

    ``status`` is the HTTP status (REST), the gRPC status code's name (gRPC), or 0 when
    no answer came at all; ``reason`` is Seldon's reason word (``MICROSERVICE_BAD_DATA``
    ...) when the server gave one, else the HTTP reason phrase or the gRPC code;
    ``message`` is the server's own sentence.
    """

    def __init__(self, status: int | str, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message


# ----------------------------------------------------------------------------- Seldon


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
    body: dict[str, Any] = {"request": _as_dict(request), "reward": float(reward)}
    if response is not None:
        resp = _as_dict(response)
        if routing is not None:
            meta = dict(resp.get("meta") or {})
            meta["routing"] = {**meta.get("routing", {}), "0": routing}
            resp = {**resp, "meta": meta}
        body["response"] = resp
    if truth is not None:
        body["truth"] = _as_dict(truth)
    return body


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, Answer):
        return obj.raw
    if isinstance(obj, dict):
        return obj
    return message(obj)


def error_from_body(status: int, phrase: str, content: bytes) -> ClientError:
    """The error a non-200 answer stands for, with the server's reason and sentence when
    its body is Seldon's (``{"status": {"info", "reason"}}``) or the OIP's (``{"error"}``)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ClientError(status, phrase, content.decode("utf-8", "replace").strip()[:2000])
    if isinstance(body, dict):
        inner = body.get("status")
        if isinstance(inner, dict):
            return ClientError(
                status, str(inner.get("reason") or phrase), str(inner.get("info") or "")
            )
        if "error" in body:
            return ClientError(status, phrase, str(body["error"]))
    return ClientError(status, phrase, content.decode("utf-8", "replace")[:2000])


def answer_dict(content: bytes) -> dict[str, Any]:
    try:
        body = jsonio.loads(content)
    except ServingError as exc:
        raise ClientError(200, "BAD_ANSWER", f"the answer is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ClientError(200, "BAD_ANSWER", "the answer is not a JSON object")
    return body


# ----------------------------------------------------------------------------- OIP


@dataclass(slots=True)
class InferAnswer:
    """An Open Inference Protocol answer: ``outputs`` by name (numpy arrays, in the
    server's order), the model's name and version, the request id and parameters."""

    outputs: dict[str, np.ndarray]
    model_name: str = ""
    model_version: str = ""
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def named_inputs(inputs: Any) -> dict[str, np.ndarray]:
    """Inputs by name: a mapping as given, a list as input-0, input-1..., one array as
    input-0."""
    if isinstance(inputs, Mapping):
        return {str(k): np.asarray(v) for k, v in inputs.items()}
    if isinstance(inputs, list | tuple) and inputs and isinstance(inputs[0], np.ndarray):
        return {f"input-{i}": np.asarray(v) for i, v in enumerate(inputs)}
    return {"input-0": np.asarray(inputs)}


def infer_body(
    inputs: Any,
    *,
    outputs: Sequence[str] | None = None,
    binary_data: bool = False,
    parameters: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """An inference request's REST body and headers; with `binary_data`, tensors travel
    as raw bytes after the JSON header (and the answer's outputs are asked for so)."""
    header: dict[str, Any] = {"inputs": []}
    buffers: list[memoryview] = []
    for name, arr in named_inputs(inputs).items():
        where = f"input {name!r}"
        datatype = _datatype(arr, where)
        entry: dict[str, Any] = {"name": name, "shape": list(arr.shape), "datatype": datatype.name}
        if binary_data:
            buf = _buffer(arr, datatype, where)
            entry["parameters"] = {"binary_data_size": buf.nbytes}
            buffers.append(buf)
        else:
            entry["data"] = _json_data(arr, datatype, where)
        header["inputs"].append(entry)
    if request_id:
        header["id"] = request_id
    params = dict(parameters or {})
    if binary_data:
        params["binary_data_output"] = True
    if params:
        header["parameters"] = params
    if outputs is not None:
        header["outputs"] = [
            {"name": n, **({"parameters": {"binary_data": True}} if binary_data else {})}
            for n in outputs
        ]
    head = jsonio.dumps(header)
    if not buffers:
        return head, dict(JSON_HEADERS)
    body = b"".join([head, *(bytes(b) for b in buffers)])
    return body, {
        "content-type": "application/octet-stream",
        binary.HEADER_LENGTH: str(len(head)),
    }


# What the client cannot send is the caller's mistake, found before anything is sent: a
# ValueError saying why, as for any other bad argument (the protocol's own error types
# name the server's side of a call).


def _datatype(arr: np.ndarray, where: str) -> datatypes.Datatype:
    try:
        return datatypes.of_array(arr, where)
    except ServingError as exc:
        raise ValueError(str(exc)) from None


def _buffer(arr: np.ndarray, datatype: datatypes.Datatype, where: str) -> memoryview:
    try:
        return binary.array_buffer(arr, datatype, where)
    except ServingError as exc:
        raise ValueError(str(exc)) from None


def _json_data(arr: np.ndarray, datatype: datatypes.Datatype, where: str) -> Any:
    if datatype.is_bytes:
        out = []
        for i, x in enumerate(arr.reshape(-1).tolist()):
            if isinstance(x, bytes):
                try:
                    x = x.decode("utf-8")
                except UnicodeDecodeError:
                    # JSON has only text: bytes that are not UTF-8 cannot travel in it.
                    raise ValueError(
                        f"{where} element {i} is bytes that are not UTF-8 text, which a "
                        "JSON body cannot carry: send it with binary_data=True"
                    ) from None
            elif not isinstance(x, str):
                # The same rule as the binary form and gRPC, so that the form chosen
                # never changes what is sent.
                raise ValueError(
                    f"{where} element {i} is a {type(x).__name__}; BYTES hold str or bytes"
                )
            out.append(x)
        return out
    return tensors.to_json(arr, datatype, where)


def infer_answer(content: bytes, header_length: str | None) -> InferAnswer:
    """An inference answer read from its REST body (JSON, or JSON then binary outputs)."""
    try:
        body = binary.read_body(content, binary.parse_header_length(header_length))
        head = body.header
        if not isinstance(head, dict):
            raise ClientError(200, "BAD_ANSWER", "the answer is not a JSON object")
        reader = binary.Reader(body.binary)
        outputs: dict[str, np.ndarray] = {}
        for out in head.get("outputs") or []:
            name = str(out.get("name"))
            where = f"output {name!r}"
            datatype = datatypes.by_name(out.get("datatype"), where)
            shape = tensors.read_shape(out.get("shape"), where)
            params = out.get("parameters") or {}
            size = params.get("binary_data_size")
            if size is not None:
                outputs[name] = tensors.from_binary(
                    reader.take(int(size), where), datatype, shape, False, where
                )
            else:
                outputs[name] = tensors.from_json(out.get("data"), datatype, shape, False, where)
    except ServingError as exc:
        raise ClientError(200, "BAD_ANSWER", f"the answer is unreadable: {exc}") from None
    return InferAnswer(
        outputs,
        str(head.get("model_name", "")),
        str(head.get("model_version") or ""),
        str(head.get("id") or ""),
        dict(head.get("parameters") or {}),
    )


def infer_proto(
    model: str,
    version: str,
    inputs: Any,
    *,
    outputs: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> Any:
    """A ``ModelInferRequest``, tensors in ``raw_input_contents`` (the compact form)."""
    req = inference_pb2.ModelInferRequest(model_name=model, model_version=version)
    if request_id:
        req.id = request_id
    _fill_params(req.parameters, parameters or {})
    for name, arr in named_inputs(inputs).items():
        where = f"input {name!r}"
        datatype = _datatype(arr, where)
        req.inputs.add(name=name, datatype=datatype.name, shape=list(arr.shape))
        req.raw_input_contents.append(bytes(_buffer(arr, datatype, where)))
    for name in outputs or ():
        req.outputs.add(name=name)
    return req


def _fill_params(target: Any, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        else:
            target[key].string_param = str(value)


def infer_answer_proto(resp: Any) -> InferAnswer:
    """An inference answer read from a ``ModelInferResponse``."""
    outputs: dict[str, np.ndarray] = {}
    raw = list(resp.raw_output_contents)
    try:
        for i, out in enumerate(resp.outputs):
            where = f"output {out.name!r}"
            datatype = datatypes.by_name(out.datatype, where)
            shape = list(out.shape)
            if raw:
                outputs[out.name] = tensors.from_binary(
                    memoryview(raw[i]), datatype, shape, False, where
                )
            else:
                contents = getattr(out.contents, datatype.contents or "")
                values = np.array(list(contents), dtype=datatype.dtype)
                outputs[out.name] = values.reshape(shape)
    except (ServingError, ValueError, IndexError) as exc:
        raise ClientError(200, "BAD_ANSWER", f"the answer is unreadable: {exc}") from None
    params = {k: getattr(v, v.WhichOneof("parameter_choice")) for k, v in resp.parameters.items()}
    return InferAnswer(outputs, resp.model_name, resp.model_version, resp.id, params)


def model_metadata_proto(msg: Any) -> dict[str, Any]:
    """A ``ModelMetadataResponse`` as the same dict the REST answer is: protobuf's JSON
    form writes 64-bit integers as strings, so the shapes are made numbers again, and it
    leaves out fields at their default (an empty platform, no inputs, no outputs), which
    the REST answer always has. ``versions`` stays out when empty, as over REST."""
    body = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    body.setdefault("name", "")
    body.setdefault("platform", "")
    for key in ("inputs", "outputs"):
        tensors = body.setdefault(key, [])
        for tensor in tensors:
            tensor["shape"] = [int(d) for d in tensor.get("shape") or []]
    return body


def seldon_proto_types() -> dict[str, type]:
    return {
        "message": prediction_pb2.SeldonMessage,
        "list": prediction_pb2.SeldonMessageList,
        "feedback": prediction_pb2.Feedback,
    }
