"""The Open Inference Protocol half of what the client sends and reads: pure functions,
no I/O. Over REST a request is JSON, or a JSON header followed by the tensors' raw bytes;
over gRPC it is a ``ModelInferRequest`` with the tensors in ``raw_input_contents``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf import json_format

from unitserve.client._failures import ClientError
from unitserve.errors import ServingError
from unitserve.proto import inference_pb2
from unitserve.protocol import jsonio
from unitserve.protocol.v2 import binary, datatypes, tensors


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
        return head, {"content-type": "application/json"}
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
    the REST answer always has. ``versions`` stays out when empty, as over REST; the
    parameters (of the model and of each tensor) are plain values, as over REST."""
    body = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    body.setdefault("name", "")
    body.setdefault("platform", "")
    if msg.parameters:
        body["parameters"] = _parameter_values(msg.parameters)
    for key in ("inputs", "outputs"):
        tensors = body.setdefault(key, [])
        for tensor, given in zip(tensors, getattr(msg, key), strict=True):
            tensor["shape"] = [int(d) for d in tensor.get("shape") or []]
            if given.parameters:
                tensor["parameters"] = _parameter_values(given.parameters)
    return body


def _parameter_values(params: Any) -> dict[str, Any]:
    return {
        k: getattr(v, which)
        for k, v in params.items()
        if (which := v.WhichOneof("parameter_choice")) is not None
    }
