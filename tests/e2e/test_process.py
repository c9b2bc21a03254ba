"""Process model: workers, load(), honest health, supervision, graceful shutdown, metrics."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import threading
import time

import httpx
import pytest

from ..conftest import wait_until
from .grpc_client import call_json
from .metrics_text import samples, total

ONE = {"data": {"ndarray": [[1]]}}


def scrape(server, path="/metrics") -> str:
    r = httpx.get(f"http://127.0.0.1:{server.metrics_port}{path}", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def scrape_when(server, predicate, timeout=30.0) -> str:
    """The exposition once `predicate(text)` holds (request metrics are written a few
    times a second)."""

    def check():
        text = scrape(server)
        return text if predicate(text) else None

    return wait_until(check, timeout)


def worker_pids(server) -> dict[str, str]:
    return {
        labels["worker_id"]: labels["pid"]
        for name, labels, _ in samples(scrape(server))
        if name == "unitserve_worker_info"
    }


def wait_for_workers(server, count=2, replacing=()) -> dict[str, str]:
    """{worker_id: pid} once `count` workers run, none of them with a pid in `replacing`."""

    def check():
        pids = worker_pids(server)
        fresh = len(pids) == count and not set(pids.values()) & set(replacing)
        return pids if fresh else None

    return wait_until(check)


def test_two_workers_serve_rest_and_grpc(fresh_server):
    server = fresh_server("Identity", "--workers", "2")
    wait_until(lambda: len(worker_pids(server)) == 2)
    assert len(set(worker_pids(server).values())) == 2

    def workers_that_served(protocol):
        for _ in range(20):  # new connections, until the kernel has given some to each worker
            if protocol == "rest":
                assert httpx.post(f"{server.url}/predict", json=ONE).status_code == 200
            else:
                assert call_json(server.grpc_target, "Model/Predict", ONE)["meta"] == {}
        return {
            labels["worker_id"]
            for name, labels, _ in samples(scrape(server))
            if name == "unitserve_requests_total" and labels["protocol"] == protocol
        }

    for protocol in ("rest", "grpc"):
        wait_until(
            # mypy cannot infer a lambda's type from its default argument
            lambda protocol=protocol: workers_that_served(protocol) == {"0", "1"},  # type: ignore[misc]
            timeout=60,
            every=0,
        )


def test_load_runs_once_per_worker(fresh_server, tmp_path):
    params = json.dumps([{"name": "directory", "value": str(tmp_path), "type": "STRING"}])
    server = fresh_server("LoadRecorder", "--workers", "2", "--parameters", params)
    wait_until(lambda: len(worker_pids(server)) == 2)
    loads = sorted(p.name.split("-")[1] for p in tmp_path.iterdir())
    assert loads == sorted(worker_pids(server).values())


def test_preload_loads_once_in_the_supervisor(fresh_server, tmp_path):
    params = json.dumps([{"name": "directory", "value": str(tmp_path), "type": "STRING"}])
    server = fresh_server("LoadRecorder", "--workers", "2", "--preload", "--parameters", params)
    wait_until(lambda: len(worker_pids(server)) == 2)
    loads = [p.name.split("-")[1] for p in tmp_path.iterdir()]
    assert loads == [str(server.proc.pid)]


def test_slow_predict_does_not_delay_probes(fresh_server):
    server = fresh_server(
        "Slow", "--parameters", '[{"name": "seconds", "value": "2", "type": "STRING"}]', grpc=False
    )
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.post, f"{server.url}/predict", json=ONE, timeout=30)
        wait_until(
            lambda: total(scrape(server), "unitserve_requests_in_flight", protocol="rest") >= 1
        )
        started = time.monotonic()
        for path in ("/health/ping", "/live", "/ready"):
            assert httpx.get(f"{server.url}{path}", timeout=5).status_code == 200
        probes = time.monotonic() - started
        assert not slow.done()
        assert slow.result().status_code == 200
    assert probes < 1.0, f"probes took {probes:.3f}s while predict was running"


def test_ready_is_503_until_load_finishes(fresh_server):
    server = fresh_server(
        "SlowLoad",
        "--parameters",
        '[{"name": "seconds", "value": "3", "type": "STRING"}]',
        wait="/live",
    )
    r = httpx.get(f"{server.url}/ready")
    assert r.status_code == 503
    assert r.json()["status"]["reason"] == "MICROSERVICE_NOT_READY"
    assert httpx.get(f"{server.url}/health/ping").text == "pong"
    # a prediction sent during load() waits for it instead of failing
    answer = httpx.post(f"{server.url}/predict", json={"strData": ""}, timeout=30)
    assert answer.json()["jsonData"] == {"loaded": True}
    assert httpx.get(f"{server.url}/ready").status_code == 200


def test_load_failure_exits_nonzero_with_the_error_logged(fresh_server):
    server = fresh_server("BadLoad", "--workers", "2", wait=None)
    assert server.proc.wait(60) == 1
    log = server.log()
    assert "FileNotFoundError: weights.bin not found" in log
    assert "could not load the model" in log


def test_killed_worker_is_replaced_while_the_other_serves(fresh_server):
    server = fresh_server("Identity", "--workers", "2", grpc=False)
    victim = int(wait_for_workers(server)["0"])
    results: list[int] = []
    stop = threading.Event()

    def load_loop():
        with httpx.Client(timeout=10) as client:
            for _ in range(2000):
                if stop.is_set():
                    return
                try:
                    results.append(client.post(f"{server.url}/predict", json=ONE).status_code)
                except httpx.TransportError:
                    results.append(-1)

    thread = threading.Thread(target=load_loop)
    thread.start()
    wait_until(lambda: len(results) > 50)
    os.kill(victim, signal.SIGKILL)
    new = wait_until(
        lambda: (p := worker_pids(server)).get("0") not in (None, str(victim)) and p["0"]
    )
    before = len(results)
    wait_until(lambda: len(results) > before + 100)
    stop.set()
    thread.join(30)
    assert int(new) != victim
    failures = [r for r in results if r != 200]
    assert len(failures) <= 1, f"{len(failures)} failed requests out of {len(results)}"
    assert "killed by SIGKILL" in server.log()


def test_threads_bound_concurrent_user_calls_across_rest_and_grpc(fresh_server):
    server = fresh_server(
        "Overlap",
        "--threads",
        "2",
        "--grpc-threads",
        "4",
        "--parameters",
        '[{"name": "target", "value": "2", "type": "INT"}]',
    )

    def rest() -> float:
        r = httpx.post(f"{server.url}/predict", json=ONE, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["data"]["ndarray"][0][0]

    def grpc() -> float:
        return call_json(server.grpc_target, "Model/Predict", ONE)["data"]["ndarray"][0][0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(rest if i % 2 else grpc) for i in range(8)]
        most = max(f.result() for f in futures)
    assert most == 2, f"{most} user calls ran at once with --threads 2"


def test_sigterm_lets_50_in_flight_requests_finish(fresh_server, tmp_path):
    # Every request blocks in the user's code until the test releases it, after the
    # SIGTERM: all 50 are in flight when the signal arrives, however slow the machine.
    server = fresh_server(
        "Hang",
        "--workers",
        "2",
        "--threads",
        "25",
        "--parameters",
        json.dumps([{"name": "directory", "value": str(tmp_path), "type": "STRING"}]),
    )
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        futures = [
            pool.submit(httpx.post, f"{server.url}/predict", json={"strData": "hang"}, timeout=60)
            for _ in range(50)
        ]
        wait_until(lambda: total(scrape(server), "unitserve_requests_in_flight") >= 50, timeout=30)
        server.signal(signal.SIGTERM)
        wait_until(lambda: "stopping" in server.log(), timeout=10)
        (tmp_path / "release").touch()
        answers = [f.result() for f in futures]
    assert [a.status_code for a in answers] == [200] * 50
    assert {a.json()["strData"] for a in answers} == {"released"}
    assert server.proc.wait(30) == 0
    assert "stopped" in server.log()


def test_sigterm_finishes_in_flight_grpc(fresh_server):
    server = fresh_server(
        "Slow",
        "--grpc-threads",
        "4",
        "--threads",
        "4",
        "--parameters",
        '[{"name": "seconds", "value": "1", "type": "STRING"}]',
    )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(call_json, server.grpc_target, "Model/Predict", ONE) for _ in range(4)
        ]
        wait_until(
            lambda: total(scrape(server), "unitserve_requests_in_flight", protocol="grpc") >= 4,
            timeout=20,
        )
        server.signal(signal.SIGTERM)
        answers = [f.result() for f in futures]
    assert all(a["data"]["ndarray"] == [[1.0]] for a in answers)
    assert server.proc.wait(30) == 0


def test_metrics_sum_across_workers(fresh_server):
    server = fresh_server("Tagged", "--workers", "2", grpc=False)
    wait_until(lambda: len(worker_pids(server)) == 2)
    for _ in range(30):
        assert httpx.post(f"{server.url}/predict", json=ONE).status_code == 200
    # request metrics reach the shared files within a fraction of a second
    text = scrape_when(
        server,
        lambda t: total(t, "unitserve_requests_total", operation="predict", code="200") == 30,
    )
    assert total(text, "tagged_calls_total", method="predict") == 30
    assert total(text, "tagged_timer_count", method="predict") == 30
    # one HELP/TYPE block per family
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    assert scrape(server, "/prometheus") == scrape(server)
    assert httpx.get(f"http://127.0.0.1:{server.metrics_port}/nope").status_code == 404


def test_series_stay_bounded_over_20_recycles(fresh_server):
    server = fresh_server("Tagged", "--max-requests", "5", "--log-level", "DEBUG", grpc=False)
    counts, sent, restarts = [], 0, 0.0
    with httpx.Client(timeout=30) as client:
        while restarts < 20 and sent < 1000:
            for _ in range(10):
                r = client.post(f"{server.url}/predict", json=ONE, headers={"connection": "close"})
                assert r.status_code == 200, r.text
                sent += 1
            text = scrape(server)
            counts.append(len(samples(text)))
            restarts = total(text, "unitserve_worker_restarts_total", reason="max-requests")
    assert restarts >= 20
    text = scrape_when(
        server, lambda t: total(t, "unitserve_requests_total", operation="predict") == sent
    )
    assert total(text, "tagged_calls_total", method="predict") == sent
    # Bounded: no growth with recycles (the first scrapes may come before the first
    # flush of request metrics). The only wobble is unitserve_worker_info, one series per
    # live process, while replaced workers drain next to their successor.
    settled = counts[len(counts) // 3 :]
    assert max(settled) - min(settled) <= 6, counts  # pid-labelled series would add ~10 per recycle
    files = [f for f in os.listdir(_metrics_dir(server)) if f.startswith("counter_")]
    assert len(files) <= 4, files


def _metrics_dir(server) -> str:
    for line in server.log().splitlines():  # logged at DEBUG
        if "metrics directory " in line:
            return line.rsplit("metrics directory ", 1)[1].strip()
    raise AssertionError("metrics directory not logged")


def test_bad_metric_name_is_rejected_and_endpoint_stays_healthy(fresh_server):
    server = fresh_server("Runtime", grpc=False)
    r = httpx.post(f"{server.url}/predict", json={"data": {"names": ["badname"], "ndarray": [1]}})
    assert r.status_code == 500 and r.json()["status"]["reason"] == "MICROSERVICE_BAD_METRIC"
    assert httpx.post(f"{server.url}/predict", json=ONE).status_code == 200
    assert total(scrape(server), "rt_count_total") == 2


def test_health_status_does_not_bump_user_counters(fresh_server):
    server = fresh_server("Health", grpc=False)
    for _ in range(3):
        assert httpx.get(f"{server.url}/health/status").status_code == 200
    assert total(scrape(server), "health_model_calls_total") == 0
    httpx.post(f"{server.url}/predict", json=ONE)
    assert total(scrape(server), "health_model_calls_total") == 1


def test_custom_metric_labels(fresh_server):
    env = {
        "PREDICTIVE_UNIT_ID": "clf",
        "PREDICTIVE_UNIT_IMAGE": "reg:5000/img:1.2",
        "SELDON_DEPLOYMENT_ID": "dep",
        "PREDICTOR_ID": "main",
        "PREDICTOR_LABELS": '{"version": "v7"}',
    }
    server = fresh_server("Tagged", env=env, grpc=False)
    httpx.post(f"{server.url}/predict", json=ONE)
    labels = next(lbl for n, lbl, _ in samples(scrape(server)) if n == "tagged_calls_total")
    assert labels == {
        "method": "predict",
        "deployment_name": "dep",
        "seldon_deployment_name": "dep",
        "model_name": "clf",
        "model_image": "reg:5000/img",
        "image_name": "reg:5000/img",
        "model_version": "1.2",
        "image_version": "1.2",
        "predictor_name": "main",
        "predictor_version": "v7",
        "worker_id": "0",
    }


def test_custom_metrics_endpoint_path(fresh_server):
    server = fresh_server("Tagged", env={"PREDICTIVE_UNIT_METRICS_ENDPOINT": "/custom"}, grpc=False)
    httpx.post(f"{server.url}/predict", json=ONE)
    assert total(scrape(server, "/custom"), "tagged_calls_total") == 1


def test_pidfile_and_access_log(fresh_server, tmp_path):
    pidfile = tmp_path / "unitserve.pid"
    server = fresh_server("Identity", "--pidfile", str(pidfile), "--access-log", grpc=False)
    assert int(pidfile.read_text()) == server.proc.pid
    httpx.post(f"{server.url}/predict", json=ONE)
    scrape(server)
    wait_until(lambda: "POST /predict 200" in server.log())
    assert "/metrics" not in server.log()
    server.stop()
    assert not pidfile.exists()


def test_sighup_replaces_workers(fresh_server):
    server = fresh_server("Identity", "--workers", "2", grpc=False)
    before = wait_for_workers(server)
    server.signal(signal.SIGHUP)
    after = wait_for_workers(server, replacing=before.values())
    assert set(after) == {"0", "1"}
    assert httpx.post(f"{server.url}/predict", json=ONE).status_code == 200


@pytest.mark.parametrize("flag", ["--http-port", "--metrics-port", "--grpc-port"])
def test_port_in_use(fresh_server, flag):
    from ..conftest import run_cli

    holder = fresh_server("Identity")
    port = {
        "--http-port": holder.http_port,
        "--metrics-port": holder.metrics_port,
        "--grpc-port": holder.grpc_port,
    }[flag]
    args = [
        "serve",
        "Identity",
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--metrics-port",
        "0",
        "--grpc-port",
        "0",
        flag,
        str(port),
    ]
    result = run_cli(*args)
    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr
