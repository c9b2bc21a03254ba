"""The ModelInfer reader and writer on bytes (`protocol.v2.proto_fast`) against the
general codec on protobuf messages: the same requests, errors and answer bytes."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitserve.errors import ServingError
from unitserve.message import COLUMNS, JSON, NDARRAY, STR, Reply, RuntimeOutputs
from unitserve.proto import inference_pb2 as pb
from unitserve.protocol.v2 import mapping, proto_fast
from unitserve.protocol.v2.proto_codec import V2ProtoCodec
from unitserve.protocol.v2.proto_fast import FastRequest, InputHead, V2BytesCodec, read_request

# (datatype, numpy dtype, values): every datatype the protocol defines.
DATATYPES = [
    ("BOOL", np.bool_, [True, False, True, True]),
    ("UINT8", np.uint8, [0, 1, 254, 255]),
    ("UINT16", np.uint16, [0, 1, 2, 65535]),
    ("UINT32", np.uint32, [0, 1, 2, 4294967295]),
    ("UINT64", np.uint64, [0, 1, 2, 18446744073709551615]),
    ("INT8", np.int8, [-128, 0, 1, 127]),
    ("INT16", np.int16, [-32768, 0, 1, 32767]),
    ("INT32", np.int32, [-(2**31), 0, 1, 2**31 - 1]),
    ("INT64", np.int64, [-(2**63), 0, 1, 2**63 - 1]),
    ("FP16", np.float16, [0.5, -2.0, 0.0, 65504.0]),
    ("FP32", np.float32, [0.5, -2.25, 0.0, 1e30]),
    ("FP64", np.float64, [0.1, 1e300, -0.0, 3.0]),
    ("BYTES", object, [b"a", b"\xff\x00", b"", b"long" * 50]),
]


def raw_bytes(datatype, dtype, values):
    if datatype == "BYTES":
        return b"".join(len(v).to_bytes(4, "little") + v for v in values)
    return np.array(values, dtype=dtype).astype(np.dtype(dtype).newbyteorder("<")).tobytes()


def raw_request(inputs, *, model="m", version="", request_id="r0", outputs=()):
    """A ModelInferRequest with raw contents: inputs are (name, datatype, shape, raw)."""
    request = pb.ModelInferRequest(model_name=model, model_version=version, id=request_id)
    for name, datatype, shape, raw in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=list(shape))
        request.raw_input_contents.append(raw)
    for name in outputs:
        request.outputs.add(name=name)
    return request


def decoded(codec, request):
    """(features, names, meta) of a request, or the error it raises."""
    try:
        msg = codec.decode(request)
    except ServingError as exc:
        return type(exc), str(exc)
    return msg


def same_message(fast, general):
    if isinstance(general, tuple):
        assert fast == general
        return
    assert fast.kind == general.kind
    assert fast.names == general.names
    assert fast.meta == general.meta
    xs, ys = fast.features, general.features
    if not isinstance(ys, dict):
        xs, ys = {"": xs}, {"": ys}
    assert list(xs) == list(ys)
    for key in ys:
        x, y = xs[key], ys[key]
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes() if x.dtype != object else x.tolist() == y.tolist()


def fast_request(data: bytes) -> FastRequest:
    """The bytes path's reading of `data`, which must be one it reads."""
    request = read_request(data)
    assert request is not None, "the bytes path refused the request"
    return request


def both(request, version="1"):
    """The bytes path and the general path, each decoding `request`."""
    data = request.SerializeToString()
    fast = read_request(data)
    assert fast is not None
    fast_codec, general = V2BytesCodec("m", version), V2ProtoCodec("m", version)
    same_message(decoded(fast_codec, fast), decoded(general, pb.ModelInferRequest.FromString(data)))
    return fast_codec, general


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize(("datatype", "dtype", "values"), DATATYPES)
def test_every_datatype_reads_and_writes_as_the_general_codec(datatype, dtype, values):
    raw = raw_bytes(datatype, dtype, values)
    request = raw_request([("x", datatype, (2, 2), raw)], request_id="r1")
    fast, general = both(request)
    msg = fast.decode(read_request(request.SerializeToString()))
    assert msg.features.shape == (2, 2) and msg.features.dtype == np.dtype(dtype)
    reply = Reply(NDARRAY, msg.features, None, {"puid": "r1"})
    answer = fast.encode(reply)
    assert isinstance(answer, bytes)
    general.decode(request)
    assert answer == general.encode(reply).SerializeToString()
    assert list(pb.ModelInferResponse.FromString(answer).raw_output_contents) == [raw]


def test_fields_read_as_protobuf_reads_them():
    request = raw_request(
        [("a", "FP32", (1, 2), b"\0" * 8), ("b", "INT64", (2,), b"\1" * 16)],
        model="my-model",
        version="7",
        request_id="é" * 100,  # a length that takes two bytes
        outputs=("b", "a"),
    )
    fast = read_request(request.SerializeToString())
    assert fast == FastRequest(
        "my-model",
        "7",
        "é" * 100,
        [InputHead("a", "FP32", [1, 2]), InputHead("b", "INT64", [2])],
        ["b", "a"],
        [memoryview(b"\0" * 8), memoryview(b"\1" * 16)],
    )
    both(request)


def test_arrays_are_views_of_the_request_bytes():
    request = raw_request([("x", "FP32", (4,), np.arange(4, dtype="<f4").tobytes())])
    x = V2BytesCodec("m").decode(read_request(request.SerializeToString())).features
    assert not x.flags.owndata and not x.flags.writeable
    assert x.tolist() == [0, 1, 2, 3]


def test_large_dimensions_negative_dimensions_and_unpacked_shapes():
    big = raw_request([("x", "UINT8", (1, 300, 0), b"")])
    assert fast_request(big.SerializeToString()).inputs[0].shape == [1, 300, 0]
    both(big)
    negative = raw_request([("x", "FP32", (-1, 4), b"\0" * 16)])
    assert fast_request(negative.SerializeToString()).inputs[0].shape == [-1, 4]
    both(negative)
    # a shape sent one dimension at a time (tag 0x18) means the same as a packed one
    tensor = b"\x0a\x01x\x12\x04FP32\x18\x01\x18\x02\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"
    data = b"\x0a\x01m\x2a" + bytes([len(tensor)]) + tensor + b"\x3a\x08" + b"\0" * 8
    assert pb.ModelInferRequest.FromString(data).inputs[0].shape == [1, 2, -1]
    assert fast_request(data).inputs[0].shape == [1, 2, -1]


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.parameters["tenant"].MergeFrom(pb.InferParameter(string_param="a")),
        lambda r: (
            r.inputs[0].parameters["content_type"].MergeFrom(pb.InferParameter(string_param="str"))
        ),
        lambda r: (
            r.outputs.add(name="y")
            .parameters["binary_data"]
            .MergeFrom(pb.InferParameter(bool_param=True))
        ),
        lambda r: r.ClearField("raw_input_contents"),
        lambda r: r.inputs[0].contents.fp32_contents.extend([1.0]),
    ],
)
def test_other_forms_take_the_general_path(change):
    request = raw_request([("x", "FP32", (1,), b"\0" * 4)])
    assert read_request(request.SerializeToString()) is not None
    change(request)
    assert read_request(request.SerializeToString()) is None


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x01m\x0a\x01n\x3a\x00",  # model_name twice: protobuf keeps the last one
        b"\x0a\x02\xff\xfe\x3a\x00",  # a name that is not UTF-8
        b"\x0a\x05m\x3a\x00",  # a length past the end
        b"\x08\x01\x3a\x00",  # a field number this reader does not know
        b"\x3a\x00\x42\x00",  # likewise, length-delimited
        b"\x2a\x06\x0a\x01x\x0a\x01y\x3a\x00",  # an input's name twice
        b"\x2a\x03\x0a\x05x\x3a\x00",  # a nested length past its message
        b"\x32\x02\x12\x00\x3a\x00",  # an output's parameters
        b"\x3a\x80",  # a truncated length
        b"",  # nothing at all: no raw contents
    ],
)
def test_unusual_bytes_take_the_general_path(data):
    assert read_request(data) is None


# (shape, datatype, raw) of one input, each wrong in its own way
BAD_INPUTS = [
    [("", "FP32", (1,), b"\0" * 4)],
    [("x", "FP32", (1,), b"\0" * 4), ("x", "FP32", (1,), b"\0" * 4)],
    [("x", "FP33", (1,), b"\0" * 4)],
    [("x", "BF16", (1,), b"\0" * 2)],
    [("x", "FP32", (-1,), b"\0" * 4)],
    [("x", "FP32", (2,), b"\0" * 4)],
    [("x", "FP32", (1,), b"\0" * 5)],
    [("x", "BOOL", (1,), b"\2")],
    [("x", "BYTES", (1,), b"\5\0\0\0ab")],
    [("x", "BYTES", (1 << 40,), b"")],
    [("x", "FP32", (1 << 62, 1 << 62), b"")],
    [("x", "FP32", (1,) * 80, b"\0" * 4)],
]


@pytest.mark.parametrize("inputs", BAD_INPUTS)
def test_bad_requests_fail_as_on_the_general_path(inputs):
    with pytest.raises(ServingError):
        V2ProtoCodec("m").decode(raw_request(inputs))
    both(raw_request(inputs))


def test_raw_buffer_count_and_no_inputs_fail_as_on_the_general_path():
    request = raw_request([("x", "FP32", (1,), b"\0" * 4)])
    request.raw_input_contents.append(b"")
    both(request)
    empty = pb.ModelInferRequest(model_name="m", raw_input_contents=[b""])
    both(empty)


# ----------------------------------------------------------------------------- writing


def answers(reply, request, version="1"):
    """The answer bytes of both codecs for one reply to `request`."""
    data = request.SerializeToString()
    fast, general = V2BytesCodec("m", version), V2ProtoCodec("m", version)
    fast.decode(read_request(data) or pb.ModelInferRequest.FromString(data))
    general.decode(pb.ModelInferRequest.FromString(data))
    return fast.encode(reply), general.encode(reply).SerializeToString()


@pytest.mark.parametrize("version", ["1", None, ""])
@pytest.mark.parametrize(
    "reply",
    [
        Reply(NDARRAY, np.arange(6, dtype=np.float32).reshape(2, 3), None, {}),
        Reply(NDARRAY, np.float64(2.5), None, {}),
        Reply(NDARRAY, np.zeros((0, 3)), None, {}),
        Reply(NDARRAY, np.arange(4, dtype=">i4"), None, {}),  # not in the wire's byte order
        Reply(NDARRAY, np.arange(12, dtype=np.int64).reshape(3, 4)[:, ::2], None, {}),
        Reply(NDARRAY, [np.ones(2), np.zeros((1, 1), np.uint8)], None, {}),
        Reply(JSON, {"a": np.ones(300, np.float16), "b": np.array(["x", b"y"], object)}, None, {}),
        Reply(STR, "text", None, {}),
        Reply(NDARRAY, np.ones((1, 2)), ["no", "yes"], {}),  # class names: a parameter
        Reply(NDARRAY, np.ones(2), None, {"tags": {"a": 1}}),  # tags: the answer's parameters
        Reply(NDARRAY, np.ones(2), None, {"tags": {"a": "text"}}),
        # a prepackaged server's outputs: text parameters, written by the fast path
        Reply(JSON, RuntimeOutputs({"predict": np.arange(2), "p": np.ones((2, 3))}), None, {}),
        Reply(JSON, RuntimeOutputs({"o": np.ones(2)}, content_type="np"), None, {}),
        Reply(
            JSON,
            RuntimeOutputs(
                {"n": np.ones(2), "s": np.array(["a", "b"], object)}, COLUMNS, content_type="pd"
            ),
            None,
            {"tags": {"a": 1}},
        ),
    ],
)
def test_answers_are_the_general_codecs_bytes(reply, version):
    request = raw_request([("x", "FP32", (1,), b"\0" * 4)], request_id="abc")
    fast, general = answers(reply, request, version)
    assert fast == general


def test_answers_to_typed_requests_and_requested_outputs():
    typed = pb.ModelInferRequest(model_name="m")
    typed.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1)
    reply = Reply(JSON, {"a": np.ones(2, np.float16), "b": np.ones(2, np.float32)}, None, {})
    fast, general = answers(reply, typed)
    # the id is generated on each side: the rest is the same
    assert _without_id(fast) == _without_id(general)
    wanted = raw_request([("x", "FP32", (1,), b"\0" * 4)], request_id="i", outputs=("b",))
    fast, general = answers(reply, wanted)
    assert fast == general
    assert [o.name for o in pb.ModelInferResponse.FromString(fast).outputs] == ["b"]


@pytest.mark.parametrize("content_type", [None, "np"])
def test_tagged_outputs_to_typed_requests_are_the_general_codecs_bytes(content_type):
    typed = typed_request([("x", "FP64", (1,), "fp64_contents", [1.0])], request_id="i")
    outputs = {"predict": np.ones(2), "proba": np.ones((2, 3), np.float32)}
    reply = Reply(JSON, RuntimeOutputs(outputs, content_type=content_type), None, {})
    for _ in range(2):  # made, then kept
        fast, general = answers(reply, typed)
        assert fast == general
    answer = pb.ModelInferResponse.FromString(fast)
    assert [o.parameters["content_type"].string_param for o in answer.outputs] == ["np", "np"]
    assert [list(o.shape) for o in answer.outputs] == [[2, 1], [2, 3]]


def _without_id(answer):
    message = pb.ModelInferResponse.FromString(answer)
    message.ClearField("id")
    return message.SerializeToString()


def test_answer_errors_are_the_general_codecs():
    request = raw_request([("x", "FP32", (1,), b"\0" * 4)], request_id="abc")
    for reply in (
        Reply(NDARRAY, np.array([1, None], dtype=object), None, {}),
        Reply(NDARRAY, np.array([1 + 2j]), None, {}),
        Reply(JSON, {"\ud800": np.ones(1)}, None, {}),
    ):
        results = []
        for codec in (V2BytesCodec("m"), V2ProtoCodec("m")):
            codec.decode(pb.ModelInferRequest.FromString(request.SerializeToString()))
            try:
                results.append(codec.encode(reply))
            except Exception as exc:
                results.append((type(exc), str(exc)))
        fast, general = results
        assert fast == (general if isinstance(general, tuple) else general.SerializeToString())


def test_new_ids_are_version_4_uuids():
    ids = {mapping.new_id() for _ in range(100)}
    assert len(ids) == 100
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


# ----------------------------------------------------------------------------- property

_names = st.text(min_size=0, max_size=5)
_inputs = st.lists(
    st.tuples(
        _names,
        st.sampled_from([d for d, _, _ in DATATYPES] + ["FP33", ""]),
        st.lists(st.integers(-2, 5), max_size=3),
        st.binary(max_size=40),
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inputs=_inputs,
    model=_names,
    request_id=_names,
    outputs=st.lists(_names, max_size=2),
    extra_raw=st.booleans(),
)
def test_any_raw_request_means_the_same_on_both_paths(
    inputs, model, request_id, outputs, extra_raw
):
    request = raw_request(inputs, model=model, request_id=request_id or "", outputs=outputs)
    if extra_raw:
        request.raw_input_contents.append(b"")
    data = request.SerializeToString()
    fast = read_request(data)
    if fast is None:
        assert not request.raw_input_contents
        return
    assert (fast.model_name, fast.id, fast.outputs) == (model, request_id, list(outputs))
    fast_codec, general = V2BytesCodec("m"), V2ProtoCodec("m")
    got = decoded(fast_codec, fast)
    want = decoded(general, pb.ModelInferRequest.FromString(data))
    if not request_id and not isinstance(want, tuple):
        got.meta["puid"] = want.meta["puid"] = ""  # generated on each side
        assert fast_codec.request is not None and general.request is not None
        fast_codec.request.id = general.request.id = "same"
    same_message(got, want)
    if isinstance(want, tuple):
        return
    assert_same_answers(fast_codec, general, Reply(NDARRAY, want.features, None, {}))


def assert_same_answers(fast_codec: Any, general: Any, reply: Reply) -> None:
    """Both codecs answer `reply` with the same bytes, or fail with the same error."""
    results: list[Any] = []
    for codec in (fast_codec, general):
        try:
            answer = codec.encode(reply)
            results.append(answer if isinstance(answer, bytes) else answer.SerializeToString())
        except ServingError as exc:
            results.append((type(exc), str(exc)))
    assert results[0] == results[1]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_are_read_as_protobuf_reads_them_or_left_to_it(data):
    fast = read_request(data)
    if fast is None:
        return
    message = pb.ModelInferRequest.FromString(data)  # bytes the reader takes must parse
    assert (fast.model_name, fast.model_version, fast.id) == (
        message.model_name,
        message.model_version,
        message.id,
    )
    assert [(i.name, i.datatype, i.shape) for i in fast.inputs] == [
        (t.name, t.datatype, list(t.shape)) for t in message.inputs
    ]
    assert fast.outputs == [o.name for o in message.outputs]
    assert [bytes(r) for r in fast.raw] == list(message.raw_input_contents)
    assert not message.parameters


@pytest.mark.parametrize(("datatype", "dtype", "values"), DATATYPES)
def test_a_head_sent_again_is_checked_as_the_first_time(datatype, dtype, values, monkeypatch):
    # An empty cache: it admits no new head once full, and the tests run before this
    # one in the same process (hypothesis sends many heads) may have filled it.
    monkeypatch.setattr(proto_fast, "_HEAD_CACHE", {})
    good = raw_bytes(datatype, dtype, values)
    for raw in (good, good, good[:-1], good + b"\2", b"\2" * len(good), good):
        request = raw_request([("again", datatype, (2, 2), raw)])
        both(request)  # the first request reads the head, the others find it kept
        head = fast_request(request.SerializeToString()).inputs[0]
        assert head is fast_request(request.SerializeToString()).inputs[0]
    assert head.checked is not None


# ----------------------------------------------------------------------------- typed contents

TYPED_FIELDS = {"FP32": "fp32_contents", "FP64": "fp64_contents"}


def typed_request(inputs, *, request_id="r0", outputs=()):
    """A ModelInferRequest with typed contents: inputs are (name, datatype, shape, field,
    values)."""
    request = pb.ModelInferRequest(model_name="m", id=request_id)
    for name, datatype, shape, field, values in inputs:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(shape))
        getattr(tensor.contents, field).extend(values)
    for name in outputs:
        request.outputs.add(name=name)
    return request


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_float_contents_read_and_write_as_the_general_codec(datatype):
    values = [0.5, -2.25, float("inf"), 1e-3, 0.0, -0.0]
    request = typed_request([("x", datatype, (2, 3), TYPED_FIELDS[datatype], values)])
    fast = read_request(request.SerializeToString())
    assert fast is not None and fast.typed is not None and not fast.raw
    fast_codec, _ = both(request)
    x = fast_codec.decode(fast).features
    x[0, 0] = 7  # the user may write to it, as to the general path's array
    for reply in (
        Reply(NDARRAY, np.arange(6, dtype=np.float32).reshape(2, 3), None, {}),
        Reply(NDARRAY, np.array([1e300, -1.5]), None, {}),
        Reply(JSON, {"a": np.ones((1, 2), np.float32), "b": np.zeros(3)}, None, {}),
        Reply(NDARRAY, np.arange(3, dtype=">f8"), None, {}),
        Reply(NDARRAY, np.zeros((0, 2), np.float32), None, {}),  # empty: the general path
        Reply(NDARRAY, np.arange(3), None, {}),  # INT64: the general path
        Reply(JSON, {"a": np.ones(2, np.float16)}, None, {}),  # FP16: raw
        Reply(NDARRAY, np.ones(2), None, {"tags": {"t": 1}}),
    ):
        fast_answer, general_answer = answers(reply, request)
        assert fast_answer == general_answer


@pytest.mark.parametrize(
    "inputs",
    [
        [("x", "FP32", (2,), "fp64_contents", [1.0, 2.0])],  # the other type's field
        [("x", "FP64", (2,), "fp32_contents", [1.0, 2.0])],
        [("x", "INT64", (2,), "int64_contents", [1, 2])],  # not a float: general
        [("x", "BYTES", (1,), "bytes_contents", [b"a"])],
        [("x", "FP32", (0,), "fp32_contents", [])],  # no values: an empty contents
        [("x", "FP32", (1,), "fp32_contents", [1.0]), ("y", "FP32", (1,), "fp32_contents", [])],
    ],
)
def test_other_typed_contents_take_the_general_path(inputs):
    request = typed_request(inputs)
    assert read_request(request.SerializeToString()) is None
    request.inputs[0].contents.int_contents.append(1)  # two fields: general too
    assert read_request(request.SerializeToString()) is None


@pytest.mark.parametrize(
    "inputs",
    [
        [("", "FP32", (1,), "fp32_contents", [1.0])],
        [("x", "FP32", (1,), "fp32_contents", [1.0]), ("x", "FP32", (1,), "fp32_contents", [2])],
        [("x", "FP32", (3,), "fp32_contents", [1.0])],
        [("x", "FP64", (-1,), "fp64_contents", [1.0])],
        [("x", "FP32", (1 << 40,), "fp32_contents", [1.0])],
        [("x", "FP32", (1,) * 80, "fp32_contents", [1.0])],
    ],
)
def test_bad_typed_requests_fail_as_on_the_general_path(inputs):
    request = typed_request(inputs)
    assert read_request(request.SerializeToString()) is not None
    with pytest.raises(ServingError):
        V2ProtoCodec("m").decode(request)
    both(request)


def test_typed_and_raw_contents_together_take_the_general_path():
    request = typed_request([("x", "FP32", (1,), "fp32_contents", [1.0])])
    request.raw_input_contents.append(b"\0" * 4)
    assert read_request(request.SerializeToString()) is None


_floats = st.lists(st.floats(width=32, allow_nan=False), max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    inputs=st.lists(
        st.tuples(
            st.sampled_from(["a", "b", ""]),
            st.sampled_from(["FP32", "FP64"]),
            st.lists(st.integers(-1, 4), max_size=3),
            _floats,
        ),
        min_size=1,
        max_size=3,
    ),
    outputs=st.lists(st.sampled_from(["a", "output-0", "zz"]), max_size=2),
)
def test_any_typed_request_means_the_same_on_both_paths(inputs, outputs):
    request = typed_request(
        [(n, d, s, TYPED_FIELDS[d], v) for n, d, s, v in inputs], outputs=outputs
    )
    data = request.SerializeToString()
    fast = read_request(data)
    if fast is None:
        assert any(not v for *_, v in inputs)  # an input without values
        return
    fast_codec, general = V2BytesCodec("m"), V2ProtoCodec("m")
    want = decoded(general, pb.ModelInferRequest.FromString(data))
    same_message(decoded(fast_codec, fast), want)
    if isinstance(want, tuple):
        return
    assert_same_answers(fast_codec, general, Reply(NDARRAY, want.features, None, {}))
