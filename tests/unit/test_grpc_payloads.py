"""The Seldon protocol over gRPC, in-process: the RPC handlers with the proto codecs.
On this path every number is a double."""

from __future__ import annotations

import base64

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from unitserve.proto import Any as AnyMessage
from unitserve.proto import prediction_pb2 as pb
from unitserve.proto import tensor_pb2

from .engine_harness import RpcError

ONE = {"data": {"ndarray": [[1]]}}


@pytest.mark.parametrize("rpc", ["Model/Predict", "Seldon/Predict"])
def test_predict_ndarray_numbers_become_doubles(model, rpc):
    out = model("Identity").call_json(rpc, {"data": {"ndarray": [[1, 2]]}})
    assert out == {"data": {"names": ["t:0", "t:1"], "ndarray": [[1.0, 2.0]]}, "meta": {}}


def test_predict_tensor_and_large_tensor_exact(model):
    target = model("Identity")
    out = target.call_json(
        "Model/Predict", {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}
    )
    assert out["data"] == {
        "names": ["t:0", "t:1"],
        "tensor": {"shape": [2, 2], "values": [1.0, 2.0, 3.0, 4.0]},
    }
    arr = np.random.default_rng(0).standard_normal((300, 200))
    msg = pb.SeldonMessage()
    msg.data.tensor.shape.extend(arr.shape)
    msg.data.tensor.values.extend(arr.ravel())
    back = target.call("Model/Predict", msg).data.tensor
    assert list(back.shape) == [300, 200]
    assert np.array_equal(np.array(back.values).reshape(300, 200), arr)


def test_large_ndarray_round_trip(model):
    arr = np.random.default_rng(1).standard_normal((100, 100))
    out = model("Identity").call("Model/Predict", {"data": {"ndarray": arr.tolist()}})
    got = np.array(json_format.MessageToDict(out.data.ndarray))
    assert np.array_equal(got, arr)


@pytest.mark.parametrize(
    ("ndarray", "dtype"),
    [
        ([[1, 2]], "float64"),
        ([[True, False]], "bool"),
        ([["a", "b"]], "<U1"),
        ([1.5, 2.5], "float64"),
        ([[[1], [2]]], "float64"),
    ],
)
def test_ndarray_reaches_model(model, ndarray, dtype):
    out = model("Inspector").call_json("Model/Predict", {"data": {"ndarray": ndarray}})
    assert out["jsonData"]["X"]["dtype"] == dtype
    assert out["jsonData"]["meta"] == {}


@pytest.mark.parametrize(
    ("dtype", "field", "values", "np_dtype"),
    [
        ("DT_FLOAT", "floatVal", [1.5, 2.5], "float32"),
        ("DT_DOUBLE", "doubleVal", [1.5, 2.5], "float64"),
        ("DT_INT32", "intVal", [1, -2], "int32"),
        ("DT_UINT8", "intVal", [1, 255], "uint8"),
        ("DT_INT16", "intVal", [1, -2], "int16"),
        ("DT_INT8", "intVal", [1, -2], "int8"),
        ("DT_UINT16", "intVal", [1, 65535], "uint16"),
        ("DT_INT64", "int64Val", ["1", "-9000000000"], "int64"),
        ("DT_UINT32", "uint32Val", [1, 4000000000], "uint32"),
        ("DT_UINT64", "uint64Val", ["1", "18000000000000000000"], "uint64"),
        ("DT_BOOL", "boolVal", [True, False], "bool"),
        ("DT_HALF", "halfVal", [15360, 16384], "float16"),
        (
            "DT_STRING",
            "stringVal",
            [base64.b64encode(b"a").decode(), base64.b64encode(b"bc").decode()],
            "object",
        ),
    ],
)
def test_tftensor_every_dtype(model, dtype, field, values, np_dtype):
    request = {
        "data": {
            "tftensor": {"dtype": dtype, "tensorShape": {"dim": [{"size": "2"}]}, field: values}
        }
    }
    out = model("Inspector").call_json("Model/Predict", request)
    assert out["jsonData"]["X"]["dtype"] == np_dtype
    answer = model("Identity").call("Model/Predict", request)
    if np_dtype in ("bool", "object"):  # non-numeric results always answer as ndarray
        assert answer.data.WhichOneof("data_oneof") == "ndarray"
        return
    back = answer.data.tftensor
    from unitserve.protocol.seldon import tftensor

    expected = tftensor.to_array(
        json_format.ParseDict(request["data"]["tftensor"], tensor_pb2.TensorProto())
    )
    assert tftensor.to_array(back).tolist() == expected.tolist()
    assert (
        back.dtype
        == json_format.ParseDict(request["data"]["tftensor"], tensor_pb2.TensorProto()).dtype
    )


def test_tftensor_content_and_fill(model):
    target = model("Inspector")
    content = np.array([[1, 2], [3, 4]], dtype="<i4").tobytes()
    request = {
        "data": {
            "tftensor": {
                "dtype": "DT_INT32",
                "tensorShape": {"dim": [{"size": "2"}, {"size": "2"}]},
                "tensorContent": base64.b64encode(content).decode(),
            }
        }
    }
    assert target.call_json("Model/Predict", request)["jsonData"]["X"]["value"] == [[1, 2], [3, 4]]
    fill = {
        "data": {
            "tftensor": {
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "3"}]},
                "floatVal": [7],
            }
        }
    }
    assert target.call_json("Model/Predict", fill)["jsonData"]["X"]["value"] == [7.0, 7.0, 7.0]


def test_tftensor_over_rest(model):
    request = {
        "data": {
            "tftensor": {
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]},
                "floatVal": [1.0, 2.0],
            }
        }
    }
    r = model("Identity").post("/predict", json=request)
    assert r.status_code == 200
    out = r.json()["data"]
    assert out["names"] == ["t:0", "t:1"] and out["tftensor"]["dtype"] == "DT_FLOAT"
    from unitserve.protocol.seldon import tftensor

    arr = tftensor.from_json(out["tftensor"])
    assert arr.dtype == np.float32 and arr.tolist() == [[1.0, 2.0]]


def test_str_bin_json_custom_payloads(model):
    target = model("Identity")
    assert target.call_json("Model/Predict", {"strData": "hé"}) == {"strData": "hé", "meta": {}}
    assert target.call_json("Model/Predict", {"binData": "AAH/"}) == {
        "binData": "AAH/",
        "meta": {},
    }
    assert target.call_json("Model/Predict", {"jsonData": {"n": 1, "s": "x"}}) == {
        "jsonData": {"n": 1.0, "s": "x"},
        "meta": {},
    }
    msg = pb.SeldonMessage()
    packed = AnyMessage()
    packed.type_url = "type.example/x"
    packed.value = b"\x01\x02"
    msg.customData.CopyFrom(packed)
    out = target.call("Model/Predict", msg)
    assert out.customData.type_url == "type.example/x" and out.customData.value == b"\x01\x02"
    inspected = model("Inspector").call_json("Model/Predict", msg)
    assert inspected["jsonData"]["X"] == {"type": "Any", "type_url": "type.example/x"}


def test_meta_on_the_proto_path(model):
    request = {"meta": {"puid": "g1", "tags": {"n": 1, "s": "x"}, "routing": {"r": 2}}, **ONE}
    out = model("Inspector").call_json("Model/Predict", request)
    assert out["jsonData"]["meta"] == {
        "puid": "g1",
        "tags": {"n": 1.0, "s": "x"},
        "routing": {"r": 2.0},
    }
    assert out["meta"] == {"puid": "g1", "tags": {"n": 1.0, "s": "x"}}


def test_transformers_router_combiner_feedback_services(model):
    t = model("Transformer")
    for rpc in ("Generic/TransformInput", "Transformer/TransformInput"):
        assert t.call_json(rpc, {"data": {"ndarray": [[1, 2]]}})["data"]["ndarray"] == [[2.0, 3.0]]
    for rpc in ("Generic/TransformOutput", "OutputTransformer/TransformOutput"):
        assert t.call_json(rpc, {"data": {"ndarray": [[1, 2]]}})["data"]["ndarray"] == [[2.0, 4.0]]
    r = model("Router")
    for rpc in ("Generic/Route", "Router/Route"):
        out = r.call_json(rpc, {"data": {"tensor": {"shape": [3], "values": [1, 2, 3]}}})
        assert out["data"] == {"names": ["t:0"], "tensor": {"shape": [1, 1], "values": [1.0]}}
    feedback = {"request": ONE, "response": {"meta": {"routing": {"0": 1}}}, "reward": 1}
    for rpc in (
        "Router/SendFeedback",
        "Generic/SendFeedback",
        "Model/SendFeedback",
        "Seldon/SendFeedback",
    ):
        assert r.call_json(rpc, feedback)["strData"] == "routing=1 reward=1.0"
    c = model("Combiner")
    msgs = {"seldonMessages": [{"data": {"ndarray": [[1, 2]]}}, {"data": {"ndarray": [[3, 4]]}}]}
    for rpc in ("Combiner/Aggregate", "Generic/Aggregate"):
        assert c.call_json(rpc, msgs)["data"]["ndarray"] == [[2.0, 3.0]]


def test_raw_methods_get_and_return_protobuf(model):
    target = model("Raw")
    out = target.call_json("Model/Predict", {"data": {"ndarray": [[1, 2]]}})
    assert out["data"] == {"names": ["double"], "ndarray": [[2.0, 4.0]]}
    out = target.call_json("Model/SendFeedback", {"request": ONE, "reward": 0.75})
    assert out["jsonData"] == {"type": "Feedback", "reward": 0.75}
    out = target.call_json("Combiner/Aggregate", {"seldonMessages": [ONE, ONE, ONE]})
    assert out["jsonData"] == {"count": 3.0}


@pytest.mark.parametrize(
    ("request_json", "needle"),
    [
        ({"data": {"tensor": {"shape": [2, 2], "values": [1]}}}, "has 1 values but shape [2, 2]"),
        ({"data": {"tensor": {"shape": [2], "values": [1, 2, 3]}}}, "has 3 values"),
        ({"data": {"tensor": {"values": [1, 2]}}}, "no shape"),
        ({}, "Unknown data in SeldonMessage"),
        ({"data": {"tftensor": {"dtype": "DT_VARIANT"}}}, "dtype 21 is not supported"),
        ({"data": {"ndarray": [[1, 2], [3]]}}, "not a rectangular array"),
    ],
)
def test_bad_input_is_invalid_argument(model, request_json, needle):
    with pytest.raises(RpcError) as err:
        model("Identity").call("Model/Predict", request_json)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details


def test_malformed_bytes(model):
    with pytest.raises(RpcError) as err:
        model("Identity").call_bytes("Model/Predict", b"\xff\xff\xff")
    assert err.value.code == grpc.StatusCode.INTERNAL


def test_error_codes(model):
    target = model("Failing")
    cases = [
        (
            {"data": {"names": ["seldon"], "ndarray": [1]}},
            grpc.StatusCode.PERMISSION_DENIED,
            "not for you",
        ),
        (
            {"data": {"names": ["default"], "ndarray": [1]}},
            grpc.StatusCode.INVALID_ARGUMENT,
            "bad input, says the model",
        ),
        (ONE, grpc.StatusCode.INTERNAL, "predict failed on purpose"),
    ]
    for request, code, details in cases:
        with pytest.raises(RpcError) as err:
            target.call("Model/Predict", request)
        assert (err.value.code, err.value.details) == (code, details)
    with pytest.raises(RpcError) as err:
        model("Identity").call("Router/Route", ONE)
    assert (err.value.code, err.value.details) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Route not defined",
    )
    with pytest.raises(RpcError) as err:
        model("Returns").call(
            "Model/Predict",
            {"data": {"names": ["int"], "ndarray": [1]}},
        )
    assert err.value.code == grpc.StatusCode.INTERNAL
