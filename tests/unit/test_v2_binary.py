"""The binary tensor data extension: JSON header + raw tensor bytes, both ways."""

from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest

from unitserve.errors import BadRequest
from unitserve.message import NDARRAY, Reply
from unitserve.protocol import jsonio
from unitserve.protocol.v2 import binary
from unitserve.protocol.v2.binary import BinaryAnswer
from unitserve.protocol.v2.json_codec import V2JsonCodec

ARRAYS = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "UINT16": np.arange(6, dtype=np.uint16).reshape(2, 3) * 1000,
    "UINT32": np.arange(6, dtype=np.uint32).reshape(2, 3) * 70000,
    "UINT64": np.array([[0, 1, 2], [3, 4, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.arange(-3, 3, dtype=np.int8).reshape(2, 3),
    "INT16": np.arange(-3, 3, dtype=np.int16).reshape(2, 3) * 1000,
    "INT32": np.arange(-3, 3, dtype=np.int32).reshape(2, 3) * 70000,
    "INT64": np.array([[-(2**63), 0, 1], [2, 3, 2**63 - 1]], dtype=np.int64),
    "FP16": np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3),
    "FP32": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3),
    "FP64": np.linspace(-1, 1, 6, dtype=np.float64).reshape(2, 3),
}


def pack(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def body_of(header: dict, *parts: bytes) -> tuple[bytes, int]:
    head = orjson.dumps(header)
    return head + b"".join(parts), len(head)


def binary_input(name, shape, datatype, size, **params):
    return {
        "name": name,
        "shape": shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size, **params},
    }


def decode(body: bytes, header_length: int | None):
    codec = V2JsonCodec("m")
    return codec, codec.decode(binary.read_body(body, header_length))


def split_answer(answer: BinaryAnswer) -> tuple[dict, bytes]:
    return orjson.loads(answer.header), b"".join(bytes(b) for b in answer.buffers)


@pytest.mark.parametrize("datatype", sorted(ARRAYS))
def test_every_fixed_type_round_trips_without_copies(datatype):
    arr = ARRAYS[datatype]
    data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    header = {
        "inputs": [binary_input("x", [2, 3], datatype, len(data))],
        "parameters": {"binary_data_output": True},
    }
    body, length = body_of(header, data)
    codec, msg = decode(body, length)
    x = msg.features
    assert x.shape == (2, 3) and x.dtype == arr.dtype
    np.testing.assert_array_equal(x, arr)
    # A view of the body: the input was not copied.
    assert np.shares_memory(x, np.frombuffer(body, dtype=np.uint8))

    answer = codec.encode(Reply(NDARRAY, x, None, {}))
    assert isinstance(answer, BinaryAnswer)
    head, tail = split_answer(answer)
    assert head["outputs"] == [
        {
            "name": "output-0",
            "datatype": datatype,
            "shape": [2, 3],
            "parameters": {"binary_data_size": len(data)},
        }
    ]
    assert tail == data
    assert answer.header_length == len(answer.header)
    assert len(answer) == len(answer.header) + len(data)
    # The output buffer is a view of the array the model returned: not copied either.
    assert np.shares_memory(np.frombuffer(answer.buffers[0], dtype=np.uint8), x)


def test_bytes_in_and_out():
    data = pack(b"abc", b"", b"\xff\x00")
    header = {
        "inputs": [binary_input("x", [3], "BYTES", len(data))],
        "outputs": [{"name": "output-0", "parameters": {"binary_data": True}}],
    }
    body, length = body_of(header, data)
    codec, msg = decode(body, length)
    assert msg.features.dtype == object
    assert msg.features.tolist() == [b"abc", b"", b"\xff\x00"]
    head, tail = split_answer(codec.encode(Reply(NDARRAY, msg.features, None, {})))
    assert head["outputs"][0]["parameters"] == {"binary_data_size": len(data)}
    assert head["outputs"][0]["datatype"] == "BYTES"
    assert tail == data


def test_bytes_as_str_and_str_outputs_encoded_as_utf8():
    data = pack("héllo".encode(), b"x")
    header = {
        "inputs": [binary_input("x", [1, 2], "BYTES", len(data), content_type="str")],
        "parameters": {"binary_data_output": True},
    }
    codec, msg = decode(*body_of(header, data))
    assert msg.features.tolist() == [["héllo", "x"]]
    _, tail = split_answer(codec.encode(Reply(NDARRAY, msg.features, None, {})))
    assert tail == data


def test_non_utf8_bytes_requested_as_str():
    data = pack(b"\xff\xfe")
    header = {"inputs": [binary_input("x", [1], "BYTES", len(data), content_type="str")]}
    with pytest.raises(BadRequest, match="content_type 'str' but holds bytes that are not UTF-8"):
        decode(*body_of(header, data))


def test_binary_and_json_inputs_mixed_in_order():
    a = np.arange(4, dtype=np.int32)
    c = np.ones(2, dtype=np.float64)
    header = {
        "inputs": [
            binary_input("a", [4], "INT32", a.nbytes),
            {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["t"]},
            binary_input("c", [2], "FP64", c.nbytes),
        ]
    }
    _, msg = decode(*body_of(header, a.tobytes(), c.tobytes()))
    assert list(msg.features) == ["a", "b", "c"]
    np.testing.assert_array_equal(msg.features["a"], a)
    np.testing.assert_array_equal(msg.features["c"], c)
    assert msg.features["b"].tolist() == [b"t"]


def test_only_the_outputs_asked_for_are_binary():
    header = {
        "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
        "outputs": [
            {"name": "b", "parameters": {"binary_data": True}},
            {"name": "a", "parameters": {"binary_data": False}},
        ],
        "parameters": {"binary_data_output": True},
    }
    codec, _ = decode(orjson.dumps(header), None)
    b = np.arange(3, dtype=np.int64)
    answer = codec.encode(Reply("jsonData", {"a": np.ones(2), "b": b}, None, {}))
    head, tail = split_answer(answer)
    assert [o["name"] for o in head["outputs"]] == ["b", "a"]
    assert head["outputs"][1]["data"] == [1.0, 1.0]
    assert "parameters" not in head["outputs"][1]
    assert tail == b.tobytes()


def test_json_body_with_a_header_length_and_no_binary_part():
    body, length = body_of(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    )
    _, msg = decode(body, length)
    assert msg.features.tolist() == [1.0]


def test_non_contiguous_output_is_copied_once():
    codec, _ = decode(
        *body_of(
            {
                "inputs": [{"name": "x", "shape": [0], "datatype": "FP32", "data": []}],
                "parameters": {"binary_data_output": True},
            }
        )
    )
    arr = np.arange(12, dtype=np.float32).reshape(3, 4).T
    head, tail = split_answer(codec.encode(Reply(NDARRAY, arr, None, {})))
    assert head["outputs"][0]["shape"] == [4, 3]
    assert tail == np.ascontiguousarray(arr).tobytes()


# ----------------------------------------------------------------------------- bad bodies


def bad(body: bytes, length: int | None, *patterns: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode(body, length)
    for pattern in patterns:
        assert pattern in caught.value.message, caught.value.message


FOUR = np.arange(4, dtype=np.float32)


def test_binary_size_overruns_the_body():
    header = {"inputs": [binary_input("x", [4], "FP32", 32)]}
    bad(*body_of(header, FOUR.tobytes()), "declares 32 bytes of binary data but only 16 remain")


def test_truncated_body():
    header = {"inputs": [binary_input("x", [4], "FP32", 16)]}
    body, length = body_of(header, FOUR.tobytes())
    bad(body[:-3], length, "declares 16 bytes", "only 13 remain")


def test_binary_size_without_a_header_length():
    header = {"inputs": [binary_input("x", [4], "FP32", 16)]}
    bad(orjson.dumps(header), None, "only 0 remain", "Inference-Header-Content-Length")


def test_bytes_left_over_after_the_inputs():
    header = {"inputs": [binary_input("x", [4], "FP32", 16)]}
    bad(*body_of(header, FOUR.tobytes(), b"\0"), "1 bytes of binary data that no input claims")


def test_binary_size_disagrees_with_the_shape():
    header = {"inputs": [binary_input("x", [5], "FP32", 16)]}
    bad(*body_of(header, FOUR.tobytes()), "has 4 values but shape [5] needs 5")
    header = {"inputs": [binary_input("x", [4], "FP32", 15)]}
    bad(*body_of(header, FOUR.tobytes()[:15]), "not a whole number of FP32 elements")


def test_huge_shape_with_small_binary_data():
    header = {"inputs": [binary_input("x", [1 << 30, 1 << 30], "FP32", 16)]}
    bad(*body_of(header, FOUR.tobytes()), "at most 1048576 may be implied")
    header = {"inputs": [binary_input("x", [1 << 30, 1 << 30], "BYTES", 4)]}
    bad(*body_of(header, pack(b"")), "at most 1048576 may be implied")


@pytest.mark.parametrize(
    ("length", "says"),
    [
        (10_000, "Inference-Header-Content-Length is 10000 but the body has only"),
        (20, "the first 20 bytes of the body (Inference-Header-Content-Length) are not a JSON"),
        (0, "the first 0 bytes"),
    ],
)
def test_wrong_header_length(length, says):
    header = {"inputs": [binary_input("x", [4], "FP32", 16)]}
    body, _ = body_of(header, FOUR.tobytes())
    bad(body, length, says)


def test_header_length_longer_than_the_json():
    header = {"inputs": [binary_input("x", [4], "FP32", 16)]}
    body, length = body_of(header, FOUR.tobytes())
    bad(body, length + 4, "are not a JSON header")


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1e3", b"", "١٢".encode()])
def test_header_length_that_is_not_a_number(value):
    with pytest.raises(BadRequest, match="Inference-Header-Content-Length must be a number"):
        binary.parse_header_length(value)


def test_header_length_values():
    assert binary.parse_header_length(None) is None
    assert binary.parse_header_length(b" 42 ") == 42
    assert binary.parse_header_length("7") == 7


def test_bool_bytes_other_than_zero_and_one():
    header = {"inputs": [binary_input("x", [2], "BOOL", 2)]}
    bad(*body_of(header, b"\x01\x02"), "BOOL bytes other than 0 and 1")


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (pack(b"ab")[:-1], "element 0 declares 2 bytes but only 1 remain"),
        (pack(b"ab") + b"\x01\x00", "element 1 is cut off inside its 4-byte length prefix"),
        (pack(b"a", b"b"), "has 2 values but shape [3] needs 3"),
    ],
)
def test_malformed_bytes_elements(data, says):
    header = {"inputs": [binary_input("x", [3], "BYTES", len(data))]}
    bad(*body_of(header, data), says)


def test_binary_input_with_data_too_and_bad_sizes():
    both = binary_input("x", [1], "FP32", 4)
    both["data"] = [1.0]
    bad(*body_of({"inputs": [both]}, b"\0" * 4), "has both data and parameters.binary_data_size")
    for size in (-1, "4", True, 1.5):
        header = {"inputs": [binary_input("x", [1], "FP32", size)]}
        bad(*body_of(header, b"\0" * 4), "binary_data_size must be a non-negative integer")


def test_deep_json_header():
    head = b'{"inputs": [{"name": "x", "parameters": ' + b"[" * 300 + b"]" * 300 + b"}]}"
    with pytest.raises(jsonio.TooDeep):
        binary.read_body(head + b"\0\0\0\0", len(head))
