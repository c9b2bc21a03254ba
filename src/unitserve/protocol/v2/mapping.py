"""Inference request ⇄ the arguments of a Seldon class, and its result ⇄ outputs.

The same rules for every wire form (JSON, binary, gRPC):

- one input → ``X`` is that input's array; several → a dict name → array, in
  request order; a request whose ``parameters.content_type`` is ``"pd"`` (a table,
  one column an input) → always the dict, as a column is known by its input's name;
- ``feature_names`` comes from the input's (one input) or the request's
  ``parameters.feature_names``, else ``[]``;
- ``meta`` is ``{"puid": <request id>, "tags": <request parameters>, "outputs": [<the
  names of the outputs the client asked for>, or [] for all]}``: a class whose answer
  depends on the outputs asked for (the prepackaged servers answer ``predict`` or
  ``predict_proba`` as MLServer's runtimes do) reads them there, and returns a dict
  of them;
- the result: an array → ``output-0``; a dict → one output per key; a list or
  tuple of arrays → ``output-0`` … ``output-N``; a str or bytes → a BYTES
  output of shape ``[1]``. The datatype follows the dtype, the shape the array;
  a class's own ``class_names`` matching the last dimension ride along as the
  output's ``parameters.class_names``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitserve.errors import BadModelOutput, BadRequest, WrongComponent
from unitserve.message import (
    ARRAYS,
    BIN,
    JSON,
    NDARRAY,
    STR,
    TENSOR,
    TFTENSOR,
    Message,
    Reply,
    RuntimeOutputs,
    new_request_id,
)
from unitserve.protocol.v2 import binary, datatypes
from unitserve.protocol.v2.datatypes import Datatype

#: Request parameters that steer this server rather than describe the request:
#: they are not passed on as tags (and so not echoed in the answer).
NOT_TAGS = frozenset({"feature_names", "binary_data_output"})

#: The Message kind of an inference request. NDARRAY makes the engine hand back a
#: list result as the user's own list, so that a list of arrays can become several
#: outputs instead of one stacked array.
MESSAGE_KIND = NDARRAY


#: The id of a request that came without one.
new_id = new_request_id


class Unsupported(WrongComponent):
    """An operation with no meaning in the Open Inference Protocol (a router's choice,
    a combiner's several requests): the client asked the wrong kind of component."""


@dataclass(slots=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(slots=True)
class InferRequest:
    """A decoded inference request, whatever its wire form."""

    id: str
    parameters: dict[str, Any]
    inputs: list[tuple[str, np.ndarray]]
    feature_names: list[Any] = field(default_factory=list)
    #: The outputs the client asked for, in its order; None for "all of them".
    outputs: list[RequestedOutput] | None = None
    #: Send outputs the client did not name one by one as binary data.
    binary_output: bool = False


@dataclass(slots=True)
class Output:
    name: str
    array: np.ndarray
    datatype: Datatype
    parameters: dict[str, Any] | None = None


def feature_names(request_params: dict[str, Any], inputs: list[dict[str, Any]]) -> list[Any]:
    found: Any = None
    if len(inputs) == 1:
        found = (inputs[0].get("parameters") or {}).get("feature_names")
    if found is None:
        found = request_params.get("feature_names")
    if found is None:
        return []
    if not isinstance(found, list):
        raise BadRequest("parameters.feature_names must be a list of names")
    return found


#: The request content type of a table: MLServer's pandas codec's.
TABLE_CONTENT_TYPE = "pd"


def to_message(request: InferRequest) -> Message:
    if len(request.inputs) == 1 and request.parameters.get("content_type") != TABLE_CONTENT_TYPE:
        features: Any = request.inputs[0][1]
    else:
        features = dict(request.inputs)
    tags = {k: v for k, v in request.parameters.items() if k not in NOT_TAGS}
    asked = [o.name for o in request.outputs] if request.outputs else []
    meta = {"puid": request.id, "tags": tags, "outputs": asked}
    return Message(MESSAGE_KIND, features, list(request.feature_names), meta)


# ----------------------------------------------------------------------------- answers


def outputs_of(reply: Reply) -> list[Output]:
    """The user's result (as the engine hands it over) → named outputs."""
    kind, value = reply.kind, reply.value
    if isinstance(value, RuntimeOutputs):
        return [_runtime_output(k, v, value.made_of) for k, v in value.items()]
    if kind == JSON:
        if not all(isinstance(k, str) for k in value):
            raise BadModelOutput("the model returned a dict whose keys are not all strings")
        return [_output(k, v) for k, v in value.items()]
    if kind in (STR, BIN):
        return [_output("output-0", value)]
    if kind in (NDARRAY, TENSOR, TFTENSOR):
        if (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(v, np.ndarray) for v in value)
        ):
            return [_output(f"output-{i}", v) for i, v in enumerate(value)]
        out = _output("output-0", value)
        names = _class_names(reply.names, out.array)
        if names is not None:
            out.parameters = {"class_names": names}
        return [out]
    raise BadModelOutput(f"the model returned a {kind} payload, which has no inference output form")


def _output(name: str, value: Any) -> Output:
    where = f"output {name!r}"
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(value, str | bytes | bytearray):
        arr = binary.object_array([bytes(value) if not isinstance(value, str) else value])
    elif isinstance(value, list | tuple):
        try:
            arr = np.array(value)
        except (ValueError, TypeError) as exc:
            raise BadModelOutput(f"{where} is a list that is not an array: {exc}") from None
    elif isinstance(value, bool | int | float | np.generic):
        arr = np.asarray(value).reshape(1)
    else:
        raise BadModelOutput(
            f"{where} is a {type(value).__name__}; outputs must be arrays, lists, "
            "numbers, str or bytes"
        )
    return Output(name, arr, datatypes.of_array(arr, where))


def _runtime_output(name: Any, value: Any, made_of: str) -> Output:
    """An output of a model standing in for an MLServer runtime, written as MLServer's
    codecs write it: a 1-D array gets a second axis of 1, one value a row (a single
    value has shape [1]); an array is tagged ``content_type: np``; a table's column is
    tagged only when it holds text (``str``)."""
    out = _output(str(name), value)
    if np.ndim(value) == 0:
        out.array = out.array.reshape(1)
    elif out.array.ndim == 1:
        out.array = out.array.reshape(-1, 1)
    if made_of == ARRAYS:
        out.parameters = {"content_type": "np"}
    elif out.datatype is datatypes.BYTES and all(
        isinstance(x, str | bytes) for x in out.array.flat
    ):
        out.parameters = {"content_type": "str"}
    return out


def _class_names(names: list[Any] | None, arr: np.ndarray) -> list[Any] | None:
    """The class's own class_names, if they label the last dimension. The engine fills
    in Seldon's default ``t:0`` … names when the class has none: those are not sent."""
    if not names or arr.ndim < 2 or len(names) != arr.shape[-1]:
        return None
    if all(n == f"t:{i}" for i, n in enumerate(names)):
        return None
    return list(names)


def answer_outputs(reply: Reply, request: InferRequest) -> list[tuple[Output, bool]]:
    """The outputs of `reply` to send, each with "send as binary" (see `select`)."""
    outputs = outputs_of(reply)
    value = reply.value
    if isinstance(value, RuntimeOutputs) and value.made_of != ARRAYS:
        # A table's columns are the whole answer, whatever the output asked for (the
        # model's method) was called, as MLServer answers them.
        return [(o, request.binary_output) for o in outputs]
    return select(outputs, request)


def select(outputs: list[Output], request: InferRequest) -> list[tuple[Output, bool]]:
    """The outputs to send, in the client's order, each with "send as binary"."""
    if request.outputs is None:
        return [(o, request.binary_output) for o in outputs]
    by_name = {o.name: o for o in outputs}
    chosen = []
    for wanted in request.outputs:
        found = by_name.get(wanted.name)
        if found is None:
            have = ", ".join(repr(n) for n in by_name) or "none"
            raise BadRequest(
                f"requested output {wanted.name!r} is not among the model's outputs ({have})"
            )
        chosen.append((found, wanted.binary))
    return chosen


def answer_parameters(reply: Reply) -> dict[str, Any] | None:
    """The answer's parameters: the merged tags, if any; for a model standing in for
    an MLServer runtime, the content type the runtime gives its answer, if any (it
    echoes no tags)."""
    if isinstance(reply.value, RuntimeOutputs):
        content_type = reply.value.content_type
        return {"content_type": content_type} if content_type else None
    tags = reply.meta.get("tags")
    return tags if isinstance(tags, dict) and tags else None
