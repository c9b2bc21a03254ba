"""The byte-level gRPC codec means exactly what the protobuf-object codec means."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import numpy as np
import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from unitserve.errors import BadRequest, MalformedMessage
from unitserve.message import NDARRAY, TENSOR, Reply
from unitserve.proto import ListValue
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.seldon import proto_arrays, proto_codec, proto_fast

floats = st.floats(allow_nan=False, width=64)
shapes = st.sampled_from(
    [(4,), (1, 4), (3, 2), (100,), (70, 3), (2, 3, 4), (0,), (2, 0), (1, 1), (300,), (40, 8)]
)
# Long enough that every message below is over the size from which `decode` reads
# field by field: smaller ones go straight to the protobuf classes, and comparing that
# with `proto_codec` would compare the general decoder with itself.
PAD = "p" * proto_fast._SMALL_BYTES


def same(a, b) -> None:
    assert (a.kind, list(a.names), a.meta) == (b.kind, list(b.names), b.meta)
    if isinstance(a.features, np.ndarray):
        assert a.features.dtype == b.features.dtype and a.features.shape == b.features.shape
        assert np.array_equal(a.features, b.features, equal_nan=a.features.dtype.kind == "f")
    else:
        assert a.features == b.features


@dataclass
class Paths:
    """What `proto_fast.decode` did with one message."""

    general: int = 0  # calls of the general path (parse it all with protobuf)
    numbers: list[bool] = field(default_factory=list)  # ndarray read by numpy, per call
    tensor: list[bool] = field(default_factory=list)  # tensor read by numpy, per call


@contextlib.contextmanager
def watch() -> Iterator[Paths]:
    """Record which paths `proto_fast.decode` takes (the real functions still run)."""
    paths = Paths()
    general, numbers, tensor = (
        proto_fast._decode_general,
        proto_arrays.listvalue_numbers,
        proto_arrays.tensor_values,
    )

    def spy_general(data: bytes) -> object:
        paths.general += 1
        return general(data)

    def spy_numbers(chunk: memoryview) -> object:
        result = numbers(chunk)
        paths.numbers.append(result is not None)
        return result

    def spy_tensor(chunk: memoryview) -> object:
        result = tensor(chunk)
        paths.tensor.append(result is not None)
        return result

    with (
        mock.patch.object(proto_fast, "_decode_general", spy_general),
        mock.patch.object(proto_arrays, "listvalue_numbers", spy_numbers),
        mock.patch.object(proto_arrays, "tensor_values", spy_tensor),
    ):
        yield paths


def padded(message: pb.SeldonMessage) -> pb.SeldonMessage:
    """`message` with a long tag in its meta, so that it is read field by field."""
    message.meta.tags["pad"].string_value = PAD
    return message


def outcome(decode, data: bytes):
    """(Message, None), or (None, the BadRequest text) if the message is refused."""
    try:
        return decode(data), None
    except BadRequest as exc:
        return None, exc.message


def both(message: pb.SeldonMessage) -> tuple[Any, Paths]:
    """Decode `message` both ways, check they agree (the same Message, or the same
    refusal), and check that the fast path did the work without falling back."""
    data = message.SerializeToString()
    assert len(data) > proto_fast._SMALL_BYTES, "too small to reach the fast path"
    general, general_error = outcome(
        lambda d: proto_codec.decode_message(pb.SeldonMessage.FromString(d)), data
    )
    with watch() as paths:
        fast, fast_error = outcome(proto_fast.decode, data)
    assert paths.general == 0, "the fast path fell back to the general one"
    assert fast_error == general_error
    if general_error is None:
        same(fast, general)
    return fast, paths


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    shapes.flatmap(lambda s: hnp.arrays(np.float64, s, elements=floats)),
    st.lists(st.text(max_size=5), max_size=3),
    st.booleans(),
)
def test_numeric_ndarray_and_tensor(arr, names, with_meta):
    message = pb.SeldonMessage()
    message.data.names.extend(names)
    # The padding goes into the names when the test is about a message without meta.
    message.data.names.append(PAD)
    if with_meta:
        json_format.ParseDict({"puid": "p", "tags": {"a": 1}}, message.meta)
    if arr.size or arr.ndim == 1:
        json_format.ParseDict(arr.tolist(), message.data.ndarray)
        decoded, paths = both(message)
        assert decoded.kind == NDARRAY
        # Numbers over the threshold are read by numpy, not through ListValue objects.
        assert all(paths.numbers), "a numeric ndarray was parsed into protobuf objects"
        assert bool(paths.numbers) == (len(message.data.ndarray.SerializeToString()) > len(PAD))
    tensor = pb.SeldonMessage()
    tensor.CopyFrom(message)
    tensor.data.tensor.shape.extend(arr.shape)
    tensor.data.tensor.values.extend(arr.ravel().tolist())
    decoded, paths = both(tensor)
    assert decoded.kind == TENSOR
    assert paths.tensor == [True], "a packed tensor was parsed into protobuf objects"


def test_large_ndarray_is_read_by_numpy():
    arr = np.arange(600, dtype=np.float64).reshape(200, 3) / 7
    message = pb.SeldonMessage()
    json_format.ParseDict(arr.tolist(), message.data.ndarray)
    decoded, paths = both(message)
    assert paths.numbers == [True]
    assert np.array_equal(decoded.features, arr)


@pytest.mark.parametrize(
    "doc",
    [
        {"data": {"ndarray": [["a", 1], ["b", 2]]}},
        {"data": {"ndarray": [[True, False]]}},
        {"data": {"ndarray": [[1, 2], [3]]}},
        {"data": {"ndarray": [1, None]}},
        {"data": {"ndarray": [[1, 2], [3]] * 100}},  # ragged, above the numpy threshold
        {"data": {"ndarray": [["a", 1], ["b", 2]] * 100}},
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
    both(padded(json_format.ParseDict(doc, pb.SeldonMessage())))


@pytest.mark.parametrize("doc", [{}, {"meta": {"puid": "x"}}])
@pytest.mark.parametrize("pad", [False, True], ids=["small", "large"])
def test_no_payload_is_a_bad_request_both_ways(doc, pad):
    message = json_format.ParseDict(doc, pb.SeldonMessage())
    data = (padded(message) if pad else message).SerializeToString()
    assert (len(data) > proto_fast._SMALL_BYTES) == pad
    with watch() as paths, pytest.raises(BadRequest, match="Unknown data in SeldonMessage"):
        proto_fast.decode(data)
    assert paths.general == (0 if pad else 1)


def test_unknown_fields_are_skipped_on_the_fast_path():
    message = padded(json_format.ParseDict({"strData": "s"}, pb.SeldonMessage()))
    data = message.SerializeToString() + b"\xa0\x06\x01"  # + unknown field 100
    with watch() as paths:
        fast = proto_fast.decode(data)
    assert paths.general == 0
    same(fast, proto_codec.decode_message(pb.SeldonMessage.FromString(data)))


def test_repeated_fields_follow_protobuf_through_the_general_path():
    # Protobuf keeps the last of two payloads in a oneof and merges a repeated meta;
    # the fast path leaves such a message to the general one rather than guess.
    first = padded(json_format.ParseDict({"strData": "first"}, pb.SeldonMessage()))
    second = json_format.ParseDict(
        {"meta": {"puid": "x"}, "data": {"ndarray": [1]}}, pb.SeldonMessage()
    )
    data = first.SerializeToString() + second.SerializeToString()
    with watch() as paths:
        fast = proto_fast.decode(data)
    assert paths.general == 1
    same(fast, proto_codec.decode_message(pb.SeldonMessage.FromString(data)))
    assert fast.kind == NDARRAY and fast.meta is not None and fast.meta["puid"] == "x"


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
    assert back is not None
    assert np.array_equal(back, arr, equal_nan=True) and np.signbit(back[1, 1])
