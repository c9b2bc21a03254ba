"""Open Inference Protocol JSON inference bodies ⇄ Message / Reply (no binary data)."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from unitserve.errors import BadModelOutput, BadRequest
from unitserve.message import NDARRAY, Reply
from unitserve.protocol import jsonio
from unitserve.protocol.v2 import binary
from unitserve.protocol.v2.json_codec import V2JsonCodec
from unitserve.protocol.v2.mapping import Unsupported

# datatype, JSON values, numpy dtype
NUMERIC = [
    ("BOOL", [True, False, True, True], np.bool_),
    ("UINT8", [0, 1, 254, 255], np.uint8),
    ("UINT16", [0, 1, 2, 65535], np.uint16),
    ("UINT32", [0, 1, 2, 4294967295], np.uint32),
    ("UINT64", [0, 1, 2, 18446744073709551615], np.uint64),
    ("INT8", [-128, 0, 1, 127], np.int8),
    ("INT16", [-32768, 0, 1, 32767], np.int16),
    ("INT32", [-2147483648, 0, 1, 2147483647], np.int32),
    ("INT64", [-9223372036854775808, 0, 1, 9223372036854775807], np.int64),
    ("FP16", [0.5, -1.0, 2.0, 1024.0], np.float16),
    ("FP32", [0.5, -1.0, 2.25, 3.0], np.float32),
    ("FP64", [0.1, -1.0, 2.25, 1e300], np.float64),
]


OK = {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}


def request(*inputs, **extra):
    return {"inputs": list(inputs), **extra}


def tensor(name="x", shape=(4,), datatype="FP32", data=None, **params):
    out = {"name": name, "shape": list(shape), "datatype": datatype, "data": data}
    if params:
        out["parameters"] = params
    return out


def decode(req):
    codec = V2JsonCodec("model")
    return codec, codec.decode(req)


def answer(codec, value, names=None, meta=None):
    body = codec.encode(Reply(NDARRAY, value, names, meta or {}))
    assert isinstance(body, bytes)
    return orjson.loads(body)


@pytest.mark.parametrize(("datatype", "values", "dtype"), NUMERIC)
def test_every_numeric_datatype_flat_and_nested(datatype, values, dtype):
    for data in (values, [values[:2], values[2:]]):
        codec, msg = decode(request(tensor(shape=[2, 2], datatype=datatype, data=data)))
        x = msg.features
        assert x.dtype == np.dtype(dtype)
        assert x.shape == (2, 2)
        assert x.ravel().tolist() == [dtype(v).item() for v in values]
        out = answer(codec, x)["outputs"]
        assert out == [{"name": "output-0", "datatype": datatype, "shape": [2, 2], "data": values}]


def test_fp_accepts_integers_and_doubles_round_to_float():
    _, msg = decode(request(tensor(datatype="FP32", data=[1, 2, 0.1, 3.4e38])))
    assert msg.features.dtype == np.float32
    assert msg.features[2] == np.float32(0.1)
    assert math.isfinite(msg.features[3])  # near FP32's largest: rounded, still finite


def test_bytes_as_bytes_and_as_str():
    _, msg = decode(request(tensor(shape=[2], datatype="BYTES", data=["héllo", "a\x00"])))
    assert msg.features.dtype == object
    assert msg.features.tolist() == ["héllo".encode(), b"a\x00"]
    codec, msg = decode(
        request(tensor(shape=[1, 2], datatype="BYTES", data=[["x", "y"]], content_type="str"))
    )
    assert msg.features.shape == (1, 2)
    assert msg.features.tolist() == [["x", "y"]]
    out = answer(codec, msg.features)["outputs"][0]
    assert out == {"name": "output-0", "datatype": "BYTES", "shape": [1, 2], "data": ["x", "y"]}


def test_bytes_output_from_bytes_str_and_numpy_text():
    codec, _ = decode(request(tensor(data=[1, 2, 3, 4])))
    for value in (
        np.array([b"a", "b"], dtype=object),
        np.array(["a", "b"]),
        np.array([b"a", b"b"]),
    ):
        out = answer(codec, value)["outputs"][0]
        assert (out["datatype"], out["data"]) == ("BYTES", ["a", "b"])


def test_bytes_output_that_is_not_text_asks_for_binary():
    codec, _ = decode(request(tensor(data=[1, 2, 3, 4])))
    with pytest.raises(BadModelOutput, match=r"not UTF-8.*binary_data"):
        codec.encode(Reply(NDARRAY, np.array([b"\xff"], dtype=object), None, {}))
    with pytest.raises(BadModelOutput, match="element 1 is a int"):
        codec.encode(Reply(NDARRAY, np.array(["a", 1], dtype=object), None, {}))


def test_non_finite_floats_stay_valid_json():
    codec, _ = decode(request(tensor(data=[1, 2, 3, 4])))
    out = answer(codec, np.array([np.nan, np.inf, -np.inf, 1.0], dtype=np.float32))
    assert out["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity", 1.0]


def test_empty_tensor():
    codec, msg = decode(request(tensor(shape=[0, 3], datatype="INT32", data=[])))
    assert msg.features.shape == (0, 3) and msg.features.dtype == np.int32
    assert answer(codec, msg.features)["outputs"][0]["shape"] == [0, 3]


def test_id_is_echoed_or_generated_and_version_sent_when_set():
    codec = V2JsonCodec("m", "3")
    msg = codec.decode(request(OK, id="req-1"))
    assert msg.meta is not None and msg.meta["puid"] == "req-1"
    encoded = codec.encode(Reply(NDARRAY, msg.features, None, msg.meta))
    assert isinstance(encoded, bytes)
    out = orjson.loads(encoded)
    assert (out["id"], out["model_name"], out["model_version"]) == ("req-1", "m", "3")
    codec, msg = decode(request(tensor(data=[1, 2, 3, 4])))
    generated = answer(codec, msg.features)
    assert generated["id"] == msg.meta["puid"] and len(generated["id"]) == 36
    assert "model_version" not in generated and "parameters" not in generated


def test_requested_outputs_filter_and_order():
    codec, _ = decode(request(OK, outputs=[{"name": "b"}, {"name": "a"}]))
    body = codec.encode(Reply("jsonData", {"a": np.ones(1), "b": "t", "c": [1]}, None, {}))
    assert [o["name"] for o in orjson.loads(body)["outputs"]] == ["b", "a"]


def test_unknown_requested_output_is_a_bad_request():
    codec, _ = decode(request(OK, outputs=[{"name": "nope"}]))
    with pytest.raises(BadRequest, match=r"requested output 'nope' is not among.*'output-0'"):
        codec.encode(Reply(NDARRAY, np.ones(2), None, {}))


def test_answer_parameters_are_the_merged_tags():
    codec, msg = decode(request(OK, parameters={"a": 1}))
    assert msg.meta == {"puid": msg.meta["puid"], "tags": {"a": 1}, "outputs": []}
    out = answer(codec, np.ones(1), meta={"puid": "p", "tags": {"a": 1, "b": "x"}})
    assert out["parameters"] == {"a": 1, "b": "x"}


def test_body_through_the_json_reader():
    body = orjson.dumps(request(tensor(data=[1, 2, 3, 4])))
    _, msg = decode(binary.read_body(body, None))
    assert msg.features.tolist() == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- bad requests


def bad(req, *patterns):
    with pytest.raises(BadRequest) as caught:
        decode(req)
    message = caught.value.message
    assert message[0].isalpha() and len(message.split()) >= 4
    for pattern in patterns:
        assert pattern in message, message
    return message


@pytest.mark.parametrize(
    ("datatype", "data", "says"),
    [
        ("INT32", [1, 2, 3, 4.5], "needs integers; got floating-point numbers"),
        ("INT32", [1, 2, 3, "4"], "needs integers; got strings"),
        ("INT32", [1, 2, 3, None], "mixed or unknown types"),
        ("BOOL", [1, 0, 1, 0], "needs true or false; got integers"),
        ("FP32", [True, False, True, False], "needs numbers; got true/false"),
        ("FP32", ["1", "2", "3", "4"], "needs numbers; got strings"),
        ("UINT8", [0, 1, 2, 256], "value 256 is out of range for datatype UINT8 (0 to 255)"),
        ("INT8", [-129, 0, 1, 2], "value -129 is out of range for datatype INT8"),
        ("UINT32", [-1, 0, 1, 2], "value -1 is out of range"),
        ("BYTES", ["a", "b", 3, "d"], "element 2 is a number, not a string"),
        ("UINT64", [-1, 18446744073709551615, 0, 1], "-1 is out of range for datatype UINT64"),
        ("UINT64", [0.5, 18446744073709551615, 0, 1], "needs integers; got floating-point"),
    ],
)
def test_wrong_values_for_the_datatype(datatype, data, says):
    bad(request(tensor(datatype=datatype, data=data)), "input 'x'", says)


def test_wrong_datatype_name():
    bad(request(tensor(datatype="FLOAT", data=[1, 2, 3, 4])), "datatype 'FLOAT'", "FP32")
    bad(request(tensor(datatype="BF16", data=[1, 2, 3, 4])), "BF16")


@pytest.mark.parametrize(
    ("shape", "data", "says"),
    [
        ([3], [1, 2, 3, 4], "has 4 values but shape [3] needs 3"),
        ([2, 3], [[1, 2], [3, 4]], "has 4 values but shape [2, 3] needs 6"),
        ([4], [[1, 2], [3]], "not rectangular"),
        ([-1], [1, 2, 3, 4], "non-negative integers"),
        ("4", [1, 2, 3, 4], "non-negative integers"),
        ([4], 5, "data must be a list"),
        ([1 << 40, 1 << 40], [1, 2, 3, 4], "at most 1048576 may be implied"),
        ([1] * 100, [1], "more than numpy supports"),
    ],
)
def test_shape_and_data_disagree(shape, data, says):
    bad(request(tensor(shape=shape, data=data)), "input 'x'", says)


def test_bytes_shape_mismatch_and_ragged():
    bad(request(tensor(shape=[3], datatype="BYTES", data=["a", "b"])), "has 2 values")
    bad(request(tensor(shape=[3], datatype="BYTES", data=[["a", "b"], ["c"]])), "not rectangular")


@pytest.mark.parametrize(
    ("req", "says"),
    [
        ([], "must be a JSON object"),
        ({}, "inputs must be a non-empty list"),
        ({"inputs": []}, "inputs must be a non-empty list"),
        ({"inputs": ["x"]}, "inputs[0] must be a JSON object"),
        ({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}, "inputs[0] needs a name"),
        (request(OK, OK), "input 'x' appears more than once"),
        (request({"name": "x", "shape": [1], "datatype": "FP32"}), "has no data"),
        (request(OK, id=5), "id must be a string"),
        (request(OK, parameters=[1]), "parameters must be a JSON object"),
        (request(tensor(data=[1, 2, 3, 4], feature_names="a")), "feature_names must be a list"),
        (request(OK, outputs={"name": "a"}), "outputs must be a list"),
        (request(OK, outputs=[{"n": 1}]), "outputs[0] must be an object"),
        (
            request(OK, outputs=[{"name": "a", "parameters": 1}]),
            "output 'a' parameters must be a JSON object",
        ),
        (
            request(OK, outputs=[{"name": "a", "parameters": {"binary_data": 1}}]),
            "binary_data must be true or false",
        ),
        (
            request(OK, outputs=[{"name": "a", "parameters": {"classification": 2}}]),
            "classification extension is not supported",
        ),
        (
            request(OK, parameters={"binary_data_output": "yes"}),
            "parameters.binary_data_output must be true or false",
        ),
    ],
)
def test_malformed_requests(req, says):
    bad(req, says)


def test_deep_json_is_refused_before_decoding():
    body = b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": '
    body += b"[" * 500 + b"1" + b"]" * 500 + b"}]}"
    with pytest.raises(jsonio.TooDeep, match="nested deeper than"):
        binary.read_body(body, None)


def test_codec_without_a_meaning_for_combiners_and_feedback():
    codec = V2JsonCodec("m")
    with pytest.raises(Unsupported, match="combiner") as caught:
        codec.decode_list({})
    assert caught.value.http_status == 400
    assert caught.value.grpc_code.name == "FAILED_PRECONDITION"
    with pytest.raises(Unsupported, match="feedback"):
        codec.decode_feedback({}, "0")
