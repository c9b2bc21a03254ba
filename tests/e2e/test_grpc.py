"""The Seldon protocol over gRPC, with a real grpc.aio client against the real server."""

from __future__ import annotations

import asyncio
import base64
import json

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from unitserve.proto import Any as AnyMessage
from unitserve.proto import prediction_pb2 as pb
from unitserve.proto import tensor_pb2

from .grpc_client import RpcError, call, call_bytes, call_json

ONE = {"data": {"ndarray": [[1]]}}


@pytest.mark.parametrize("rpc", ["Model/Predict", "Seldon/Predict"])
def test_predict_ndarray_numbers_become_doubles(serve, rpc):
    out = call_json(serve("Identity").grpc_target, rpc, {"data": {"ndarray": [[1, 2]]}})
    assert out == {"data": {"names": ["t:0", "t:1"], "ndarray": [[1.0, 2.0]]}, "meta": {}}


def test_predict_tensor_and_large_tensor_exact(serve):
    target = serve("Identity").grpc_target
    out = call_json(
        target, "Model/Predict", {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}
    )
    assert out["data"] == {
        "names": ["t:0", "t:1"],
        "tensor": {"shape": [2, 2], "values": [1.0, 2.0, 3.0, 4.0]},
    }
    arr = np.random.default_rng(0).standard_normal((300, 200))
    msg = pb.SeldonMessage()
    msg.data.tensor.shape.extend(arr.shape)
    msg.data.tensor.values.extend(arr.ravel())
    back = call(target, "Model/Predict", msg).data.tensor
    assert list(back.shape) == [300, 200]
    assert np.array_equal(np.array(back.values).reshape(300, 200), arr)


def test_large_ndarray_round_trip(serve):
    arr = np.random.default_rng(1).standard_normal((100, 100))
    out = call(serve("Identity").grpc_target, "Model/Predict", {"data": {"ndarray": arr.tolist()}})
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
def test_ndarray_reaches_model(serve, ndarray, dtype):
    out = call_json(serve("Inspector").grpc_target, "Model/Predict", {"data": {"ndarray": ndarray}})
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
def test_tftensor_every_dtype(serve, dtype, field, values, np_dtype):
    request = {
        "data": {
            "tftensor": {"dtype": dtype, "tensorShape": {"dim": [{"size": "2"}]}, field: values}
        }
    }
    out = call_json(serve("Inspector").grpc_target, "Model/Predict", request)
    assert out["jsonData"]["X"]["dtype"] == np_dtype
    answer = call(serve("Identity").grpc_target, "Model/Predict", request)
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


def test_tftensor_content_and_fill(serve):
    target = serve("Inspector").grpc_target
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
    assert call_json(target, "Model/Predict", request)["jsonData"]["X"]["value"] == [[1, 2], [3, 4]]
    fill = {
        "data": {
            "tftensor": {
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "3"}]},
                "floatVal": [7],
            }
        }
    }
    assert call_json(target, "Model/Predict", fill)["jsonData"]["X"]["value"] == [7.0, 7.0, 7.0]


def test_tftensor_over_rest(serve):
    request = {
        "data": {
            "tftensor": {
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]},
                "floatVal": [1.0, 2.0],
            }
        }
    }
    r = serve("Identity").post("/predict", json=request)
    assert r.status_code == 200
    out = r.json()["data"]
    assert out["names"] == ["t:0", "t:1"] and out["tftensor"]["dtype"] == "DT_FLOAT"
    from unitserve.protocol.seldon import tftensor

    arr = tftensor.from_json(out["tftensor"])
    assert arr.dtype == np.float32 and arr.tolist() == [[1.0, 2.0]]


def test_str_bin_json_custom_payloads(serve):
    target = serve("Identity").grpc_target
    assert call_json(target, "Model/Predict", {"strData": "hé"}) == {"strData": "hé", "meta": {}}
    assert call_json(target, "Model/Predict", {"binData": "AAH/"}) == {
        "binData": "AAH/",
        "meta": {},
    }
    assert call_json(target, "Model/Predict", {"jsonData": {"n": 1, "s": "x"}}) == {
        "jsonData": {"n": 1.0, "s": "x"},
        "meta": {},
    }
    msg = pb.SeldonMessage()
    packed = AnyMessage()
    packed.type_url = "type.example/x"
    packed.value = b"\x01\x02"
    msg.customData.CopyFrom(packed)
    out = call(target, "Model/Predict", msg)
    assert out.customData.type_url == "type.example/x" and out.customData.value == b"\x01\x02"
    inspected = call_json(serve("Inspector").grpc_target, "Model/Predict", msg)
    assert inspected["jsonData"]["X"] == {"type": "Any", "type_url": "type.example/x"}


def test_meta_on_the_proto_path(serve):
    request = {"meta": {"puid": "g1", "tags": {"n": 1, "s": "x"}, "routing": {"r": 2}}, **ONE}
    out = call_json(serve("Inspector").grpc_target, "Model/Predict", request)
    assert out["jsonData"]["meta"] == {
        "puid": "g1",
        "tags": {"n": 1.0, "s": "x"},
        "routing": {"r": 2.0},
    }
    assert out["meta"] == {"puid": "g1", "tags": {"n": 1.0, "s": "x"}}


def test_transformers_router_combiner_feedback_services(serve):
    t = serve("Transformer").grpc_target
    for rpc in ("Generic/TransformInput", "Transformer/TransformInput"):
        assert call_json(t, rpc, {"data": {"ndarray": [[1, 2]]}})["data"]["ndarray"] == [[2.0, 3.0]]
    for rpc in ("Generic/TransformOutput", "OutputTransformer/TransformOutput"):
        assert call_json(t, rpc, {"data": {"ndarray": [[1, 2]]}})["data"]["ndarray"] == [[2.0, 4.0]]
    r = serve("Router").grpc_target
    for rpc in ("Generic/Route", "Router/Route"):
        out = call_json(r, rpc, {"data": {"tensor": {"shape": [3], "values": [1, 2, 3]}}})
        assert out["data"] == {"names": ["t:0"], "tensor": {"shape": [1, 1], "values": [1.0]}}
    feedback = {"request": ONE, "response": {"meta": {"routing": {"0": 1}}}, "reward": 1}
    for rpc in (
        "Router/SendFeedback",
        "Generic/SendFeedback",
        "Model/SendFeedback",
        "Seldon/SendFeedback",
    ):
        assert call_json(r, rpc, feedback)["strData"] == "routing=1 reward=1.0"
    c = serve("Combiner").grpc_target
    msgs = {"seldonMessages": [{"data": {"ndarray": [[1, 2]]}}, {"data": {"ndarray": [[3, 4]]}}]}
    for rpc in ("Combiner/Aggregate", "Generic/Aggregate"):
        assert call_json(c, rpc, msgs)["data"]["ndarray"] == [[2.0, 3.0]]


def test_metadata_rpcs(fresh_server):
    server = fresh_server("Metadata")
    out = call_json(server.grpc_target, "Model/Metadata", {})
    assert out["name"] == "my-model" and out["inputs"][0]["shape"] == ["1", "4"]
    assert call_json(server.grpc_target, "Seldon/ModelMetadata", {"name": "x"}) == out
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Seldon/GraphMetadata", {})
    assert err.value.code == grpc.StatusCode.UNIMPLEMENTED


def test_raw_methods_get_and_return_protobuf(serve):
    target = serve("Raw").grpc_target
    out = call_json(target, "Model/Predict", {"data": {"ndarray": [[1, 2]]}})
    assert out["data"] == {"names": ["double"], "ndarray": [[2.0, 4.0]]}
    out = call_json(target, "Model/SendFeedback", {"request": ONE, "reward": 0.75})
    assert out["jsonData"] == {"type": "Feedback", "reward": 0.75}
    out = call_json(target, "Combiner/Aggregate", {"seldonMessages": [ONE, ONE, ONE]})
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
def test_bad_input_is_invalid_argument(serve, request_json, needle):
    with pytest.raises(RpcError) as err:
        call(serve("Identity").grpc_target, "Model/Predict", request_json)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details


def test_malformed_bytes(serve):
    with pytest.raises(RpcError) as err:
        call_bytes(serve("Identity").grpc_target, "Model/Predict", b"\xff\xff\xff")
    assert err.value.code == grpc.StatusCode.INTERNAL


def test_error_codes(serve):
    target = serve("Failing").grpc_target
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
            call(target, "Model/Predict", request)
        assert (err.value.code, err.value.details) == (code, details)
    with pytest.raises(RpcError) as err:
        call(serve("Identity").grpc_target, "Router/Route", ONE)
    assert (err.value.code, err.value.details) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Route not defined",
    )
    with pytest.raises(RpcError) as err:
        call(
            serve("Returns").grpc_target,
            "Model/Predict",
            {"data": {"names": ["int"], "ndarray": [1]}},
        )
    assert err.value.code == grpc.StatusCode.INTERNAL


def test_reflection_lists_the_seven_services(serve):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async def list_services(target):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for response in stub.ServerReflectionInfo(iter([request])):
                return sorted(s.name for s in response.list_services_response.service)

    names = asyncio.run(list_services(serve("Identity").grpc_target))
    assert names == sorted(
        [
            "grpc.reflection.v1alpha.ServerReflection",
            *[
                f"seldon.protos.{s}"
                for s in (
                    "Generic",
                    "Model",
                    "Router",
                    "Transformer",
                    "OutputTransformer",
                    "Combiner",
                    "Seldon",
                )
            ],
        ]
    )


def test_health_service_says_serving(serve):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def check(target):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return (await stub.Check(health_pb2.HealthCheckRequest(service=""))).status

    assert (
        asyncio.run(check(serve("Identity").grpc_target)) == health_pb2.HealthCheckResponse.SERVING
    )


def test_message_size_limit_flag(fresh_server):
    server = fresh_server("Identity", "--grpc-max-message-size", "1K")
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Model/Predict", {"strData": "x" * 5000})
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "1024" in err.value.details
    assert call_json(server.grpc_target, "Model/Predict", {"strData": "ok"})["strData"] == "ok"


def test_message_size_limit_annotation(fresh_server, tmp_path):
    path = tmp_path / "annotations"
    path.write_text('seldon.io/grpc-max-message-size="2048"\nother="x"\nnot-a-pair\n')
    server = fresh_server("Identity", env={"UNITSERVE_ANNOTATIONS_PATH": str(path)})
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Model/Predict", {"strData": "x" * 5000})
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "2048" in err.value.details


def test_default_receive_limit_is_4mib(serve):
    with pytest.raises(RpcError) as err:
        call(serve("Identity").grpc_target, "Model/Predict", {"strData": "x" * (5 << 20)})
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_rest_and_grpc_share_one_user_object(fresh_server):
    server = fresh_server("Counter")
    seen = []
    for i in range(6):
        if i % 2:
            seen.append(server.post("/predict", json={"strData": ""}).json()["jsonData"])
        else:
            seen.append(
                json.loads(
                    json.dumps(
                        call_json(server.grpc_target, "Model/Predict", {"strData": ""})["jsonData"]
                    )
                )
            )
    assert [int(s["count"]) for s in seen] == [1, 2, 3, 4, 5, 6]
    assert len({int(s["id"]) for s in seen}) == 1
    assert {int(s["loads"]) for s in seen} == {1}


def test_grpc_off_with_zero_workers(fresh_server):
    server = fresh_server("Identity", grpc=False)
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Model/Predict", ONE, timeout=2)
    assert err.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_async_model_over_grpc(serve):
    out = call_json(serve("Asyncy").grpc_target, "Model/Predict", {"data": {"ndarray": [[1]]}})
    assert out["data"]["ndarray"] == [[10.0]]
