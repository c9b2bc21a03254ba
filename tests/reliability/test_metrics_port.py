"""What the metrics port gives away, and whether anyone can keep it from answering
(see docs/security.md).

Request data must not reach the Prometheus exposition: our own request metrics are
labelled with a fixed set of values (operation, protocol, status code, worker slot),
never with a path, a payload, a name or a tag a client sent. User metrics carry the
tags the user's code chooses; a raw method that hands the request's own
``meta.metrics`` back echoes them without recording them.
"""

from __future__ import annotations

import socket

import httpx

from ..e2e.metrics_text import samples
from .helpers import grpc_predict_json, scrape, wait_until

SECRET = "s3cr3t-payload-7f1c"


def test_request_data_never_reaches_the_metrics_port(fresh_server):
    server = fresh_server("Tagged")
    body = {
        "strData": SECRET,
        "meta": {
            "puid": f"puid-{SECRET}",
            "tags": {f"tag_{SECRET[:6]}": SECRET},
            "metrics": [{"type": "COUNTER", "key": f"client_{SECRET[:6]}", "value": 1}],
        },
    }
    names = {"data": {"names": [f"feature-{SECRET}"], "ndarray": [[1.0]]}}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/predict", json=body).status_code == 200
        assert client.post("/predict", json=names).status_code == 200
        assert client.post(f"/predict?json=%7B%22strData%22%3A%22{SECRET}%22%7D").is_success
        assert client.get(f"/{SECRET}").status_code == 404  # an unknown path
        assert client.post("/predict", content=SECRET.encode()).status_code == 400  # bad body
        assert client.post("/predict", headers={"x-" + SECRET: SECRET}, json=names).is_success
    assert "strData" in grpc_predict_json(server.grpc_target, body)
    # Our request metrics reach the endpoint within a fraction of a second: wait for them.
    wait_until(lambda: 'code="404"' in scrape(server))
    text = scrape(server)
    assert SECRET not in text and SECRET[:6] not in text
    assert "tagged_calls_total" in text  # the user's own metrics are there
    # Our labels take values from fixed sets: an unknown path is "unknown", not its path.
    operations = {labels["operation"] for name, labels, _ in samples(text) if "operation" in labels}
    assert {"predict", "unknown"} <= operations <= {"predict", "unknown", "ready"}, operations


def test_a_client_cannot_create_metric_series(fresh_server):
    server = fresh_server("EchoRaw", grpc=False)
    for i in range(3):
        metric = {"type": "GAUGE", "key": "client_chosen", "value": i, "tags": {"x": SECRET}}
        r = httpx.post(
            f"{server.url}/transform-input",
            json={"strData": "x", "meta": {"metrics": [metric]}},
            timeout=10,
        )
        assert r.status_code == 200, r.text
    wait_until(lambda: 'operation="transform_input"' in scrape(server))
    assert "client_chosen" not in scrape(server)


def test_idle_connections_do_not_hold_up_scrapes(fresh_server):
    server = fresh_server("Identity", grpc=False)
    idle = [socket.create_connection(("127.0.0.1", server.metrics_port)) for _ in range(10)]
    try:
        # A client timeout well below the 20 s the ten idle connections cost today.
        r = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5)
        assert r.status_code == 200
    finally:
        for sock in idle:
            sock.close()
