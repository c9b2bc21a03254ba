"""Every payload kind in and out over REST, in-process: what reaches the model and
what the answer becomes (REST JSON keeps ints as ints)."""

from __future__ import annotations

import base64

import pytest


def predict(server, body):
    r = server.post("/predict", json=body)
    assert r.headers["content-type"] == "application/json"
    return r.status_code, r.json()


def test_ndarray_ints_stay_ints_and_names_become_t_i(model):
    status, body = predict(model("Identity"), {"data": {"names": ["a", "b"], "ndarray": [[1, 2]]}})
    assert status == 200
    assert body == {"data": {"names": ["t:0", "t:1"], "ndarray": [[1, 2]]}, "meta": {}}


def test_ndarray_floats_and_exact_bytes(model):
    r = model("Identity").post("/predict", json={"data": {"ndarray": [[1.0, 2.5]]}})
    assert r.content == b'{"data":{"names":["t:0","t:1"],"ndarray":[[1.0,2.5]]},"meta":{}}\n'


@pytest.mark.parametrize(
    ("ndarray", "dtype"),
    [
        ([[1, 2], [3, 4]], "int64"),
        ([[1, 2.5]], "float64"),
        ([["a", "bc"]], "<U2"),
        ([[True, False]], "bool"),
        ([[None, 1]], "object"),
        ([[[1.5], [2.5]]], "float64"),
    ],
)
def test_ndarray_dtypes_reach_the_model(model, ndarray, dtype):
    status, body = predict(model("Inspector"), {"data": {"ndarray": ndarray}})
    assert status == 200
    assert body["jsonData"]["X"]["dtype"] == dtype
    assert body["jsonData"]["X"]["value"] == ndarray


def test_tensor_in_tensor_out(model):
    status, body = predict(
        model("Identity"), {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]}}}
    )
    assert status == 200
    assert body["data"] == {
        "names": ["t:0", "t:1"],
        "tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]},
    }


def test_tensor_1d_has_no_names(model):
    _, body = predict(
        model("Identity"), {"data": {"tensor": {"shape": [3], "values": [1.5, 2, 3]}}}
    )
    assert body["data"] == {"names": [], "tensor": {"shape": [3], "values": [1.5, 2.0, 3.0]}}


def test_tensor_reaches_model_reshaped(model):
    _, body = predict(
        model("Inspector"), {"data": {"tensor": {"shape": [1, 2, 2], "values": [1, 2, 3, 4]}}}
    )
    assert body["jsonData"]["X"] == {
        "type": "ndarray",
        "dtype": "int64",
        "shape": [1, 2, 2],
        "value": [[[1, 2], [3, 4]]],
    }


def test_data_without_array_gives_empty_float_array(model):
    _, body = predict(model("Inspector"), {"data": {"names": ["a"]}})
    assert body["jsonData"]["X"]["shape"] == [0]
    assert body["jsonData"]["names"] == ["a"]


def test_strdata_roundtrip_and_unicode_escaped(model):
    r = model("Identity").post("/predict", json={"strData": "h\u00e9llo \U0001f600"})
    assert r.status_code == 200
    assert r.content == b'{"meta":{},"strData":"h\\u00e9llo \\ud83d\\ude00"}\n'
    assert r.json()["strData"] == "h\u00e9llo \U0001f600"


def test_strdata_is_never_parsed(model):
    _, body = predict(model("Inspector"), {"strData": '{"a": 1}'})
    assert body["jsonData"]["X"] == {"type": "str", "value": '{"a": 1}'}


def test_bindata_roundtrip(model):
    raw = b"\x00\x01hello\xff"
    _, body = predict(model("Identity"), {"binData": base64.b64encode(raw).decode()})
    assert base64.b64decode(body["binData"]) == raw


def test_bindata_reaches_model_as_bytes(model):
    _, body = predict(model("Inspector"), {"binData": "aGk="})
    assert body["jsonData"]["X"] == {"type": "bytes", "b64": "aGk="}


def test_jsondata_keeps_ints(model):
    doc = {"a": 1, "b": [1, 2.5], "c": None, "d": {"e": "f"}}
    _, body = predict(model("Identity"), {"jsonData": doc})
    assert body == {"jsonData": doc, "meta": {}}


def test_jsondata_list_answer_is_a_tensor(model):
    _, body = predict(model("Identity"), {"jsonData": [1, 2, 3]})
    assert body["data"] == {"names": [], "tensor": {"shape": [3], "values": [1, 2, 3]}}


def test_payload_precedence_data_first(model):
    _, body = predict(model("Inspector"), {"strData": "s", "data": {"ndarray": [1]}})
    assert body["jsonData"]["X"]["type"] == "ndarray"


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
    ],
)
def test_result_types_over_ndarray_requests(model, kind, expected):
    status, body = predict(model("Returns"), {"data": {"names": [kind], "ndarray": [[1]]}})
    assert status == 200
    assert body == {**expected, "meta": {}}


def test_float32_results(model):
    _, body = predict(model("Returns"), {"data": {"names": ["float32"], "ndarray": [[1]]}})
    assert body["data"]["ndarray"] == [[0.5, 0.25]]


def test_numeric_result_for_tensor_request_is_a_tensor(model):
    _, body = predict(
        model("Returns"), {"data": {"names": ["int64"], "tensor": {"shape": [1], "values": [1]}}}
    )
    assert body["data"]["tensor"] == {"shape": [2, 2], "values": [1, 2, 3, 4]}


def test_numeric_result_for_strdata_request_is_a_tensor(model):
    _, body = predict(model("Returns"), {"strData": "int64"})
    assert body["data"] == {
        "names": ["t:0", "t:1"],
        "tensor": {"shape": [2, 2], "values": [1, 2, 3, 4]},
    }


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


@pytest.mark.parametrize("kind", ["int", "none", "tuple"])
def test_unknown_result_type_is_400_with_message(model, kind):
    status, body = predict(model("Returns"), {"data": {"names": [kind], "ndarray": [[1]]}})
    assert status == 400
    assert body["status"]["info"].startswith("Unknown data type returned as payload")


@pytest.mark.parametrize("kind", ["ragged", "complex"])
def test_unserialisable_results_are_500(model, kind):
    status, body = predict(model("Returns"), {"data": {"names": [kind], "ndarray": [[1]]}})
    assert status == 500
    assert body["status"]["reason"] == "MICROSERVICE_INTERNAL_ERROR"
