"""The Open Inference Protocol over REST, in-process: every route, its answers and its
errors, the engine's inference by service type, and the binary tensor data extension."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson
import pytest

from .engine_harness import Harness, fixture_model, serving

INFER = "/v2/models/V2Model/infer"
FP32 = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}


def infer(h: Harness, *inputs: dict[str, Any], path: str = INFER, **extra: Any) -> Any:
    return h.post(path, json={"inputs": list(inputs), **extra})


def answer_of(h: Harness, answer: str, **extra: Any) -> Any:
    r = infer(h, FP32, parameters={"answer": answer}, **extra)
    return r


def error_of(r: Any, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    return str(body["error"])


@pytest.fixture
def v2(model: Any) -> Harness:
    return model("V2Model", metadata={"platform": "p", "inputs": [], "outputs": []})


# ----------------------------------------------------------------------------- server routes


def test_server_metadata_live_and_ready(v2: Harness) -> None:
    meta = v2.get("/v2").json()
    assert meta["name"] == "unitserve" and meta["version"]
    assert set(meta["extensions"]) >= {"binary_tensor_data", "model_repository"}
    assert (v2.get("/v2/health/live").status_code, v2.get("/v2/health/live").json()) == (
        200,
        {"live": True},
    )
    r = v2.get("/v2/health/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True})
    r = v2.get("/v2/models/V2Model/ready")
    assert (r.status_code, r.json()) == (200, {"name": "V2Model", "ready": True})


def test_not_ready_before_load() -> None:
    with serving(fixture_model("V2Model"), ready=False) as h:
        r = h.get("/v2/health/ready")
        assert (r.status_code, r.json()) == (503, {"ready": False})
        assert h.get("/v2/health/live").status_code == 200
        assert h.get("/v2/models/V2Model/ready").json() == {"name": "V2Model", "ready": False}
        assert "not ready" in error_of(infer(h, FP32), 503)
        error_of(h.get("/v2/models/V2Model"), 503)
        index = h.post("/v2/repository/index").json()
        assert index == [{"name": "V2Model", "state": "LOADING", "reason": index[0]["reason"]}]
        h.loop.run_until_complete(h.model.load())
        assert infer(h, FP32).status_code == 200


def test_unknown_paths_and_methods(v2: Harness) -> None:
    for path in ("/v2/", "/v2/models", "/v2/models/V2Model/other", "/v2/health", "/v2x"):
        r = v2.get(path)
        assert r.status_code == 404, path
        if path.startswith("/v2/"):
            error_of(r, 404)
    r = v2.get(INFER)
    assert "Method Not Allowed" in error_of(r, 405) and "POST" in r.headers["allow"]
    error_of(v2.post("/v2/health/ready"), 405)
    assert v2.request("OPTIONS", INFER).status_code == 200
    assert v2.request("HEAD", "/v2/health/live").content == b""


def test_another_model_or_version_is_404(model: Any) -> None:
    h = model("V2Model")
    assert "unknown model 'other'" in error_of(infer(h, FP32, path="/v2/models/other/infer"), 404)
    error_of(h.get("/v2/models/other"), 404)
    error_of(h.get("/v2/models/other/ready"), 404)
    error_of(infer(h, FP32, path="/v2/models/V2Model/versions/1/infer"), 404)
    h = model("V2Model", env={"UNITSERVE_MODEL_NAME": "demo", "UNITSERVE_MODEL_VERSION": "3"})
    r = infer(h, FP32, path="/v2/models/demo/versions/3/infer")
    assert r.status_code == 200 and r.json()["model_version"] == "3"
    assert r.json()["model_name"] == "demo"
    assert infer(h, FP32, path="/v2/models/demo/infer").status_code == 200
    error_of(infer(h, FP32, path="/v2/models/demo/versions/4/infer"), 404)
    error_of(infer(h, FP32), 404)


# ----------------------------------------------------------------------------- metadata


def test_model_metadata_in_the_protocols_shape(model: Any) -> None:
    user = fixture_model("V2Model")
    h = model(user, metadata={"name": "image", "versions": ["tag"], **user.init_metadata()})
    assert h.get("/v2/models/V2Model").json() == {
        "name": "V2Model",
        "platform": "unitserve-tests",
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1, 4]}],
    }
    h = model(user, env={"UNITSERVE_MODEL_VERSION": "2"}, metadata={"platform": ""})
    assert h.get("/v2/models/V2Model/versions/2").json()["versions"] == ["2"]
    h = model(user, metadata=None)  # metadata that broke the schema at start-up
    assert "metadata" in error_of(h.get("/v2/models/V2Model"), 500)


# ----------------------------------------------------------------------------- repository


def test_repository_unload_and_load(v2: Harness) -> None:
    assert v2.post("/v2/repository/index").json() == [
        {"name": "V2Model", "state": "READY", "reason": ""}
    ]
    r = v2.post("/v2/repository/models/V2Model/unload")
    assert (r.status_code, r.content) == (200, b"")
    assert v2.get("/v2/models/V2Model/ready").status_code == 503
    assert v2.get("/v2/health/ready").status_code == 503
    assert v2.post("/v2/repository/index").json()[0]["state"] == "UNAVAILABLE"
    assert v2.post("/v2/repository/index", json={"ready": True}).json() == []
    assert "unloaded" in error_of(infer(v2, FP32), 503)
    # The Seldon protocol serves the same model: released, it is not ready either.
    assert v2.post("/predict", json={"data": {"ndarray": [[1]]}}).status_code == 503
    assert v2.get("/ready").status_code == 503
    r = v2.post("/v2/repository/models/V2Model/load", json={})
    assert (r.status_code, r.content) == (200, b"")
    assert infer(v2, FP32).status_code == 200
    assert v2.post("/v2/repository/index", json={"ready": True}).json()[0]["state"] == "READY"


def test_repository_errors(v2: Harness) -> None:
    error_of(v2.post("/v2/repository/models/other/load"), 404)
    error_of(v2.post("/v2/repository/models/other/unload"), 404)
    error_of(v2.post("/v2/repository/index", content=b"[1]"), 400)
    error_of(v2.post("/v2/repository/index", content=b"{"), 400)
    error_of(v2.post("/v2/repository/index", json={"ready": "yes"}), 400)
    body = {"parameters": {"config": "{}"}}
    assert "not supported" in error_of(
        v2.post("/v2/repository/models/V2Model/load", json=body), 400
    )


# ----------------------------------------------------------------------------- inference


def test_infer_echoes_an_array(v2: Harness) -> None:
    r = infer(v2, FP32, id="req-1")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {
        "model_name": "V2Model",
        "id": "req-1",
        "parameters": {"model": "v2"},
        "outputs": [
            {"name": "output-0", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]}
        ],
    }
    assert infer(v2, FP32).json()["id"]  # generated when absent


DATATYPES = [
    ("BOOL", [True, False]),
    ("UINT8", [0, 255]),
    ("UINT16", [0, 65535]),
    ("UINT32", [0, 4294967295]),
    ("UINT64", [0, 18446744073709551615]),
    ("INT8", [-128, 127]),
    ("INT16", [-32768, 32767]),
    ("INT32", [-2147483648, 2147483647]),
    ("INT64", [-9223372036854775808, 9223372036854775807]),
    ("FP16", [0.5, -2.0]),
    ("FP32", [0.5, -2.0]),
    ("FP64", [0.1, 1e300]),
    ("BYTES", ["a", "é"]),
]


@pytest.mark.parametrize(("datatype", "data"), DATATYPES, ids=[d for d, _ in DATATYPES])
def test_every_datatype_round_trips_as_json(v2: Harness, datatype: str, data: list[Any]) -> None:
    r = infer(v2, {"name": "x", "shape": [2], "datatype": datatype, "data": data})
    out = r.json()["outputs"][0]
    assert (out["datatype"], out["shape"], out["data"]) == (datatype, [2], data)


def test_several_inputs_become_a_dict_and_outputs_are_named_after_its_keys(v2: Harness) -> None:
    a = {"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}
    b = {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["x"]}
    outputs = infer(v2, a, b).json()["outputs"]
    assert [(o["name"], o["data"]) for o in outputs] == [("a", [1]), ("b", ["x"])]


def test_requested_outputs_filter_and_order(v2: Harness) -> None:
    a = {"name": "a", "shape": [1], "datatype": "INT32", "data": [1]}
    b = {"name": "b", "shape": [1], "datatype": "INT32", "data": [2]}
    r = infer(v2, a, b, outputs=[{"name": "b"}])
    assert [o["name"] for o in r.json()["outputs"]] == ["b"]
    assert "'c' is not among" in error_of(infer(v2, a, b, outputs=[{"name": "c"}]), 400)


def test_feature_names_reach_the_model(v2: Harness) -> None:
    x = {**FP32, "parameters": {"feature_names": ["f1", "f2"]}}
    r = infer(v2, x, parameters={"answer": "names"})
    assert r.json()["outputs"][0]["data"] == ["f1", "f2"]


RESULTS = [
    ("tuple", [("output-0", "FP64", [2]), ("output-1", "INT32", [2, 2])]),
    ("ragged", [("output-0", "FP64", [3]), ("output-1", "BYTES", [2])]),
    ("float64", [("output-0", "FP64", [1])]),
    ("int", [("output-0", "INT64", [1])]),
    ("str", [("output-0", "BYTES", [1])]),
    ("dict", [("scores", "FP64", [1, 2]), ("label", "BYTES", [1])]),
    ("nested", [("output-0", "INT64", [2, 2])]),
    ("response", [("output-0", "INT64", [2])]),
]


@pytest.mark.parametrize(("answer", "outputs"), RESULTS, ids=[a for a, _ in RESULTS])
def test_results_the_seldon_protocol_refuses_reach_the_codec(
    v2: Harness, answer: str, outputs: list[Any]
) -> None:
    r = answer_of(v2, answer)
    assert r.status_code == 200, r.text
    got = [(o["name"], o["datatype"], o["shape"]) for o in r.json()["outputs"]]
    assert got == outputs


def test_bytes_result_goes_binary_when_asked(v2: Harness) -> None:
    r = answer_of(v2, "bytes", outputs=[{"name": "output-0", "parameters": {"binary_data": True}}])
    assert r.status_code == 200
    length = int(r.headers["inference-header-content-length"])
    header = orjson.loads(r.content[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 4 + 5}
    assert r.content[length:] == struct.pack("<I", 5) + b"\x00\xffraw"
    # As JSON, bytes that are not text cannot travel: the model's answer, a 500 that says so.
    assert "binary data" in error_of(answer_of(v2, "bytes"), 500)


def test_seldon_response_tags_and_metrics(v2: Harness) -> None:
    r = answer_of(v2, "response")
    assert r.json()["parameters"] == {"answer": "response", "model": "v2", "extra": "tag"}
    assert v2.recorder.recorded[-1][0] == "predict"
    assert v2.recorder.recorded[-1][1][0]["key"] == "v2_calls"


def test_user_errors_keep_their_status(v2: Harness) -> None:
    assert error_of(answer_of(v2, "refuse"), 422) == "the model refuses this"
    assert "crashed" in error_of(answer_of(v2, "crash"), 500)
    assert "complex" in error_of(answer_of(v2, "complex"), 500)
    error_of(answer_of(v2, "none"), 500)


def test_class_names_only_when_the_class_has_them(model: Any) -> None:
    x = {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}
    h = model(fixture_model("V2Model.V2Classifier"))
    out = infer(h, x, path="/v2/models/V2Classifier/infer").json()["outputs"][0]
    assert out["parameters"] == {"class_names": ["no", "yes"]}
    h = model(fixture_model("V2Model.V2Plain"))
    out = infer(h, x, path="/v2/models/V2Plain/infer").json()["outputs"][0]
    assert "parameters" not in out and out["shape"] == [1, 3]


def test_service_types(model: Any) -> None:
    x = {"name": "x", "shape": [2], "datatype": "INT64", "data": [1, 2]}
    h = model(fixture_model("V2Model.V2Transformer"), flags={"service_type": "TRANSFORMER"})
    r = infer(h, x, path="/v2/models/V2Transformer/infer")
    assert r.json()["outputs"][0]["data"] == [10, 20]
    h = model(
        fixture_model("V2Model.V2OutputTransformer"), flags={"service_type": "OUTPUT_TRANSFORMER"}
    )
    r = infer(h, x, path="/v2/models/V2OutputTransformer/infer")
    assert r.json()["outputs"][0]["data"] == [2, 3]
    for service in ("ROUTER", "COMBINER"):
        h = model(fixture_model("V2Model.V2Router"), flags={"service_type": service})
        message = error_of(infer(h, x, path="/v2/models/V2Router/infer"), 400)
        assert service in message and "Seldon protocol" in message


def test_raw_method_gets_the_json_object(model: Any) -> None:
    h = model(fixture_model("V2Model.V2Raw"))
    x = {"name": "x", "shape": [2], "datatype": "INT32", "data": [1, 2]}
    r = infer(h, x, path="/v2/models/V2Raw/infer", id="r")
    assert r.json()["outputs"][0]["data"] == ["x:[1, 2]"] and r.json()["id"] == "r"
    # Sent as binary data, the input reaches the raw method decoded, as `data`.
    header = orjson.dumps(
        {"inputs": [{**x, "data": None, "parameters": {"binary_data_size": 8}}]}
    ).replace(b',"data":null', b"")
    r = h.post(
        "/v2/models/V2Raw/infer",
        content=header + np.array([1, 2], dtype="<i4").tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert r.json()["outputs"][0]["data"] == ["x:[1, 2]"], r.text


# ----------------------------------------------------------------------------- binary data


def binary_request(arrays: dict[str, np.ndarray], datatype: str, **extra: Any) -> tuple[bytes, int]:
    inputs, buffers = [], []
    for name, arr in arrays.items():
        data = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        inputs.append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(data)},
            }
        )
        buffers.append(data)
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(buffers), len(header)


def test_binary_in_binary_out(v2: Harness) -> None:
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    body, length = binary_request({"x": arr}, "FP32", parameters={"binary_data_output": True})
    r = v2.post(INFER, content=body, headers={"Inference-Header-Content-Length": str(length)})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    n = int(r.headers["inference-header-content-length"])
    out = orjson.loads(r.content[:n])["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 48
    assert np.array_equal(np.frombuffer(r.content[n:], "<f4").reshape(3, 4), arr)


def test_binary_errors(v2: Harness) -> None:
    arr = np.arange(4, dtype=np.float32)
    body, length = binary_request({"x": arr}, "FP32")
    headers = {"Inference-Header-Content-Length": str(length)}
    error_of(v2.post(INFER, content=body[:-1], headers=headers), 400)  # truncated
    error_of(v2.post(INFER, content=body + b"x", headers=headers), 400)  # extra bytes
    error_of(v2.post(INFER, content=body, headers={"Inference-Header-Content-Length": "x"}), 400)
    error_of(v2.post(INFER, content=body, headers={"Inference-Header-Content-Length": "9999"}), 400)
    error_of(v2.post(INFER, content=body, headers={"Inference-Header-Content-Length": "3"}), 400)
    error_of(v2.post(INFER, content=body), 400)  # binary without the header length


def test_body_without_content_type_is_json(v2: Harness) -> None:
    body = orjson.dumps({"inputs": [FP32]})
    for ctype in (None, "text/plain", "application/octet-stream"):
        headers = {"content-type": ctype} if ctype else {}
        assert v2.post(INFER, content=body, headers=headers).status_code == 200


BAD = [
    (b"{", "not JSON"),
    (b"[]", "not an object"),
    (orjson.dumps({"inputs": []}), "no inputs"),
    (orjson.dumps({"inputs": [{**FP32, "datatype": "FP8"}]}), "datatype"),
    (orjson.dumps({"inputs": [{**FP32, "shape": [3]}]}), "shape/data"),
    (orjson.dumps({"inputs": [{**FP32, "data": ["a", "b", "c", "d"]}]}), "strings as FP32"),
    (orjson.dumps({"inputs": [{**FP32, "shape": [1 << 40, 1 << 40]}]}), "huge shape"),
    (b"[" * 5000 + b"]" * 5000, "deep"),
    (
        orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "s",
                        "shape": [1],
                        "datatype": "BYTES",
                        "parameters": {"content_type": "str", "binary_data_size": 5},
                    }
                ]
            }
        ),
        "non-UTF-8 str",
    ),
]


@pytest.mark.parametrize(("body", "what"), BAD, ids=[w for _, w in BAD])
def test_bad_input_is_400_with_a_sentence(v2: Harness, body: bytes, what: str) -> None:
    headers = {}
    if what == "non-UTF-8 str":
        headers = {"Inference-Header-Content-Length": str(len(body))}
        body += struct.pack("<I", 1) + b"\xff"
    error_of(v2.post(INFER, content=body, headers=headers), 400)


def test_too_large_is_413(model: Any) -> None:
    h = model("V2Model", max_body_size=100)
    body = orjson.dumps({"inputs": [{**FP32, "shape": [100], "data": list(range(100))}]})
    assert "max-body-size" in error_of(h.post(INFER, content=body), 413)


# ----------------------------------------------------------------------------- metrics


def test_requests_are_counted_as_v2_infer(v2: Harness) -> None:
    infer(v2, FP32)
    v2.get("/v2/health/ready")
    infer(v2, FP32, path="/v2/models/nope/infer")
    v2.post("/predict", json={"data": {"ndarray": [[1]]}})
    assert v2.accounting_metrics.finished == [
        ("infer", "v2", "200"),
        ("server_ready", "v2", "200"),
        ("infer", "v2", "404"),
        ("predict", "rest", "200"),
    ]
    # The model label: the served model's name, none for the server's routes and for a
    # name it does not serve; the Seldon routes are the default model's.
    name = v2.model.name
    assert v2.accounting_metrics.models == [name, "", "", name]
