"""Faults in the user's ``load()``: a slow one and a failing one.

tests/e2e/test_process.py already checks a 3 s load() (/ready 503 once, a data request
waits) and a failing load() with two workers (exit 1, error logged). Here: /live and
/ready polled through a 10 s load(), judged against whether load() had really finished
(a marker file it writes), not against the clock; a failing load() leaves nothing
behind (no process, no open port, never ready); and the two paths where a failing
load() is not yet handled cleanly (requests waiting for it, --preload).
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import httpx

from .helpers import error_status, grpc_health, params, refuses, session_pids, wait_until

POLL_SECONDS = 0.1


def test_ready_is_503_and_live_200_throughout_a_10_second_load(fresh_server, tmp_path):
    server = fresh_server(
        "MarkedSlowLoad",
        "--parameters",
        params(seconds="10", directory=str(tmp_path)),
        wait="/live",
    )
    loaded = lambda: any(tmp_path.glob("loaded-*"))  # noqa: E731
    # (load() finished before the probe, /live, /ready and its body, finished after)
    polls: list[tuple[bool, int, int, bytes, bool]] = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # Side checks while load() runs: the gRPC port opens only once the model is
        # loaded, and the supervisor's metrics endpoint already answers.
        assert not loaded()
        assert grpc_health(server.grpc_target) == "UNAVAILABLE"
        assert httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics").status_code == 200
        assert client.get("/health/ping").text == "pong"
        assert not loaded(), "load() finished during the side checks: they proved nothing"
        for _ in range(1000):  # ~10 s of load() at one poll per 0.1 s, with ample margin
            before = loaded()
            live, ready = client.get("/live"), client.get("/ready")
            polls.append((before, live.status_code, ready.status_code, ready.content, loaded()))
            if sum(1 for p in polls if p[2] == 200) >= 5:
                break
            time.sleep(POLL_SECONDS)  # pacing only: nothing is judged by the clock
        assert grpc_health(server.grpc_target) == "SERVING"

    assert all(p[1] == 200 for p in polls), "/live was not 200 at some point"
    during = [p for p in polls if not p[4]]  # load() had not finished when the poll ended
    assert len(during) >= 20, f"only {len(during)} polls during load(): {len(polls)} in all"
    assert all(p[2] == 503 for p in during), "/ready said 200 before load() had finished"
    for *_, body, _ in during:
        reason = error_status(body)
        assert reason["reason"] == "MICROSERVICE_NOT_READY" and "load()" in reason["info"]
    statuses = [p[2] for p in polls]
    first_ready = statuses.index(200)
    assert set(statuses[:first_ready]) == {503} and set(statuses[first_ready:]) == {200}


def test_failing_load_exits_nonzero_and_leaves_nothing_behind(fresh_server):
    server = fresh_server("BadLoad", "--workers", "2", wait=None)
    sid = server.proc.pid  # the server runs in a session of its own
    ready_answers: list[int] = []
    for _ in range(600):  # until it exits; bounded by proc.wait below as well
        if server.proc.poll() is not None:
            break
        with contextlib.suppress(httpx.TransportError):  # not listening yet, or no longer
            ready_answers.append(httpx.get(f"{server.url}/ready", timeout=5).status_code)
        time.sleep(POLL_SECONDS)
    assert server.proc.wait(60) == 1
    assert 200 not in ready_answers, "a server whose load() failed said it was ready"
    log = server.log()
    assert log.count("load() of BadLoad failed") >= 1
    assert "FileNotFoundError: weights.bin not found" in log
    assert "could not load the model" in log
    # Not half-alive: no worker survives its supervisor and no port stays open.
    assert wait_until(lambda: not session_pids(sid), timeout=10)
    for port in (server.http_port, server.grpc_port, server.metrics_port):
        assert refuses(port), f"port {port} still accepts connections"


def test_requests_waiting_for_a_failing_load_get_503_at_once(fresh_server):
    server = fresh_server("SlowBadLoad", "--parameters", params(seconds="2"), wait="/live")
    # A client timeout, not a timing assert: the answer is due as soon as load() fails
    # (2 s in); the bug holds the request for the whole 30 s grace period.
    try:
        answer = httpx.post(f"{server.url}/predict", json={"data": {"ndarray": [[1]]}}, timeout=12)
        code = server.proc.wait(20)
    finally:
        if server.proc.poll() is None:  # the bug: do not wait out its 30 s at teardown
            server.signal(signal.SIGTERM)
            server.signal(signal.SIGTERM)  # a second one stops the workers at once
    assert answer.status_code == 503
    assert error_status(answer.content)["reason"] == "MICROSERVICE_NOT_READY"
    assert code == 1


def test_failing_load_with_preload_is_reported_like_without(tmp_path: Path):
    from ..conftest import run_cli

    result = run_cli(
        "serve",
        "BadLoad",
        "--preload",
        "--host",
        "127.0.0.1",
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
    )
    assert result.returncode == 1
    assert "FileNotFoundError: weights.bin not found" in result.stderr
    assert "load() of BadLoad failed" in result.stderr
    # The user's traceback is useful; our own call stack is not.
    assert "unitserve/cli.py" not in result.stderr, result.stderr
