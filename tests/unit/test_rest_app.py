"""Paths, methods, request encodings, CORS and error shapes of the REST app, in-process
(the ASGI app driven by httpx, no socket)."""

from __future__ import annotations

import json

import pytest

DATA = {"data": {"ndarray": [[1.0, 2.0]]}}
OK_BODY = {"data": {"names": ["t:0", "t:1"], "ndarray": [[1.0, 2.0]]}, "meta": {}}


@pytest.mark.parametrize("path", ["/predict", "/api/v1.0/predictions", "/api/v0.1/predictions"])
def test_predict_paths(model, path):
    r = model("Identity").post(path, json=DATA)
    assert (r.status_code, r.json()) == (200, OK_BODY)


@pytest.mark.parametrize("path", ["/predict", "/transform-input", "/transform-output"])
def test_get_with_query_json(model, path):
    r = model("Identity").get(path, params={"json": json.dumps(DATA)})
    assert (r.status_code, r.json()) == (200, OK_BODY)


def test_form_json_field(model):
    r = model("Identity").post("/predict", data={"json": json.dumps(DATA)})
    assert (r.status_code, r.json()) == (200, OK_BODY)


def test_query_wins_over_body(model):
    r = model("Identity").post(
        "/predict", params={"json": '{"strData": "query"}'}, json={"strData": "body"}
    )
    assert r.json()["strData"] == "query"


def test_multipart_fields_and_files(model):
    server = model("Inspector")
    r = server.post("/predict", files={"strData": (None, "hello multipart")})
    assert r.json()["jsonData"]["X"] == {"type": "str", "value": "hello multipart"}
    r = server.post("/predict", files={"binData": ("img.png", b"\x89PNG\x00\xff")})
    assert r.json()["jsonData"]["X"] == {"type": "bytes", "b64": "iVBORwD/"}
    r = server.post(
        "/predict",
        files={
            "data": (None, json.dumps({"ndarray": [[1, 2]]})),
            "meta": (None, json.dumps({"tags": {"m": "p"}})),
        },
    )
    assert r.json()["jsonData"]["X"]["value"] == [[1, 2]]
    assert r.json()["jsonData"]["meta"] == {"tags": {"m": "p"}}


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/octet-stream", None, "application/json; charset=utf-8"],
)
def test_json_body_parsed_whatever_the_content_type(model, content_type):
    headers = {"content-type": content_type} if content_type else {}
    r = model("Identity").post("/predict", content=json.dumps(DATA).encode(), headers=headers)
    assert (r.status_code, r.json()) == (200, OK_BODY)


def test_health_ping_is_pong(model):
    r = model("Identity").get("/health/ping")
    assert (r.status_code, r.text) == (200, "pong")


def test_live_and_ready(model):
    server = model("Identity")
    assert server.get("/live").json() == {"status": "alive"}
    assert server.get("/ready").json() == {"status": "ready"}


def test_seldon_json_is_openapi(model):
    doc = model("Identity").get("/seldon.json").json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/predict",
        "/aggregate",
        "/route",
        "/send-feedback",
        "/transform-input",
        "/transform-output",
    } <= set(doc["paths"])


def test_head_answers_without_body(model):
    r = model("Identity").request("HEAD", "/health/ping")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == "4"


def test_unknown_path_is_404_json(model):
    r = model("Identity").get("/nope")
    assert r.status_code == 404
    assert r.json()["status"]["reason"] == "MICROSERVICE_NOT_FOUND"
    assert r.json()["status"]["code"] == -1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/predict"),
        ("POST", "/health/ping"),
        ("GET", "/api/v1.0/predictions"),
        ("DELETE", "/metadata"),
    ],
)
def test_wrong_method_is_405_json_with_allow(model, method, path):
    r = model("Identity").request(method, path)
    assert r.status_code == 405
    assert r.json()["status"]["reason"] == "MICROSERVICE_METHOD_NOT_ALLOWED"
    assert "OPTIONS" in r.headers["allow"]


def test_cors_default_any_origin(model):
    server = model("Identity")
    assert server.post("/predict", json=DATA).headers["access-control-allow-origin"] == "*"
    r = server.post("/predict", json=DATA, headers={"Origin": "http://a.test"})
    assert r.headers["access-control-allow-origin"] == "http://a.test"
    r = server.request(
        "OPTIONS",
        "/predict",
        headers={"Origin": "http://a.test", "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://a.test"
    assert "POST" in r.headers["access-control-allow-methods"]


def test_cors_restricted_origins(model):
    server = model("Identity", cors_origins="http://good.test")
    r = server.post("/predict", json=DATA, headers={"Origin": "http://good.test"})
    assert r.headers["access-control-allow-origin"] == "http://good.test"
    r = server.post("/predict", json=DATA, headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in server.post("/predict", json=DATA).headers


BAD_REQUESTS = [
    ("malformed JSON", b'{"data": ', "Can't find JSON in data"),
    ("empty body", b"", "Can't find JSON in data"),
    ("body is a list", b"[1, 2]", "Invalid request data type: [1, 2]"),
    ("body is a string", b'"hello"', "Invalid request data type: hello"),
    ("no payload key", b'{"foo": 1}', "Invalid request data type: {'foo': 1}"),
    ("data not an object", b'{"data": 5}', "data must be an object"),
    ("meta not an object", b'{"meta": "x", "data": {"ndarray": [1]}}', "meta must be"),
    ("ragged ndarray", b'{"data": {"ndarray": [[1, 2], [3]]}}', "not a rectangular array"),
    (
        "tensor count mismatch",
        b'{"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3]}}}',
        "has 3 values but shape [2, 2] needs 4",
    ),
    ("tensor without shape", b'{"data": {"tensor": {"values": [1, 2]}}}', "shape must be"),
    (
        "tensor negative shape",
        b'{"data": {"tensor": {"shape": [-1], "values": []}}}',
        "shape must be",
    ),
    (
        "tensor values not a list",
        b'{"data": {"tensor": {"shape": [1], "values": 3}}}',
        "values must be a list",
    ),
    ("names not a list", b'{"data": {"names": "a", "ndarray": [1]}}', "names must be a list"),
    ("bad base64", b'{"binData": "abc"}', "binData is not valid base64"),
    ("non-alphabet base64", b'{"binData": "###"}', "binData is not valid base64"),
    ("binData not a string", b'{"binData": 5}', "binData must be a base64 string"),
    ("strData not a string", b'{"strData": 5}', "strData must be a string"),
    ("huge number", b'{"data": {"ndarray": [1e999]}}', "Can't find JSON in data"),
    (
        "deep nesting",
        b'{"jsonData": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "JSON nested deeper than 200 levels",
    ),
    ("invalid utf-8", b'{"strData": "\xff\xfe"}', "Can't find JSON in data"),
]


@pytest.mark.parametrize(("what", "body", "info"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_are_400_with_json_reason(model, what, body, info):
    r = model("Identity").post(
        "/predict", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    status = r.json()["status"]
    assert status["reason"] == "MICROSERVICE_BAD_DATA"
    assert info in status["info"]
    assert (status["code"], status["status"]) == (-1, 1)


def test_bad_form_and_query_json_are_400(model):
    server = model("Identity")
    assert server.post("/predict", data={"json": "{bad"}).status_code == 400
    assert server.get("/predict", params={"json": "{bad"}).status_code == 400
    r = server.post("/predict", files={"data": (None, "not json")})
    assert r.status_code == 400 and "multipart field 'data'" in r.json()["status"]["info"]


def test_body_size_limit_413(model):
    server = model("Identity", max_body_size=1024)
    r = server.post("/predict", json={"strData": "x" * 2000})
    assert r.status_code == 413
    assert "--max-body-size" in r.json()["status"]["info"]
    assert server.post("/predict", json={"strData": "x" * 100}).status_code == 200
