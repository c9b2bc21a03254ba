"""Open Inference Protocol REST bodies (JSON, with or without binary data) ⇄ `Message` / `Reply`.

Request::

    {"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?, "data"}],
     "outputs"?: [{"name", "parameters"?}]}

An input carries its values either in ``data`` or, with the binary extension, as
``parameters.binary_data_size`` bytes after the JSON header. The answer is
``{"model_name", "model_version"?, "id", "parameters"?, "outputs": [...]}``, as
one JSON body or, when the client asked for binary outputs, a `BinaryAnswer`.

A codec object serves one request: `decode` remembers what the answer must look
like (id, requested outputs, which of them go binary) for `encode`.
"""

from __future__ import annotations

from typing import Any

from unitserve.errors import BadRequest
from unitserve.message import FeedbackMessage, Message, Reply
from unitserve.protocol.jsonio import dumps, finite_tree
from unitserve.protocol.v2 import binary, datatypes, mapping, tensors
from unitserve.protocol.v2.binary import BinaryAnswer, InferBody
from unitserve.protocol.v2.mapping import InferRequest, RequestedOutput, Unsupported


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be a JSON object")
    return value


def _flag(params: dict[str, Any], key: str, where: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}.{key} must be true or false")
    return value


def parse_request(body: InferBody | dict[str, Any]) -> InferRequest:
    """A request body (split by `binary.read_body`, or JSON already parsed) → InferRequest."""
    if isinstance(body, InferBody):
        header, rest = body.header, body.binary
    else:
        header, rest = body, memoryview(b"")
    if not isinstance(header, dict):
        raise BadRequest("an inference request must be a JSON object")
    request_id = header.get("id")
    if request_id is None or request_id == "":
        request_id = mapping.new_id()
    elif not isinstance(request_id, str):
        raise BadRequest("id must be a string")
    params = _object(header.get("parameters"), "parameters")
    raw_inputs = header.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("inputs must be a non-empty list of tensors")
    reader = binary.Reader(rest)
    inputs = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_inputs):
        name, arr = _input(raw, i, reader)
        if name in seen:
            raise BadRequest(f"input {name!r} appears more than once")
        seen.add(name)
        inputs.append((name, arr))
    reader.finish()
    return InferRequest(
        id=request_id,
        parameters=params,
        inputs=inputs,
        feature_names=mapping.feature_names(params, raw_inputs),
        outputs=_requested(header.get("outputs")),
        binary_output=_flag(params, "binary_data_output", "parameters"),
    )


def _input(raw: Any, index: int, reader: binary.Reader) -> tuple[str, Any]:
    if not isinstance(raw, dict):
        raise BadRequest(f"inputs[{index}] must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{index}] needs a name (a non-empty string)")
    where = f"input {name!r}"
    datatype = datatypes.by_name(raw.get("datatype"), where)
    shape = tensors.read_shape(raw.get("shape"), where)
    params = _object(raw.get("parameters"), f"{where} parameters")
    as_str = params.get("content_type") == "str"
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadRequest(f"{where} parameters.binary_data_size must be a non-negative integer")
        if "data" in raw:
            raise BadRequest(f"{where} has both data and parameters.binary_data_size")
        return name, tensors.from_binary(reader.take(size, where), datatype, shape, as_str, where)
    if "data" not in raw:
        raise BadRequest(f"{where} has no data (nor parameters.binary_data_size)")
    return name, tensors.from_json(raw["data"], datatype, shape, as_str, where)


def _requested(value: Any) -> list[RequestedOutput] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise BadRequest("outputs must be a list of {name, parameters}")
    out = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise BadRequest(f"outputs[{i}] must be an object with a name")
        where = f"output {raw['name']!r} parameters"
        params = _object(raw.get("parameters"), where)
        if "classification" in params:
            # Triton's classification extension answers top-k labels instead of the
            # tensor: ignoring it would send the client something else than it asked for.
            raise BadRequest(f"{where}: the classification extension is not supported")
        out.append(RequestedOutput(raw["name"], _flag(params, "binary_data", where)))
    return out


def _plain(arr: Any) -> list[Any]:
    """A decoded input as a flat JSON-ready list (BYTES elements as text when they are)."""
    items = arr.reshape(-1).tolist()
    return [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in items]


class V2JsonCodec:
    """The codec of one REST inference request (see the module doc)."""

    #: Numbers keep their JSON types, as on the Seldon REST path.
    proto = False

    def __init__(self, model_name: str, model_version: str | None = None) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.request: InferRequest | None = None

    def decode(self, request: Any) -> Message:
        self.request = parse_request(request)
        return mapping.to_message(self.request)

    def wire_request(self, request: Any) -> Any:
        """What a ``*_raw`` (or deprecated ``*_rest``) method receives: the request's JSON
        object. Inputs sent as binary data are given there as ``data`` (flat lists),
        their ``binary_data_size`` dropped, so that the method sees one form only."""
        if not isinstance(request, InferBody):
            return request
        header = request.header
        if not len(request.binary) or not isinstance(header, dict):
            return header
        decoded = dict(parse_request(request).inputs)
        inputs = []
        for raw in header.get("inputs") or []:
            params = dict(raw.get("parameters") or {})
            if "binary_data_size" in params:
                del params["binary_data_size"]
                arr = decoded[raw["name"]]
                raw = {**raw, "parameters": params, "data": _plain(arr)}
            inputs.append(raw)
        return {**header, "inputs": inputs}

    def decode_list(self, request: Any) -> list[Message]:
        raise Unsupported(
            "a combiner has no Open Inference Protocol form: it takes several requests"
        )

    def decode_feedback(self, request: Any, routing_key: str) -> FeedbackMessage:
        raise Unsupported("feedback has no Open Inference Protocol form")

    def encode(self, reply: Reply) -> bytes | BinaryAnswer:
        request = self.request
        if request is None:  # the engine always decodes first; a guard for other callers
            request = InferRequest(mapping.new_id(), {}, [])
        chosen = mapping.answer_outputs(reply, request)
        records: list[dict[str, Any]] = []
        buffers: list[memoryview] = []
        for out, as_binary in chosen:
            where = f"output {out.name!r}"
            record: dict[str, Any] = {
                "name": out.name,
                "datatype": out.datatype.name,
                "shape": list(out.array.shape),
            }
            params = dict(out.parameters or {})
            if as_binary:
                buf = binary.array_buffer(out.array, out.datatype, where)
                params["binary_data_size"] = buf.nbytes
                buffers.append(buf)
            else:
                record["data"] = tensors.to_json(out.array, out.datatype, where)
            if params:
                record["parameters"] = params
            records.append(record)
        answer: dict[str, Any] = {"model_name": self.model_name, "id": request.id}
        if self.model_version is not None:
            answer["model_version"] = self.model_version
        answer_params = mapping.answer_parameters(reply)
        if answer_params is not None:
            answer["parameters"] = finite_tree(answer_params)
        answer["outputs"] = records
        header = dumps(answer)
        if not buffers:
            return header
        return BinaryAnswer(header, buffers)

    def raw_metrics(self, answer: Any) -> list[dict[str, Any]]:
        # An inference answer has no place for metrics (the Seldon meta.metrics).
        return []

    def without_raw_metrics(self, answer: Any) -> Any:
        return answer

    def encode_raw(self, answer: Any) -> bytes:
        """What a ``*_raw`` method returned: an answer dict, or the body itself."""
        if isinstance(answer, bytes | bytearray):
            return bytes(answer)
        if isinstance(answer, str):
            return answer.encode()
        return dumps(finite_tree(answer))
