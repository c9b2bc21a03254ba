"""ModelInfer bytes ⇄ `Message` / `Reply` without protobuf message objects, for the
common requests: named inputs whose values all travel in ``raw_input_contents``, or
all in the packed typed contents of FP32 and FP64 inputs; no parameters; requested
outputs (if any) named only.

For a request of a few dozen bytes most of the time goes into Python-level work
around the protobuf objects (each field read makes a wrapper, the general parser
handles every form a request may take), not into parsing itself. Here the bytes
are read field by field, and an answer whose outputs travel as raw contents (or
as FP32/FP64 typed contents), with no parameters or only the text tags of a
prepackaged server's answer (its content types), is written straight as bytes, the
tags' bytes kept once made. Anything else — other
typed contents, parameters, a field this reader does not know, a singular field
sent twice, bytes that do not parse — takes the general path (`proto_codec`), so
both paths mean the same and every error still comes from one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from unitserve.errors import BadRequest
from unitserve.message import Message, Reply, RuntimeOutputs
from unitserve.proto import inference_pb2 as pb
from unitserve.protocol import shapes
from unitserve.protocol.protowire import read_varint, varint
from unitserve.protocol.v2 import binary, datatypes, mapping, tensors
from unitserve.protocol.v2.datatypes import Datatype
from unitserve.protocol.v2.mapping import InferRequest, Output, RequestedOutput
from unitserve.protocol.v2.proto_codec import V2ProtoCodec

_LEN = 2

# ModelInferRequest's tags (field number << 3 | wire type) the reader knows.
_MODEL_NAME = 0x0A  # 1, string
_MODEL_VERSION = 0x12  # 2, string
_ID = 0x1A  # 3, string
_INPUT = 0x2A  # 5, InferInputTensor
_OUTPUT = 0x32  # 6, InferRequestedOutputTensor
_RAW_INPUT = 0x3A  # 7, bytes
_RAW_INPUT_BYTE = bytes((_RAW_INPUT,))
# InferInputTensor's
_TENSOR_NAME = 0x0A  # 1, string
_DATATYPE = 0x12  # 2, string
_SHAPE_PACKED = 0x1A  # 3, repeated int64 as one packed run
_SHAPE_ONE = 0x18  # 3, repeated int64 one at a time (also valid on the wire)
_CONTENTS = 0x2A  # 5, InferTensorContents
# InferTensorContents' packed floating-point fields, by the datatype they carry
_FP32_CONTENTS = 0x32  # 6
_FP64_CONTENTS = 0x3A  # 7
_TYPED = {"FP32": _FP32_CONTENTS, "FP64": _FP64_CONTENTS}
_TYPED_SIZE = {_FP32_CONTENTS: 4, _FP64_CONTENTS: 8}
_FLOAT_DATATYPE = b"\x04FP"  # the length and start of a datatype field "FP32" or "FP64"
# InferRequestedOutputTensor's
_OUTPUT_NAME = 0x0A  # 1, string

_INT64_SIGN = 1 << 63
_UINT64 = 1 << 64


class _General(Exception):
    """This request needs the general path."""


@dataclass(slots=True)
class InputHead:
    """An input's name, datatype and shape as sent. The same few heads come on every
    request, so each is read once and kept with the bytes it was read from (see
    `_HEAD_CACHE`), together with what its checks found."""

    name: str
    datatype: str
    shape: list[int]  # shared by the requests that send these bytes: never changed
    #: (datatype, where, element count or 0) once the datatype and shape have passed
    #: their checks; the count is set when a buffer of exactly count x size bytes may
    #: go straight to `np.frombuffer` (a fixed-size type other than BOOL, a shape that
    #: numpy holds, at least one element).
    checked: tuple[Datatype, str, int] | None = field(default=None, compare=False)


@dataclass(slots=True)
class FastRequest:
    """The fields of a ModelInferRequest of the common form (see the module doc).
    It has the attributes the transport reads from a parsed request."""

    model_name: str
    model_version: str
    id: str
    #: The inputs, in request order.
    inputs: list[InputHead]
    #: The names of the requested outputs, in request order.
    outputs: list[str]
    #: One view of the request bytes per ``raw_input_contents`` entry.
    raw: list[memoryview]
    #: Without raw contents: each input's packed FP32 or FP64 values (a view of the
    #: request bytes), in input order.
    typed: list[memoryview] | None = None


#: Input heads by their serialised bytes (bounded: a client could send endless shapes).
_HEAD_CACHE: dict[bytes, InputHead] = {}
_MAX_CACHED = 256
_MAX_HEAD_BYTES = 512
# Arrays with more dimensions than this are left to the general checks (numpy's limit
# on dimensions is 32 or 64, depending on its version).
_MAX_DIMS = 32


def _chunk(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, stop) of the length-delimited value whose length starts at `pos`."""
    length = data[pos] if pos < end else 0x80
    if length < 0x80:
        start = pos + 1
    else:
        length, start = read_varint(data, pos)
    stop = start + length
    if stop > end:
        raise _General
    return start, stop


def read_request(data: bytes) -> FastRequest | None:
    """The request's fields if it has the common form, else None (the general path
    then parses it and says what is wrong, if anything)."""
    if _RAW_INPUT_BYTE not in data and _FLOAT_DATATYPE not in data:
        # Neither raw contents nor a float datatype can be in these bytes: a typed
        # request of another datatype goes to the general path at once (a search in
        # C, not a parse).
        return None
    try:
        return _read_request(data)
    except (_General, ValueError, IndexError):
        # ValueError: a varint cut short or too long, or text that is not UTF-8;
        # IndexError: bytes that end inside a field
        return None


def _read_request(data: bytes) -> FastRequest | None:
    view = memoryview(data)
    end = len(data)
    pos = 0
    strings: dict[int, str] = {}
    inputs: list[InputHead] = []
    outputs: list[str] = []
    raw: list[memoryview] = []
    typed: list[memoryview] = []
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag & 7 != _LEN:
            raise _General  # every field the reader knows is length-delimited
        length = data[pos]
        if length < 0x80:  # the usual case, inline: a one-byte length
            start = pos + 1
            pos = start + length
            if pos > end:
                raise _General
        else:
            start, pos = _chunk(data, pos, end)
        if tag == _RAW_INPUT:
            raw.append(view[start:pos])
        elif tag == _INPUT:
            key = data[start:pos]
            head = _HEAD_CACHE.get(key)
            if head is None:
                head, values = _read_input(data, view, start, pos)
                if values is not None:
                    # values differ from request to request: the head is not kept
                    typed.append(values)
                elif len(_HEAD_CACHE) < _MAX_CACHED and len(key) <= _MAX_HEAD_BYTES:
                    _HEAD_CACHE[key] = head
            inputs.append(head)
        elif tag == _OUTPUT:
            outputs.append(_read_output(data, view, start, pos))
        elif tag in (_MODEL_NAME, _MODEL_VERSION, _ID):
            if tag in strings:
                raise _General  # a singular field twice: the last one wins there
            strings[tag] = str(view[start:pos], "utf-8")
        else:
            raise _General  # parameters, or a field this reader does not know
    if raw:
        if typed:
            return None  # contents and raw contents both: the general path says why
    elif not inputs or len(typed) != len(inputs):
        return None  # an input without values (or none at all): the general path
    return FastRequest(
        strings.get(_MODEL_NAME, ""),
        strings.get(_MODEL_VERSION, ""),
        strings.get(_ID, ""),
        inputs,
        outputs,
        raw,
        typed if typed else None,
    )


def _read_input(
    data: bytes, view: memoryview, pos: int, end: int
) -> tuple[InputHead, memoryview | None]:
    """The input's head, and its packed FP32/FP64 values if it carries contents."""
    name = datatype = None
    shape: list[int] = []
    contents: tuple[int, int] | None = None
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag == _SHAPE_ONE:
            dim, pos = read_varint(data, pos)
            shape.append(dim - _UINT64 if dim >= _INT64_SIGN else dim)
            continue
        if tag & 7 != _LEN:
            raise _General
        start, pos = _chunk(data, pos, end)
        if tag == _SHAPE_PACKED:
            while start < pos:
                dim = data[start]
                if dim < 0x80:
                    start += 1
                else:
                    dim, start = read_varint(data, start)
                    if start > pos:
                        raise _General
                    if dim >= _INT64_SIGN:
                        dim -= _UINT64
                shape.append(dim)
        elif tag == _TENSOR_NAME and name is None:
            name = str(view[start:pos], "utf-8")
        elif tag == _DATATYPE and datatype is None:
            datatype = str(view[start:pos], "utf-8")
        elif tag == _CONTENTS and contents is None:
            contents = (start, pos)
        else:
            raise _General  # parameters, a field twice, or an unknown field
    if pos != end:
        raise _General
    head = InputHead(name or "", datatype or "", shape)
    if contents is None:
        return head, None
    return head, _typed_values(data, view, *contents, _TYPED.get(head.datatype))


def _typed_values(
    data: bytes, view: memoryview, pos: int, end: int, expected: int | None
) -> memoryview:
    """The packed values of an InferTensorContents holding exactly the one field
    that the input's datatype names (FP32 or FP64); anything else is the general
    path's to read, or to refuse with its own words."""
    if pos >= end or data[pos] != expected:
        raise _General
    start, stop = _chunk(data, pos + 1, end)
    if stop != end or (stop - start) % _TYPED_SIZE[expected]:
        raise _General
    return view[start:stop]


def _read_output(data: bytes, view: memoryview, pos: int, end: int) -> str:
    name = None
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag != _OUTPUT_NAME or name is not None:
            raise _General  # parameters, a field twice, or an unknown field
        start, pos = _chunk(data, pos, end)
        name = str(view[start:pos], "utf-8")
    if pos != end:
        raise _General
    return name or ""


def decode_request(request: FastRequest) -> InferRequest:
    """The InferRequest of a request of the common form: the checks and the order of
    `proto_codec.parse_request` for a request with no parameters and raw contents."""
    inputs_sent = request.inputs
    if not inputs_sent:
        raise BadRequest("inputs must hold at least one tensor")
    if request.typed is not None:
        return _decode_typed(request, request.typed)
    raw = request.raw
    if len(raw) != len(inputs_sent):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} buffers for {len(inputs_sent)} inputs "
            "(one per input, in input order)"
        )
    inputs: list[tuple[str, np.ndarray]] = []
    seen: set[str] = set()
    for i, head in enumerate(inputs_sent):
        name = head.name
        tensors.claim_name(i, name, seen)
        checked = head.checked
        if checked is None:
            checked = head.checked = _check(head)
        datatype, where, count = checked
        buf = raw[i]
        if count and len(buf) == count * (datatype.size or 0):
            # what `tensors.from_binary` answers for such a buffer, without its checks
            arr = np.frombuffer(buf, dtype=datatype.wire).reshape(head.shape)
        else:
            arr = tensors.from_binary(buf, datatype, head.shape, False, where)
        inputs.append((name, arr))
    return _infer_request(request, inputs, binary=True)


def _decode_typed(request: FastRequest, typed: list[memoryview]) -> InferRequest:
    """As `decode_request`, for inputs whose values came in their typed contents (FP32
    or FP64, as `proto_codec._from_contents` reads them: an array of its own)."""
    inputs: list[tuple[str, np.ndarray]] = []
    seen: set[str] = set()
    for i, head in enumerate(request.inputs):
        name = head.name
        tensors.claim_name(i, name, seen)
        where = f"input {name!r}"
        datatype = datatypes.by_name(head.datatype, where)
        shape = tensors.read_shape(head.shape, where)
        # a copy in native order: the user may write to it, as to the general path's
        values = np.frombuffer(typed[i], dtype=datatype.wire).astype(datatype.dtype)
        inputs.append((name, shapes.reshape(values, shape, where)))
    return _infer_request(request, inputs, binary=False)


def _infer_request(
    request: FastRequest, inputs: list[tuple[str, np.ndarray]], binary: bool
) -> InferRequest:
    """What the fast forms share: no parameters, no feature names, and outputs asked
    for by name only, answered in the form the inputs came in (raw or typed)."""
    outputs = [RequestedOutput(name, binary) for name in request.outputs] or None
    return InferRequest(
        id=request.id or mapping.new_id(),
        parameters={},
        inputs=inputs,
        feature_names=[],
        outputs=outputs,
        binary_output=binary,
    )


def _check(head: InputHead) -> tuple[Datatype, str, int]:
    where = f"input {head.name!r}"
    datatype = datatypes.by_name(head.datatype, where)
    shape = tensors.read_shape(head.shape, where)
    count = 0
    if not datatype.is_bytes and datatype is not datatypes.BOOL and len(shape) <= _MAX_DIMS:
        count = math.prod(shape)
    return datatype, where, count


# ----------------------------------------------------------------------------- answers


def _field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + varint(len(payload)) + payload


# ModelInferResponse's tags
_R_MODEL_NAME = 0x0A  # 1
_R_MODEL_VERSION = 0x12  # 2
_R_ID = 0x1A  # 3
_R_OUTPUT = 0x2A  # 5, InferOutputTensor: name 1, datatype 2, shape 3 (packed), as the request's
_R_RAW_OUTPUT = 0x32  # 6

# The same few headers come back on every answer: their bytes are kept (bounded).
_HEADS: dict[tuple[Any, ...], bytes] = {}
_MAX_HEADS = 256


def _keep(key: tuple[Any, ...], value: bytes) -> bytes:
    if len(_HEADS) < _MAX_HEADS:
        _HEADS[key] = value
    return value


def _model_head(name: str, version: str | None) -> bytes:
    out = _field(_R_MODEL_NAME, name.encode()) if name else b""
    if version:
        out += _field(_R_MODEL_VERSION, version.encode())
    return out


# Parameters of an answer or an output whose values are all text, as a key of _HEADS:
# (name, value) pairs in their order.
TextParameters = tuple[tuple[str, str], ...]


def _text_parameters(params: dict[str, Any] | None) -> TextParameters | None:
    """`params` as a key of kept bytes: () for none; None when a value is not text
    (the general path writes those)."""
    if not params:
        return ()
    if all(isinstance(v, str) for v in params.values()):
        return tuple(params.items())
    return None


def _parameters_bytes(of_answer: bool, items: TextParameters) -> bytes:
    """The ``parameters`` field of an answer (or of an output tensor) holding `items`:
    made by protobuf once, then kept. The fields of a message may come in any order,
    so these bytes are appended to the rest of it."""
    if not items:
        return b""
    key = ("parameters", of_answer, items)
    found = _HEADS.get(key)
    if found is None:
        message: Any = (
            pb.ModelInferResponse() if of_answer else pb.ModelInferResponse.InferOutputTensor()
        )
        for name, value in items:
            message.parameters[name].string_param = value
        found = _keep(key, message.SerializeToString())
    return found


def _output_body(name: str, datatype: str, shape: tuple[int, ...]) -> bytes:
    body = _field(_TENSOR_NAME, name.encode()) if name else b""
    body += _field(_DATATYPE, datatype.encode())
    if shape:
        body += _field(_SHAPE_PACKED, b"".join(varint(d) for d in shape))
    return body


class V2BytesCodec(V2ProtoCodec):
    """The codec of one gRPC ModelInfer call on bytes: a `FastRequest` is decoded
    here, a parsed message by the general codec; the answer is serialised bytes,
    written here when nothing carries parameters and its outputs travel as raw
    contents or as non-empty FP32/FP64 typed contents."""

    def decode(self, request: Any) -> Message:
        if isinstance(request, FastRequest):
            self.request, self.raw = decode_request(request), request.typed is None
            return mapping.to_message(self.request)
        return super().decode(request)

    def encode(self, reply: Reply) -> bytes:
        request = self._request()
        chosen = self._chosen(reply, request)
        params = mapping.answer_parameters(reply)
        raw = self.raw or any(o.datatype is datatypes.FP16 for o in chosen)
        # Only the fixed tags of a prepackaged server's answer are kept as bytes: tags
        # from requests could be anything, and would crowd the kept heads out.
        answer_items = (
            _text_parameters(params)
            if params is None or isinstance(reply.value, RuntimeOutputs)
            else None
        )
        output_items = [_text_parameters(o.parameters) for o in chosen]
        if answer_items is not None and None not in output_items:
            tagged = cast(list[TextParameters], output_items)
            try:
                if raw:
                    return self._raw_answer(request, chosen, answer_items, tagged)
                if all(o.datatype.name in _TYPED and o.array.size for o in chosen):
                    return self._typed_answer(request, chosen, answer_items, tagged)
            except UnicodeEncodeError:
                pass  # a name that is not valid text: the general path says so
        answer: bytes = self._message(request, chosen, params).SerializeToString()
        return answer

    def _answer_head(self, request: InferRequest, items: TextParameters) -> list[bytes]:
        name, version = self.model_name, self.model_version
        key: tuple[Any, ...] = ("model", name, version)
        parts = [_HEADS.get(key) or _keep(key, _model_head(name, version))]
        if request.id:
            rid = request.id.encode()
            parts.append(b"%c%b%b" % (_R_ID, varint(len(rid)), rid))
        if items:
            parts.append(_parameters_bytes(True, items))
        return parts

    def _typed_answer(
        self,
        request: InferRequest,
        chosen: list[Output],
        answer_items: TextParameters,
        output_items: list[TextParameters],
    ) -> bytes:
        """FP32 and FP64 outputs (none empty) in their packed typed contents."""
        parts = self._answer_head(request, answer_items)
        for out, items in zip(chosen, output_items, strict=True):
            arr, datatype = out.array, out.datatype
            key = ("body", out.name, datatype.name, arr.shape, items)
            body = _HEADS.get(key) or _keep(
                key,
                _output_body(out.name, datatype.name, arr.shape) + _parameters_bytes(False, items),
            )
            values = np.ascontiguousarray(arr, dtype=datatype.wire).tobytes()
            contents = _field(_TYPED[datatype.name], values)
            parts.append(_field(_R_OUTPUT, body + _field(_CONTENTS, contents)))
        return b"".join(parts)

    def _raw_answer(
        self,
        request: InferRequest,
        chosen: list[Output],
        answer_items: TextParameters,
        output_items: list[TextParameters],
    ) -> bytes:
        parts = self._answer_head(request, answer_items)
        buffers = []
        for out, items in zip(chosen, output_items, strict=True):
            arr, datatype = out.array, out.datatype
            shape = arr.shape
            key = ("output", out.name, datatype.name, shape, items)
            head = _HEADS.get(key) or _keep(
                key,
                _field(
                    _R_OUTPUT,
                    _output_body(out.name, datatype.name, shape) + _parameters_bytes(False, items),
                ),
            )
            parts.append(head)
            if datatype.size is not None and arr.dtype == datatype.wire and arr.flags.c_contiguous:
                buffers.append(arr.tobytes())  # the usual case: one copy, straight from the array
            else:
                buffers.append(bytes(binary.array_buffer(arr, datatype, f"output {out.name!r}")))
        for buffer in buffers:
            parts.append(b"%c%b%b" % (_R_RAW_OUTPUT, varint(len(buffer)), buffer))
        return b"".join(parts)
