"""The Seldon REST routes and what each answers, in one table that both the in-process
tests of the app (tests/unit/test_rest_app.py) and the real server's tests
(tests/e2e/test_rest_http.py) go through, so that the two cannot drift apart.

A server here is anything with httpx-like ``get`` and ``post``: the in-process harness or
a real server on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest

DATA = {"data": {"ndarray": [[1.0, 2.0]]}}
OK_BODY = {"data": {"names": ["t:0", "t:1"], "ndarray": [[1.0, 2.0]]}, "meta": {}}

#: The Seldon operations the OpenAPI document (/seldon.json) must describe.
OPENAPI_PATHS = frozenset(
    {
        "/predict",
        "/aggregate",
        "/route",
        "/send-feedback",
        "/transform-input",
        "/transform-output",
    }
)


class Server(Protocol):
    def get(self, path: str, **kw: Any) -> httpx.Response: ...

    def post(self, path: str, **kw: Any) -> httpx.Response: ...


@dataclass(frozen=True)
class Route:
    """One request to the Identity fixture and the answer it must get."""

    method: str
    path: str
    send: dict[str, Any] = field(default_factory=dict)  # httpx keyword arguments
    status: int = 200
    json: Any = None  # the whole JSON body, when given
    text: str | None = None  # the whole text body, when given
    check: Callable[[httpx.Response], None] | None = None  # anything more


def _not_found(r: httpx.Response) -> None:
    assert r.json()["status"]["reason"] == "MICROSERVICE_NOT_FOUND"
    assert r.json()["status"]["code"] == -1


def _openapi(r: httpx.Response) -> None:
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= OPENAPI_PATHS


ROUTES = [
    *(
        pytest.param(Route("POST", path, {"json": DATA}, json=OK_BODY), id=path)
        for path in ("/predict", "/api/v1.0/predictions", "/api/v0.1/predictions")
    ),
    pytest.param(Route("GET", "/health/ping", text="pong"), id="/health/ping"),
    pytest.param(Route("GET", "/live", json={"status": "alive"}), id="/live"),
    pytest.param(Route("GET", "/ready", json={"status": "ready"}), id="/ready"),
    pytest.param(Route("GET", "/seldon.json", check=_openapi), id="/seldon.json"),
    pytest.param(Route("GET", "/nope", status=404, check=_not_found), id="unknown-404"),
]


def check_route(server: Server, route: Route) -> None:
    send = server.get if route.method == "GET" else server.post
    r = send(route.path, **route.send)
    assert r.status_code == route.status, r.text
    if route.json is not None:
        assert r.json() == route.json
    if route.text is not None:
        assert r.text == route.text
    if route.check is not None:
        route.check(r)


def check_cors_any_origin(server: Server, preflight: Callable[..., httpx.Response]) -> None:
    """Without --cors-origins any origin is allowed; `preflight(path, headers=...)`
    sends an OPTIONS request."""
    assert server.post("/predict", json=DATA).headers["access-control-allow-origin"] == "*"
    r = server.post("/predict", json=DATA, headers={"Origin": "http://a.test"})
    assert r.headers["access-control-allow-origin"] == "http://a.test"
    r = preflight(
        "/predict", headers={"Origin": "http://a.test", "Access-Control-Request-Method": "POST"}
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://a.test"
    assert "POST" in r.headers["access-control-allow-methods"]


def check_cors_restricted(server: Server) -> None:
    """With --cors-origins http://good.test only that origin is allowed."""
    r = server.post("/predict", json=DATA, headers={"Origin": "http://good.test"})
    assert r.headers["access-control-allow-origin"] == "http://good.test"
    r = server.post("/predict", json=DATA, headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in r.headers
    assert "access-control-allow-origin" not in server.post("/predict", json=DATA).headers
