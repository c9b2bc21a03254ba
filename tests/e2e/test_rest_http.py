"""The REST transport of a real server: every path family answers, flags that shape it
(CORS origins, body size) reach it. The app's behaviour in detail is tested in-process
(tests/unit/test_rest_app.py)."""

from __future__ import annotations

import pytest

from tests.rest_routes import (
    ROUTES,
    Route,
    check_cors_any_origin,
    check_cors_restricted,
    check_route,
)


@pytest.mark.parametrize("route", ROUTES)
def test_routes(serve, route: Route):
    check_route(serve("Identity"), route)


def test_cors_default_any_origin(serve):
    server = serve("Identity")
    check_cors_any_origin(server, server.client.options)


def test_cors_restricted_origins(fresh_server):
    check_cors_restricted(
        fresh_server("Identity", "--cors-origins", "http://good.test", grpc=False)
    )


def test_body_size_limit_413(fresh_server):
    server = fresh_server("Identity", "--max-body-size", "1K", grpc=False)
    r = server.post("/predict", json={"strData": "x" * 2000})
    assert r.status_code == 413
    assert "--max-body-size" in r.json()["status"]["info"]
    assert server.post("/predict", json={"strData": "x" * 100}).status_code == 200
