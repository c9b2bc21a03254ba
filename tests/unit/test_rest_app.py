"""Paths, methods, request encodings, CORS and error shapes of the REST app, in-process
(the ASGI app driven by httpx, no socket)."""

from __future__ import annotations

import json

import pytest

from tests.rest_routes import (
    DATA,
    OK_BODY,
    ROUTES,
    Route,
    check_cors_any_origin,
    check_cors_restricted,
    check_route,
)


@pytest.mark.parametrize("route", ROUTES)
def test_routes(model, route: Route):
    check_route(model("Identity"), route)


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


def test_head_answers_without_body(model):
    r = model("Identity").request("HEAD", "/health/ping")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == "4"


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
    check_cors_any_origin(server, lambda path, **kw: server.request("OPTIONS", path, **kw))


def test_cors_restricted_origins(model):
    check_cors_restricted(model("Identity", cors_origins="http://good.test"))


def test_a_component_has_no_routes_naming_a_member(model):
    """One model's metadata and status by name are a deployment's routes (a graph's)."""
    server = model("Identity")
    for path in ("/api/v1.0/metadata/x", "/api/v1.0/status/x"):
        r = server.get(path)
        assert r.status_code == 404 and r.json()["status"]["reason"] == "MICROSERVICE_NOT_FOUND"
