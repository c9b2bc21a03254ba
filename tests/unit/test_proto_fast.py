"""The byte-level gRPC codec means exactly what the protobuf-object codec means."""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from unitserve.errors import BadRequest, MalformedMessage
from unitserve.proto import ListValue
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.message import NDARRAY, TENSOR, Reply
from unitserve.protocol.seldon import proto_arrays, proto_codec, proto_fast

floats = st.floats(allow_nan=False, width=64)
shapes = st.sampled_from([(4,), (1, 4), (3, 2), (100,), (70, 3), (2, 3, 4), (0,), (2, 0), (1, 1)])


def same(a, b) -> None:
    assert (a.kind, list(a.names), a.meta) == (b.kind, list(b.names), b.meta)
    if isinstance(a.features, np.ndarray):
        assert a.features.dtype == b.features.dtype and a.features.shape == b.features.shape
        assert np.array_equal(a.features, b.features, equal_nan=a.features.dtype.kind == "f")
    else:
        assert a.features == b.features


def both(message: pb.SeldonMessage):
    data = message.SerializeToString()
    general = proto_codec.decode_message(pb.SeldonMessage.FromString(data))
    fast = proto_fast.decode(data)
    same(fast, general)
    return fast


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=floats)),
    st.lists(st.text(max_size=5), max_size=3),
    st.booleans(),
)
def test_numeric_ndarray_and_tensor(arr, names, with_meta):
    message = pb.SeldonMessage()
    message.data.names.extend(names)
    if with_meta:
        json_format.ParseDict({"puid": "p", "tags": {"a": 1}}, message.meta)
    if arr.size or arr.ndim == 1:
        json_format.ParseDict(arr.tolist(), message.data.ndarray)
        both(message)
    tensor = pb.SeldonMessage()
    tensor.CopyFrom(message)
    tensor.data.tensor.shape.extend(arr.shape)
    tensor.data.tensor.values.extend(arr.ravel().tolist())
    assert both(tensor).kind == TENSOR


@pytest.mark.parametrize(
    "doc",
    [
        {"data": {"ndarray": [["a", 1], ["b", 2]]}},
        {"data": {"ndarray": [[True, False]]}},
        {"data": {"ndarray": [[1, 2], [3]]}},
        {"data": {"ndarray": [1, None]}},
        {"data": {"names": ["x"]}},
        {"strData": "h\u00e9"},
        {"binData": "AAH/"},
        {"jsonData": {"a": [1, {"b": None}]}},
        {"customData": {"@type": "type.googleapis.com/google.protobuf.Value", "value": 1}},
        {
            "data": {
                "tftensor": {
                    "dtype": "DT_INT32",
                    "tensorShape": {"dim": [{"size": "2"}]},
                    "intVal": [1, 2],
                }
            }
        },
        {"meta": {"routing": {"r": 1}, "requestPath": {"a": "b"}}, "strData": "s"},
    ],
)
def test_other_payloads(doc):
    message = json_format.ParseDict(doc, pb.SeldonMessage())
    try:
        both(message)
    except BadRequest as exc:  # both paths must refuse alike
        with pytest.raises(BadRequest, match=exc.message[:20]):
            proto_codec.decode_message(message)


@pytest.mark.parametrize("doc", [{}, {"meta": {"puid": "x"}}])
def test_no_payload_is_a_bad_request_both_ways(doc):
    data = json_format.ParseDict(doc, pb.SeldonMessage()).SerializeToString()
    with pytest.raises(BadRequest, match="Unknown data in SeldonMessage"):
        proto_fast.decode(data)


def test_repeated_and_unknown_fields_follow_protobuf():
    first = json_format.ParseDict({"strData": "first"}, pb.SeldonMessage()).SerializeToString()
    second = json_format.ParseDict({"data": {"ndarray": [1]}}, pb.SeldonMessage())
    data = first + second.SerializeToString() + b"\xa0\x06\x01"  # + unknown field 100
    same(proto_fast.decode(data), proto_codec.decode_message(pb.SeldonMessage.FromString(data)))


@pytest.mark.parametrize("data", [b"\xff\xff\xff", b"\x1a\x05\x0a", b"\x2a\x02\xff\xfe"])
def test_malformed_bytes(data):
    with pytest.raises(MalformedMessage):
        proto_fast.decode(data)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shapes.flatmap(
        lambda s: hnp.arrays(
            st.sampled_from([np.float64, np.float32, np.int64, np.int32]),
            s,
            elements=st.integers(-1000, 1000),
        )
    ),
    st.sampled_from([NDARRAY, TENSOR]),
)
def test_encode_matches_the_protobuf_objects(arr, kind):
    names = [f"t:{i}" for i in range(arr.shape[1])] if arr.ndim >= 2 else []
    reply = Reply(kind, arr, names, {"puid": "p", "tags": {"k": "v"}})
    fast = pb.SeldonMessage.FromString(proto_fast.encode(reply))
    assert fast == proto_codec.encode_reply(reply)


def test_wire_listvalue_round_trip_nonfinite():
    arr = np.array([[np.nan, np.inf], [-np.inf, -0.0]] * 40)
    encoded = proto_arrays.numbers_listvalue(arr)
    parsed = ListValue.FromString(encoded)
    assert parsed.values[0].list_value.values[1].number_value == float("inf")
    back = proto_arrays.listvalue_numbers(encoded)
    assert np.array_equal(back, arr, equal_nan=True) and np.signbit(back[1, 1])
