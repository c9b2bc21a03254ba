"""Every Seldon payload kind in and out, in-process, over both transports: one table of
requests, each sent over REST (JSON) and over gRPC (protobuf) as a client of either
sends it, and what reaches the model and what the answer becomes.

Where the transports differ, the row says so: REST's JSON keeps ints as ints, while
protobuf holds every number as a double (a ListValue has no ints) and its JSON form
leaves empty fields out. What only one transport can carry (exact JSON bytes, bare NaN
tokens, a protobuf ``Any``, undecodable protobuf bytes) is tested on that one alone.
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from tests import seldon_cases as cases
from unitserve.proto import Any as AnyMessage
from unitserve.proto import prediction_pb2 as pb
from unitserve.proto import tensor_pb2
from unitserve.protocol.seldon import tftensor

from .engine_harness import Harness, RpcError

ONE = cases.ONE


def send(target: Harness, transport: str, body: Any, rpc: str = "Model/Predict") -> cases.Sent:
    return cases.send_over(
        transport,
        rpc,
        lambda path: target.post(path, json=body),
        lambda name: target.call_json(name, body),
        RpcError,
    )


@pytest.fixture(params=cases.TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def numbers(value: Any) -> set[type]:
    """The types of the numbers in a JSON value (bools are not numbers here)."""
    if isinstance(value, dict):
        return set().union(*(numbers(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(numbers(v) for v in value))
    return (
        {type(value)} if isinstance(value, int | float) and not isinstance(value, bool) else set()
    )


# ----------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("rpc", ["Model/Predict", "Seldon/Predict"])
@pytest.mark.parametrize("names", [None, ["a", "b"]])
def test_ndarray_names_become_t_i_and_numbers_keep_the_transports_type(
    model, transport, rpc, names
):
    data: dict[str, Any] = (
        {"ndarray": [[1, 2]]} if names is None else {"names": names, "ndarray": [[1, 2]]}
    )
    sent = send(model("Identity"), transport, {"data": data}, rpc)
    assert sent.body == {"data": {"names": ["t:0", "t:1"], "ndarray": [[1, 2]]}, "meta": {}}
    assert numbers(sent.body) == cases.pick(transport, {int}, {float})


@pytest.mark.parametrize(
    ("ndarray", "rest_dtype", "grpc_dtype"),
    [
        ([[1, 2], [3, 4]], "int64", "float64"),
        ([[1, 2]], "int64", "float64"),
        ([[1, 2.5]], "float64", "float64"),
        ([1.5, 2.5], "float64", "float64"),
        ([["a", "bc"]], "<U2", "<U2"),
        ([["a", "b"]], "<U1", "<U1"),
        ([[True, False]], "bool", "bool"),
        ([[None, 1]], "object", "object"),
        ([[[1.5], [2.5]]], "float64", "float64"),
        ([[[1], [2]]], "int64", "float64"),
    ],
)
def test_ndarray_dtypes_reach_the_model(model, transport, ndarray, rest_dtype, grpc_dtype):
    sent = send(model("Inspector"), transport, {"data": {"ndarray": ndarray}})
    assert sent.body["jsonData"]["X"]["dtype"] == cases.pick(transport, rest_dtype, grpc_dtype)
    assert sent.body["jsonData"]["X"]["value"] == ndarray
    # A request without meta: REST hands the model none, gRPC an empty one.
    assert sent.body["jsonData"]["meta"] == cases.pick(transport, None, {})


def test_tensor_in_tensor_out(model, transport):
    sent = send(
        model("Identity"),
        transport,
        {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}},
    )
    assert sent.body["data"] == {
        "names": ["t:0", "t:1"],
        "tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]},
    }
    assert numbers(sent.body["data"]["tensor"]["values"]) == cases.pick(transport, {int}, {float})


def test_tensor_1d_has_no_names(model, transport):
    sent = send(
        model("Identity"), transport, {"data": {"tensor": {"shape": [3], "values": [1.5, 2, 3]}}}
    )
    tensor = {"tensor": {"shape": [3], "values": [1.5, 2.0, 3.0]}}
    assert sent.body["data"] == cases.pick(transport, {"names": [], **tensor}, tensor)


def test_tensor_reaches_model_reshaped(model, transport):
    sent = send(
        model("Inspector"),
        transport,
        {"data": {"tensor": {"shape": [1, 2, 2], "values": [1, 2, 3, 4]}}},
    )
    assert sent.body["jsonData"]["X"] == {
        "type": "ndarray",
        "dtype": cases.pick(transport, "int64", "float64"),
        "shape": [1, 2, 2],
        "value": [[[1, 2], [3, 4]]],
    }


def test_large_tensor_and_ndarray_round_trip_exactly(model, transport):
    target = model("Identity")
    arr = np.random.default_rng(0).standard_normal((300, 200))
    sent = send(
        target,
        transport,
        {"data": {"tensor": {"shape": [300, 200], "values": arr.ravel().tolist()}}},
    )
    back = sent.body["data"]["tensor"]
    assert back["shape"] == [300, 200]
    assert np.array_equal(np.array(back["values"]).reshape(300, 200), arr)
    arr = np.random.default_rng(1).standard_normal((100, 100))
    sent = send(target, transport, {"data": {"ndarray": arr.tolist()}})
    assert np.array_equal(np.array(sent.body["data"]["ndarray"]), arr)


def test_large_tensor_as_a_protobuf_message(model):
    arr = np.random.default_rng(0).standard_normal((300, 200))
    msg = pb.SeldonMessage()
    msg.data.tensor.shape.extend(arr.shape)
    msg.data.tensor.values.extend(arr.ravel())
    back = model("Identity").call("Model/Predict", msg).data.tensor
    assert list(back.shape) == [300, 200]
    assert np.array_equal(np.array(back.values).reshape(300, 200), arr)


def test_data_without_array_gives_empty_float_array(model, transport):
    sent = send(model("Inspector"), transport, {"data": {"names": ["a"]}})
    assert sent.body["jsonData"]["X"]["shape"] == [0]
    assert sent.body["jsonData"]["names"] == ["a"]


# ----------------------------------------------------------------------------- tftensor


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
def test_tftensor_every_dtype(model, transport, dtype, field, values, np_dtype):
    tensor = {"dtype": dtype, "tensorShape": {"dim": [{"size": "2"}]}, field: values}
    request = {"data": {"tftensor": tensor}}
    sent = send(model("Inspector"), transport, request)
    assert sent.body["jsonData"]["X"]["dtype"] == np_dtype
    answer = send(model("Identity"), transport, request).body["data"]
    if np_dtype in ("bool", "object"):  # non-numeric results always answer as ndarray
        assert "ndarray" in answer
        return
    proto = json_format.ParseDict(tensor, tensor_pb2.TensorProto())
    back = json_format.ParseDict(answer["tftensor"], tensor_pb2.TensorProto())
    assert tftensor.to_array(back).tolist() == tftensor.to_array(proto).tolist()
    assert back.dtype == proto.dtype


def test_tftensor_content_and_fill(model, transport):
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
    assert send(target, transport, request).body["jsonData"]["X"]["value"] == [[1, 2], [3, 4]]
    fill = {
        "data": {
            "tftensor": {
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "3"}]},
                "floatVal": [7],
            }
        }
    }
    assert send(target, transport, fill).body["jsonData"]["X"]["value"] == [7.0, 7.0, 7.0]


def test_tftensor_answer_keeps_names_and_dtype(model, transport):
    request = {
        "data": {
            "tftensor": {
                "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]},
                "floatVal": [1.0, 2.0],
            }
        }
    }
    out = send(model("Identity"), transport, request).body["data"]
    assert out["names"] == ["t:0", "t:1"] and out["tftensor"]["dtype"] == "DT_FLOAT"
    arr = tftensor.from_json(out["tftensor"])
    assert arr.dtype == np.float32 and arr.tolist() == [[1.0, 2.0]]


# ----------------------------------------------------------------------------- str, bin, json


@pytest.mark.parametrize("text", ["hé", "h\u00e9llo \U0001f600"])
def test_strdata_round_trip(model, transport, text):
    assert send(model("Identity"), transport, {"strData": text}).body == {
        "strData": text,
        "meta": {},
    }


def test_strdata_is_never_parsed(model, transport):
    sent = send(model("Inspector"), transport, {"strData": '{"a": 1}'})
    assert sent.body["jsonData"]["X"] == {"type": "str", "value": '{"a": 1}'}


@pytest.mark.parametrize("raw", [b"\x00\x01hello\xff", b"\x00\x01\xff"])
def test_bindata_round_trip(model, transport, raw):
    encoded = base64.b64encode(raw).decode()
    assert send(model("Identity"), transport, {"binData": encoded}).body == {
        "binData": encoded,
        "meta": {},
    }


def test_bindata_reaches_model_as_bytes(model, transport):
    sent = send(model("Inspector"), transport, {"binData": "aGk="})
    assert sent.body["jsonData"]["X"] == {"type": "bytes", "b64": "aGk="}


@pytest.mark.parametrize(
    "doc", [{"a": 1, "b": [1, 2.5], "c": None, "d": {"e": "f"}}, {"n": 1, "s": "x"}]
)
def test_jsondata_round_trip(model, transport, doc):
    sent = send(model("Identity"), transport, {"jsonData": doc})
    assert sent.body == {"jsonData": doc, "meta": {}}
    assert numbers(sent.body) == cases.pick(transport, {int, float} & numbers(doc), {float})


def test_jsondata_list_answer_is_a_tensor(model, transport):
    sent = send(model("Identity"), transport, {"jsonData": [1, 2, 3]})
    tensor = {"tensor": {"shape": [3], "values": [1, 2, 3]}}
    assert sent.body["data"] == cases.pick(transport, {"names": [], **tensor}, tensor)


def test_meta_reaches_the_model_and_comes_back(model, transport):
    request = {"meta": {"puid": "g1", "tags": {"n": 1, "s": "x"}, "routing": {"r": 2}}, **ONE}
    sent = send(model("Inspector"), transport, request)
    assert sent.body["jsonData"]["meta"] == {
        "puid": "g1",
        "tags": {"n": 1, "s": "x"},
        "routing": {"r": 2},
    }
    assert sent.body["meta"] == {"puid": "g1", "tags": {"n": 1, "s": "x"}}
    assert numbers(sent.body["meta"]) == cases.pick(transport, {int}, {float})


# ----------------------------------------------------------------------------- the services


@pytest.mark.parametrize(("target", "rpc", "body", "path", "expected"), cases.SERVICE_CASES)
def test_transformers_router_combiner_feedback_services(
    model, transport, target, rpc, body, path, expected
):
    assert cases.field(send(model(target), transport, body, rpc).body, path) == expected


# ----------------------------------------------------------------------------- results


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("int64", {"data": {"names": ["t:0", "t:1"], "ndarray": [[1, 2], [3, 4]]}}),
        ("bools", {"data": {"names": ["t:0", "t:1"], "ndarray": [[True, False]]}}),
        ("strings", {"data": {"names": [], "ndarray": ["a", "bc"]}}),
        ("object", {"data": {"names": ["t:0", "t:1", "t:2"], "ndarray": [[1, "a", None]]}}),
        ("list", {"data": {"names": ["t:0", "t:1"], "ndarray": [[1, 2], [3, 4]]}}),
        ("mixed_list", {"data": {"names": [], "ndarray": [1, "a", 2.5]}}),
        ("str", {"strData": "hello"}),
        ("unicode", {"strData": "h\u00e9llo \u2603 \U0001f600"}),
        ("bytes", {"binData": base64.b64encode(b"\x00\x01bin\xff").decode()}),
        ("dict", {"jsonData": {"a": 1, "b": [1, 2.5], "c": {"d": None}}}),
        (
            "3d",
            {"data": {"names": ["t:0", "t:1"], "ndarray": [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]}},
        ),
        (
            "noncontig",
            {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]}},
        ),
        ("empty", {"data": {"names": [], "ndarray": []}}),
        ("scalar0d", {"data": {"names": [], "ndarray": 3.5}}),
        ("bigint", {"jsonData": {"big": 2**70}}),
        ("float32", {"data": {"names": ["t:0", "t:1"], "ndarray": [[0.5, 0.25]]}}),
    ],
)
def test_result_types_over_ndarray_requests(model, transport, kind, expected):
    sent = send(model("Returns"), transport, {"data": {"names": [kind], "ndarray": [[1]]}})
    data = expected.get("data")
    if transport == "grpc" and data is not None:
        # protobuf's JSON form leaves out empty names, and an ndarray is a list there
        data = {k: v for k, v in data.items() if k != "names" or v}
        if not isinstance(data["ndarray"], list):
            data["ndarray"] = [data["ndarray"]]
        expected = {"data": data}
    assert sent.body == {**expected, "meta": {}}


def test_numeric_result_for_tensor_request_is_a_tensor(model, transport):
    sent = send(
        model("Returns"),
        transport,
        {"data": {"names": ["int64"], "tensor": {"shape": [1], "values": [1]}}},
    )
    assert sent.body["data"]["tensor"] == {"shape": [2, 2], "values": [1, 2, 3, 4]}


def test_numeric_result_for_strdata_request_is_a_tensor(model, transport):
    sent = send(model("Returns"), transport, {"strData": "int64"})
    assert sent.body["data"] == {
        "names": ["t:0", "t:1"],
        "tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]},
    }


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "rest_needle", "grpc_needle"),
    [
        (
            {"data": {"tensor": {"shape": [2, 2], "values": [1]}}},
            "has 1 values but shape [2, 2]",
            "",
        ),
        ({"data": {"tensor": {"shape": [2], "values": [1, 2, 3]}}}, "has 3 values", ""),
        (
            {"data": {"tensor": {"values": [1, 2]}}},
            "data.tensor.shape must be a list of non-negative integers",
            "no shape",
        ),
        ({}, "Invalid request data type: {}", "Unknown data in SeldonMessage"),
        ({"data": {"tftensor": {"dtype": "DT_VARIANT"}}}, "dtype 21 is not supported", ""),
        ({"data": {"ndarray": [[1, 2], [3]]}}, "not a rectangular array", ""),
    ],
)
def test_bad_input_is_refused(model, transport, body, rest_needle, grpc_needle):
    """Each row's sentence (the gRPC one, where it is not the REST one's)."""
    sent = send(model("Identity"), transport, body)
    assert sent.status == 400
    assert cases.pick(transport, rest_needle, grpc_needle or rest_needle) in sent.error


@pytest.mark.parametrize(("target", "rpc", "body", "statuses", "sentence"), cases.ERROR_CASES)
def test_error_codes(model, transport, target, rpc, body, statuses, sentence):
    """(REST status, gRPC status as the REST one it stands for) and the sentence."""
    sent = send(model(target), transport, body, rpc)
    assert (sent.status, sent.error) == (cases.pick(transport, *statuses), sentence)


@pytest.mark.parametrize("kind", ["int", "none", "tuple"])
def test_unknown_result_type_is_refused_with_a_sentence(model, transport, kind):
    sent = send(model("Returns"), transport, {"data": {"names": [kind], "ndarray": [[1]]}})
    assert sent.status == cases.pick(transport, 400, 500)
    assert sent.error.startswith("Unknown data type returned as payload")


@pytest.mark.parametrize("kind", ["ragged", "complex"])
def test_unserialisable_results_are_internal_errors(model, transport, kind):
    sent = send(model("Returns"), transport, {"data": {"names": [kind], "ndarray": [[1]]}})
    assert sent.status == 500


@pytest.mark.parametrize("kind", ["ragged", "complex"])
def test_unserialisable_results_say_why_over_rest(model, kind):
    r = model("Returns").post("/predict", json={"data": {"names": [kind], "ndarray": [[1]]}})
    assert r.json()["status"]["reason"] == "MICROSERVICE_INTERNAL_ERROR"


# ----------------------------------------------------------------------------- REST only


def test_float_answer_exact_bytes(model):
    r = model("Identity").post("/predict", json={"data": {"ndarray": [[1.0, 2.5]]}})
    assert r.content == b'{"data":{"names":["t:0","t:1"],"ndarray":[[1.0,2.5]]},"meta":{}}\n'


def test_strdata_unicode_is_escaped_in_json(model):
    r = model("Identity").post("/predict", json={"strData": "h\u00e9llo \U0001f600"})
    assert r.status_code == 200
    assert r.content == b'{"meta":{},"strData":"h\\u00e9llo \\ud83d\\ude00"}\n'


def test_payload_precedence_data_first(model):
    # Only JSON can carry two payloads: protobuf's are one oneof.
    r = model("Inspector").post("/predict", json={"strData": "s", "data": {"ndarray": [1]}})
    assert r.json()["jsonData"]["X"]["type"] == "ndarray"


def test_nonfinite_floats_are_valid_json_strings(model):
    r = model("Returns").post("/predict", json={"data": {"names": ["nan"], "ndarray": [[1]]}})
    assert r.status_code == 200
    assert b"NaN" in r.content and r.json()["data"]["ndarray"] == [
        ["NaN", "Infinity", "-Infinity", 1.0]
    ]
    r = model("Returns").post("/predict", json={"data": {"names": ["dict_nan"], "ndarray": [[1]]}})
    assert r.json()["jsonData"] == {"x": "NaN"}


def test_bare_nan_tokens_in_requests_are_accepted(model):
    r = model("Inspector").post(
        "/predict",
        content=b'{"data": {"ndarray": [[NaN, 1.0]]}}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 200
    assert r.json()["jsonData"]["X"]["dtype"] == "float64"


# ----------------------------------------------------------------------------- gRPC only


def test_custom_data_any_round_trips(model):
    msg = pb.SeldonMessage()
    packed = AnyMessage()
    packed.type_url = "type.example/x"
    packed.value = b"\x01\x02"
    msg.customData.CopyFrom(packed)
    out = model("Identity").call("Model/Predict", msg)
    assert out.customData.type_url == "type.example/x" and out.customData.value == b"\x01\x02"
    inspected = model("Inspector").call_json("Model/Predict", msg)
    assert inspected["jsonData"]["X"] == {"type": "Any", "type_url": "type.example/x"}


def test_raw_methods_get_and_return_protobuf(model):
    target = model("Raw")
    out = target.call_json("Model/Predict", {"data": {"ndarray": [[1, 2]]}})
    assert out["data"] == {"names": ["double"], "ndarray": [[2.0, 4.0]]}
    out = target.call_json("Model/SendFeedback", {"request": ONE, "reward": 0.75})
    assert out["jsonData"] == {"type": "Feedback", "reward": 0.75}
    out = target.call_json("Combiner/Aggregate", {"seldonMessages": [ONE, ONE, ONE]})
    assert out["jsonData"] == {"count": 3.0}


def test_malformed_bytes(model):
    with pytest.raises(RpcError) as err:
        model("Identity").call_bytes("Model/Predict", b"\xff\xff\xff")
    assert err.value.code == grpc.StatusCode.INTERNAL
