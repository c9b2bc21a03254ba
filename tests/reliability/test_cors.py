"""CORS preflight for what browsers really send (see docs/security.md).

tests/e2e/test_rest_http.py checks the allowed origin and methods. A browser's
``fetch`` of a JSON POST from another origin also asks, in its preflight, whether
it may send the ``Content-Type`` header (``application/json`` is not one of the
"simple" values): without ``Access-Control-Allow-Headers`` naming it, the browser
refuses to send the request at all.
"""

from __future__ import annotations

import pytest

PREFLIGHT = {
    "Origin": "http://app.test",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type",
}


@pytest.mark.parametrize("origins", ["*", "http://app.test"])
def test_preflight_allows_the_json_content_type(fresh_server, origins):
    server = fresh_server("Identity", "--cors-origins", origins, grpc=False)
    r = server.client.options("/api/v1.0/predictions", headers=PREFLIGHT)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://app.test"
    allowed = r.headers.get("access-control-allow-headers", "")
    assert "content-type" in allowed.lower() or allowed == "*"


def test_preflight_from_an_unlisted_origin_gets_no_cors_headers(fresh_server):
    server = fresh_server("Identity", "--cors-origins", "http://app.test", grpc=False)
    r = server.client.options(
        "/api/v1.0/predictions", headers={**PREFLIGHT, "Origin": "http://evil.test"}
    )
    assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers
