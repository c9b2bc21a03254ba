"""Errors as a client sees them, in-process: HTTP status, Seldon's JSON error body with
its reason, the gRPC code and details."""

from __future__ import annotations

import base64

import grpc
import pytest

from unitserve import SeldonMicroserviceException

from .engine_harness import RpcError

ONE = {"data": {"ndarray": [[1]]}}


def error_status(response):
    """The body's status object, checked to have exactly Seldon's shape."""
    body = response.json()
    assert set(body) == {"status"}, body
    status = body["status"]
    assert set(status) == {"code", "info", "reason", "status"}, status
    assert (status["code"], status["status"]) == (-1, 1), status
    assert response.headers["content-type"] == "application/json"
    return status


def test_user_exceptions(model):
    server = model("Failing")
    r = server.post("/predict", json={"data": {"names": ["seldon"], "ndarray": [1]}})
    assert r.status_code == 403
    assert r.json() == {
        "status": {"code": -1, "info": "not for you", "reason": "FORBIDDEN", "status": 1}
    }
    r = server.post("/predict", json={"data": {"names": ["default"], "ndarray": [1]}})
    assert (r.status_code, r.json()["status"]["reason"]) == (400, "MICROSERVICE_BAD_DATA")
    r = server.post("/predict", json=ONE)
    assert r.status_code == 500
    assert r.json()["status"] == {
        "code": -1,
        "info": "predict failed on purpose",
        "reason": "MICROSERVICE_INTERNAL_ERROR",
        "status": 1,
    }
    assert server.post("/aggregate", json=[ONE]).status_code == 500
    assert "Traceback" not in r.text


@pytest.mark.parametrize(
    ("path", "body", "info"),
    [
        ("/transform-input", ONE, "transform_input failed on purpose"),
        ("/aggregate", [ONE], "aggregate failed on purpose"),
    ],
)
def test_every_operation_answers_user_errors_alike(model, path, body, info):
    r = model("Failing").post(path, json=body)
    assert r.status_code == 500
    assert error_status(r) == {
        "code": -1,
        "info": info,
        "reason": "MICROSERVICE_INTERNAL_ERROR",
        "status": 1,
    }


def test_exception_with_a_payload_and_no_reason(model):
    class Teapot:
        def predict(self, X, names):
            raise SeldonMicroserviceException("short and stout", status_code=418)

    r = model(Teapot()).post("/predict", json=ONE)
    assert r.status_code == 418
    assert error_status(r)["info"] == "short and stout"


def test_flask_blueprint_error_handler(model):
    server = model("ErrorHandler")
    r = server.post("/predict", json={"data": {"names": ["pay"], "ndarray": [1]}})
    assert r.status_code == 402
    assert r.json() == {"status": {"app_code": 1402, "message": "pay first"}}
    r = server.post("/predict", json={"data": {"names": ["plain"], "ndarray": [1]}})
    assert r.status_code == 500 and r.json()["status"]["info"] == "unhandled"
    assert server.post("/predict", json=ONE).status_code == 200


def test_bindata_multipart_roundtrip(model):
    r = model("Identity").post("/predict", files={"binData": ("x.bin", b"\x00\xff")})
    assert base64.b64decode(r.json()["binData"]) == b"\x00\xff"


def test_unknown_path_body(model):
    r = model("Identity").post("/nope/predict", json=ONE)
    assert r.status_code == 404
    assert error_status(r) == {
        "code": -1,
        "info": "Not Found: /nope/predict",
        "reason": "MICROSERVICE_NOT_FOUND",
        "status": 1,
    }


def test_wrong_method_body_and_allow(model):
    r = model("Identity").request("PUT", "/predict")
    assert r.status_code == 405
    assert error_status(r)["info"] == (
        "Method Not Allowed: PUT /predict (allowed: GET, HEAD, OPTIONS, POST)"
    )
    assert r.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    r = model("Identity").request("POST", "/health/ping")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"


def test_options_lists_the_allowed_methods(model):
    r = model("Identity").request("OPTIONS", "/api/v1.0/predictions")
    assert (r.status_code, r.content) == (200, b"")
    assert r.headers["allow"] == "OPTIONS, POST"


def test_head_on_a_json_route_has_no_body(model):
    r = model("Identity").request("HEAD", "/live")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(b'{"status":"alive"}\n'))


def test_chunked_body_over_the_limit_is_413(model):
    async def chunks():
        for _ in range(4):
            yield b"x" * 400

    r = model("Identity", max_body_size=1024).post("/predict", content=chunks())
    assert r.status_code == 413
    assert error_status(r)["info"] == (
        "request body is larger than the limit of 1024 bytes (--max-body-size)"
    )


def test_unserialisable_answer_is_500_without_internals(model):
    r = model("Returns").post("/predict", json={"data": {"names": ["complex"], "ndarray": [[1]]}})
    status = error_status(r)
    assert r.status_code == 500 and status["reason"] == "MICROSERVICE_INTERNAL_ERROR"
    assert "Traceback" not in status["info"]


def test_not_ready_is_503_and_ping_still_answers(model):
    server = model("Identity")
    server.model.state.mark_failed("load() of Identity failed: this worker cannot serve")
    r = server.get("/ready")
    assert r.status_code == 503
    assert error_status(r) == {
        "code": -1,
        "info": "load() of Identity failed: this worker cannot serve",
        "reason": "MICROSERVICE_NOT_READY",
        "status": 1,
    }
    assert server.post("/predict", json=ONE).status_code == 503
    assert server.get("/health/ping").text == "pong"
    assert server.get("/live").status_code == 200


@pytest.mark.parametrize(
    ("name", "rpc", "request_json", "code"),
    [
        (
            "Router",
            "Router/Route",
            {"data": {"names": ["float"], "ndarray": [1]}},
            "INVALID_ARGUMENT",
        ),
        ("Combiner", "Generic/Aggregate", {"seldonMessages": []}, "INVALID_ARGUMENT"),
        ("Combiner", "Model/Predict", {"strData": "x"}, "OK"),
        ("Failing", "Generic/TransformInput", {"strData": "x"}, "INTERNAL"),
    ],
)
def test_grpc_codes_of_engine_errors(model, name, rpc, request_json, code):
    try:
        model(name).call(rpc, request_json)
        got = "OK"
    except RpcError as exc:
        got = exc.code.name
    assert got == code


def test_grpc_undecodable_feedback_is_internal(model):
    with pytest.raises(RpcError) as err:
        model("Router").call_bytes("Model/SendFeedback", b"\xff\xff\xff")
    assert (err.value.code, err.value.details) == (
        grpc.StatusCode.INTERNAL,
        "Exception deserializing request!",
    )


def test_grpc_negative_reward_is_accepted(model):
    # reward -1.0 as a float32 field 3 (fixed32): what a client sends for a penalty
    server = model("Router")
    server.call_bytes("Model/SendFeedback", b"\x1d\x00\x00\x80\xbf")
    assert server.recorder.rewards == [-1.0]
