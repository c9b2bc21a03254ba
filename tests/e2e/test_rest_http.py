"""The REST transport of a real server: every path family answers, flags that shape it
(CORS origins, body size) reach it. The app's behaviour in detail is tested in-process
(tests/unit/test_rest_app.py)."""

from __future__ import annotations

import pytest

DATA = {"data": {"ndarray": [[1.0, 2.0]]}}
OK_BODY = {"data": {"names": ["t:0", "t:1"], "ndarray": [[1.0, 2.0]]}, "meta": {}}


@pytest.mark.parametrize("path", ["/predict", "/api/v1.0/predictions", "/api/v0.1/predictions"])
def test_predict_paths(serve, path):
    r = serve("Identity").post(path, json=DATA)
    assert (r.status_code, r.json()) == (200, OK_BODY)


def test_health_ping_is_pong(serve):
    r = serve("Identity").get("/health/ping")
    assert (r.status_code, r.text) == (200, "pong")


def test_live_and_ready(serve):
    server = serve("Identity")
    assert server.get("/live").json() == {"status": "alive"}
    assert server.get("/ready").json() == {"status": "ready"}


def test_seldon_json_is_openapi(serve):
    doc = serve("Identity").get("/seldon.json").json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/predict",
        "/aggregate",
        "/route",
        "/send-feedback",
        "/transform-input",
        "/transform-output",
    } <= set(doc["paths"])


def test_unknown_path_is_404_json(serve):
    r = serve("Identity").get("/nope")
    assert r.status_code == 404
    assert r.json()["status"]["reason"] == "MICROSERVICE_NOT_FOUND"
    assert r.json()["status"]["code"] == -1


def test_cors_default_any_origin(serve):
    server = serve("Identity")
    assert server.post("/predict", json=DATA).headers["access-control-allow-origin"] == "*"
    r = server.post("/predict", json=DATA, headers={"Origin": "http://a.test"})
    assert r.headers["access-control-allow-origin"] == "http://a.test"
    r = server.client.options(
        "/predict", headers={"Origin": "http://a.test", "Access-Control-Request-Method": "POST"}
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://a.test"
    assert "POST" in r.headers["access-control-allow-methods"]


def test_cors_restricted_origins(fresh_server):
    server = fresh_server("Identity", "--cors-origins", "http://good.test", grpc=False)
    r = server.post("/predict", json=DATA, headers={"Origin": "http://good.test"})
    assert r.headers["access-control-allow-origin"] == "http://good.test"
    r = server.post("/predict", json=DATA, headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in server.post("/predict", json=DATA).headers


def test_body_size_limit_413(fresh_server):
    server = fresh_server("Identity", "--max-body-size", "1K", grpc=False)
    r = server.post("/predict", json={"strData": "x" * 2000})
    assert r.status_code == 413
    assert "--max-body-size" in r.json()["status"]["info"]
    assert server.post("/predict", json={"strData": "x" * 100}).status_code == 200
