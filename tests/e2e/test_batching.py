"""Adaptive batching on a real server: answers reach the right clients under load on
both transports, the batch metrics, and a SIGTERM that answers queued requests."""

from __future__ import annotations

import concurrent.futures
import functools
import json
import signal

import httpx

from ..conftest import wait_until
from .grpc_client import call_json
from .metrics_text import total


def scrape(server) -> str:
    return httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text


def scrape_once(server, metric: str, at_least: float, **labels: str) -> str:
    """The metrics text, once `metric` (summed over the series with `labels`) reaches
    `at_least`: metrics are counted after the answer is sent."""

    def reached() -> str | None:
        text = scrape(server)
        return text if total(text, metric, **labels) >= at_least else None

    return wait_until(reached)


def test_64_clients_each_get_their_own_answer(serve):
    server = serve("Batched", "--max-batch-size", "64", "--max-batch-time", "5")

    def rest_client(i: int) -> list[bool]:
        ok = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for round_ in range(5):
                x = [[i, round_, i * 1000 + round_]]
                r = client.post("/api/v1.0/predictions", json={"data": {"ndarray": x}})
                ok.append(
                    r.status_code == 200 and r.json()["data"]["ndarray"] == [[2 * v for v in x[0]]]
                )
        return ok

    def grpc_client(i: int) -> list[bool]:
        ok = []
        for round_ in range(5):
            x = [[float(i), float(round_)]]
            answer = call_json(server.grpc_target, "Model/Predict", {"data": {"ndarray": x}})
            ok.append(answer["data"]["ndarray"] == [[2.0 * v for v in x[0]]])
        return ok

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        futures = [pool.submit(rest_client if i % 2 else grpc_client, i) for i in range(64)]
        results = [f.result() for f in futures]
    assert all(all(r) and len(r) == 5 for r in results)

    text = scrape_once(server, "unitserve_requests_total", 320, operation="predict")
    calls = total(text, "unitserve_batch_size_count", operation="predict")
    rows = total(text, "unitserve_batch_size_sum", operation="predict")
    assert rows == 320 and 0 < calls < 320  # some calls held several requests
    assert total(text, "unitserve_batch_wait_seconds_count", operation="predict") == 320
    # every batch was the served model's (named after its class)
    assert total(text, "unitserve_batch_size_sum", model="Batched") == 320


def test_a_lone_request_does_not_wait_but_company_does(fresh_server):
    # --max-batch-time 10 s: a lone request answered within the client's 8 s went at
    # once. Each call takes two seconds, so that two requests sent while the first runs
    # find another in flight: they wait for each other and fill a batch of two.
    delay = json.dumps([{"name": "delay", "value": "2", "type": "FLOAT"}])
    server = fresh_server(
        "Batched", "--max-batch-size", "2", "--max-batch-time", "10000", "--parameters", delay
    )
    one = {"data": {"ndarray": [[3]]}}
    r = httpx.post(f"{server.url}/api/v1.0/predictions", json=one, timeout=8)
    assert r.status_code == 200 and r.json()["data"]["ndarray"] == [[6]]
    answer = call_json(
        server.grpc_target, "Model/Predict", {"data": {"ndarray": [[2.0]]}}, timeout=8
    )
    assert answer["data"]["ndarray"] == [[4.0]]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        post = functools.partial(httpx.post, f"{server.url}/predict", json=one, timeout=30)
        first = pool.submit(post)
        wait_until(lambda: total(scrape(server), "unitserve_requests_in_flight") >= 1, timeout=20)
        later = [pool.submit(post) for _ in range(2)]
        answers = [f.result() for f in [first, *later]]
    assert all(a.status_code == 200 and a.json()["data"]["ndarray"] == [[6]] for a in answers)

    text = scrape_once(server, "unitserve_batch_size_count", 4, operation="predict")
    # Five requests in four calls: alone, alone (gRPC), alone, then the two together.
    assert total(text, "unitserve_batch_size_count", operation="predict") == 4
    assert total(text, "unitserve_batch_size_sum", operation="predict") == 5


def test_sigterm_answers_queued_requests(fresh_server):
    # A batch that would wait 30 s for more requests: the stop sends it at once. Each
    # call takes two seconds, so that the first request (alone, it goes at once) is still
    # running when the others arrive: they then wait for company.
    delay = json.dumps([{"name": "delay", "value": "2", "type": "FLOAT"}])
    server = fresh_server(
        "Batched", "--max-batch-size", "64", "--max-batch-time", "30000", "--parameters", delay
    )
    one = {"data": {"ndarray": [[3]]}}
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        futures = [
            pool.submit(httpx.post, f"{server.url}/predict", json=one, timeout=60) for _ in range(5)
        ]
        wait_until(lambda: total(scrape(server), "unitserve_requests_in_flight") >= 5, timeout=20)
        server.signal(signal.SIGTERM)
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 5
    assert all(a.json()["data"]["ndarray"] == [[6]] for a in answers)
    assert server.proc.wait(30) == 0


def test_tritonclient_concurrent_inference_is_batched(serve):
    from .test_v2_clients import run_client

    # Each call takes 0.3 s, so the requests overlap however slowly the client sends them
    # (a lone request goes at once; the ones arriving while it runs wait for company).
    delay = json.dumps([{"name": "delay", "value": "0.3", "type": "FLOAT"}])
    server = serve(
        "Batched", "--max-batch-size", "32", "--max-batch-time", "20", "--parameters", delay
    )
    seen = run_client("tritonclient", "triton_batching.py", server.url, "Batched")
    assert seen["same"] == [True] * 32

    text = scrape_once(server, "unitserve_batch_size_sum", 32, operation="infer")
    assert total(text, "unitserve_batch_size_count", operation="infer") < 32
