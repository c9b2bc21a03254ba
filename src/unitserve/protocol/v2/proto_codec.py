"""Open Inference Protocol gRPC messages (``inference.ModelInferRequest`` /
``ModelInferResponse``) ⇄ `Message` / `Reply`.

A tensor's values come either in its typed ``contents`` field (the one its
datatype names) or, for every input at once, in ``raw_input_contents``: one
little-endian buffer per input, read with `np.frombuffer` (no copy). The answer
uses ``raw_output_contents`` when the request used raw inputs (tritonclient
reads numeric outputs only from there) or when an output is FP16, which has no
typed field; otherwise each output's typed contents.

``InferParameter`` holds only scalars: a list or dict (``class_names``, a tag
that is an object) travels as its JSON text in ``string_param``, and a
``feature_names`` parameter may be sent the same way.

As the JSON codec, a codec object serves one request.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from google.protobuf.message import DecodeError

from unitserve.errors import BadModelOutput, BadRequest, MalformedMessage
from unitserve.message import FeedbackMessage, Message, Reply
from unitserve.proto import inference_pb2 as pb
from unitserve.protocol import shapes
from unitserve.protocol.jsonio import dumps, finite_tree
from unitserve.protocol.v2 import binary, datatypes, mapping, tensors
from unitserve.protocol.v2.datatypes import FP16, Datatype
from unitserve.protocol.v2.mapping import InferRequest, RequestedOutput, Unsupported

ModelInferRequest = pb.ModelInferRequest
ModelInferResponse = pb.ModelInferResponse

_INT64 = (-(1 << 63), (1 << 63) - 1)


# ----------------------------------------------------------------------------- parameters


def parameters_to_dict(params: Any) -> dict[str, Any]:
    """map<string, InferParameter> → a dict of Python scalars (unset values left out)."""
    out: dict[str, Any] = {}
    for key, param in params.items():
        which = param.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(param, which)
    return out


def fill_parameters(target: Any, values: dict[str, Any]) -> None:
    """A dict → map<string, InferParameter>; what is not a scalar goes as JSON text."""
    for key, value in values.items():
        param = target[str(key)]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool):
            param.bool_param = value
        elif isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
            param.int64_param = value
        elif isinstance(value, int) and 0 <= value < 1 << 64:
            param.uint64_param = value
        elif isinstance(value, float):
            param.double_param = value
        elif isinstance(value, str):
            param.string_param = value
        else:
            param.string_param = dumps(finite_tree(value)).decode().rstrip("\n")


def _feature_names_from_text(params: dict[str, Any]) -> None:
    """A feature_names parameter sent as JSON text becomes the list it spells."""
    text = params.get("feature_names")
    if isinstance(text, str):
        try:
            names = orjson.loads(text)
        except orjson.JSONDecodeError:
            names = None
        if not isinstance(names, list):
            raise BadRequest("parameters.feature_names must be a JSON list of names")
        params["feature_names"] = names


# ----------------------------------------------------------------------------- requests


def parse_request(request: Any) -> tuple[InferRequest, bool]:
    """A ModelInferRequest (or its bytes) → (InferRequest, whether it used raw contents)."""
    if isinstance(request, bytes | bytearray | memoryview):
        try:
            request = ModelInferRequest.FromString(bytes(request))
        except DecodeError as exc:
            raise MalformedMessage(f"the request is not a ModelInferRequest: {exc}") from None
    params = parameters_to_dict(request.parameters)
    _feature_names_from_text(params)
    if not request.inputs:
        raise BadRequest("inputs must hold at least one tensor")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} buffers for {len(request.inputs)} inputs "
            "(one per input, in input order)"
        )
    inputs: list[tuple[str, np.ndarray]] = []
    input_params: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tensor in enumerate(request.inputs):
        name = tensor.name
        tensors.claim_name(i, name, seen)
        where = f"input {name!r}"
        datatype = datatypes.by_name(tensor.datatype, where)
        shape = tensors.read_shape(list(tensor.shape), where)
        tparams = parameters_to_dict(tensor.parameters)
        _feature_names_from_text(tparams)
        input_params.append({"parameters": tparams})
        as_str = tparams.get("content_type") == "str"
        if raw:
            if tensor.HasField("contents"):
                raise BadRequest(
                    f"{where} has contents although the request uses raw_input_contents"
                )
            arr = tensors.from_binary(memoryview(raw[i]), datatype, shape, as_str, where)
        else:
            arr = _from_contents(tensor.contents, datatype, shape, as_str, where)
        inputs.append((name, arr))
    outputs = None
    if request.outputs:
        outputs = []
        for out in request.outputs:
            if "classification" in out.parameters:
                raise BadRequest(
                    f"output {out.name!r}: the classification extension is not supported"
                )
            outputs.append(RequestedOutput(out.name, bool(raw)))
    decoded = InferRequest(
        id=request.id or mapping.new_id(),
        parameters=params,
        inputs=inputs,
        feature_names=mapping.feature_names(params, input_params),
        outputs=outputs,
        binary_output=bool(raw),
    )
    return decoded, bool(raw)


def _from_contents(
    contents: Any, datatype: Datatype, shape: list[int], as_str: bool, where: str
) -> np.ndarray:
    expected = datatype.contents
    for field, _ in contents.ListFields():
        if field.name != expected:
            if expected is None:
                raise BadRequest(
                    f"{where} has datatype {datatype.name}, which travels only in "
                    "raw_input_contents"
                )
            raise BadRequest(
                f"{where} has datatype {datatype.name}, so its values belong in "
                f"contents.{expected}, not contents.{field.name}"
            )
    if expected is None:  # FP16 with no values at all: only an empty tensor
        return shapes.reshape(np.empty(0, dtype=datatype.dtype), shape, where)
    values = getattr(contents, expected)
    if datatype.is_bytes:
        items: list[Any] = list(values)
        if as_str:
            items = tensors.decode_text(items, where)
        return shapes.reshape(binary.object_array(items), shape, where)
    shapes.element_count(shape, len(values), where)
    field_type = {
        "int_contents": np.int32,
        "uint_contents": np.uint32,
    }.get(expected, datatype.dtype)
    arr = np.fromiter(values, dtype=field_type, count=len(values))
    if arr.dtype != datatype.dtype:
        # INT8/16 and UINT8/16 share a 32-bit field: refuse what would wrap around.
        info = np.iinfo(datatype.dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            bad = arr.min() if arr.min() < info.min else arr.max()
            raise datatypes.out_of_range(bad, datatype, where)
        arr = arr.astype(datatype.dtype)
    return shapes.reshape(arr, shape, where)


# ----------------------------------------------------------------------------- answers


def _fill_contents(contents: Any, arr: np.ndarray, datatype: Datatype, where: str) -> None:
    field = datatype.contents
    assert field is not None
    items = arr.reshape(-1).tolist()
    if datatype.is_bytes:
        items = [binary.element_bytes(x, f"{where} element {i}") for i, x in enumerate(items)]
    getattr(contents, field).extend(items)


class V2ProtoCodec:
    """The codec of one gRPC ModelInfer call (see the module doc)."""

    #: The gRPC side of the engine's choices: a deprecated ``predict_grpc`` (not
    #: ``predict_rest``) gets the request, and a raw answer carries no HTTP status.
    proto = True

    def __init__(self, model_name: str, model_version: str | None = None) -> None:
        self.model_name = model_name
        self.model_version = model_version
        self.request: InferRequest | None = None
        self.raw = False

    def decode(self, request: Any) -> Message:
        self.request, self.raw = parse_request(request)
        return mapping.to_message(self.request)

    def decode_list(self, request: Any) -> list[Message]:
        raise Unsupported(
            "a combiner has no Open Inference Protocol form: it takes several requests"
        )

    def decode_feedback(self, request: Any, routing_key: str) -> FeedbackMessage:
        raise Unsupported("feedback has no Open Inference Protocol form")

    def encode(self, reply: Reply) -> Any:
        request = self._request()
        chosen = self._chosen(reply, request)
        return self._message(request, chosen, mapping.answer_parameters(reply))

    def _request(self) -> InferRequest:
        if self.request is None:  # the engine always decodes first; a guard for other callers
            return InferRequest(mapping.new_id(), {}, [])
        return self.request

    @staticmethod
    def _chosen(reply: Reply, request: InferRequest) -> list[mapping.Output]:
        return [out for out, _ in mapping.answer_outputs(reply, request)]

    def _message(
        self, request: InferRequest, chosen: list[mapping.Output], params: dict[str, Any] | None
    ) -> Any:
        answer = ModelInferResponse(model_name=self.model_name, id=request.id)
        if self.model_version is not None:
            answer.model_version = self.model_version
        if params is not None:
            fill_parameters(answer.parameters, params)
        use_raw = self.raw or any(out.datatype is FP16 for out in chosen)
        for out in chosen:
            where = f"output {out.name!r}"
            tensor = answer.outputs.add(
                name=out.name, datatype=out.datatype.name, shape=out.array.shape
            )
            if out.parameters:
                fill_parameters(tensor.parameters, out.parameters)
            if use_raw:
                answer.raw_output_contents.append(
                    bytes(binary.array_buffer(out.array, out.datatype, where))
                )
            else:
                _fill_contents(tensor.contents, out.array, out.datatype, where)
        return answer

    def raw_metrics(self, answer: Any) -> list[dict[str, Any]]:
        # An inference answer has no place for metrics (the Seldon meta.metrics).
        return []

    def without_raw_metrics(self, answer: Any) -> Any:
        return answer

    def encode_raw(self, answer: Any) -> Any:
        """What a ``*_raw`` method returned: a ModelInferResponse (or its bytes)."""
        if isinstance(answer, bytes | bytearray):
            return bytes(answer)
        if not isinstance(answer, ModelInferResponse):
            raise BadModelOutput(
                f"a raw method answered {type(answer).__name__}; over gRPC it must "
                "return an inference.ModelInferResponse"
            )
        return answer
