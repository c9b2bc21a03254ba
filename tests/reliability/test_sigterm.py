"""SIGTERM under load: zero accepted requests lost.

tests/e2e/test_process.py proves that requests *in flight* at SIGTERM finish (50 slow
REST requests, 4 gRPC ones). Here clients keep sending through the whole stop, in a
closed loop, and every request is classified (see traffic.py): a refused connection
(nothing listens any more) never reached the server and is not a loss; a non-2xx
answer, or a connection that was made and then dropped without an answer, is.

`test_sigterm_under_load_stops_cleanly` holds today: exit 0, no error status, and the
server does stop accepting. The zero-loss tests, one per kind of client, fail today
for three separate reasons (see each xfail). Each repeats the stop a few times and
stops at the first loss, because each loss is a race that a single stop may miss;
`CYCLES` stops keep the chance of a false pass below 1 in 10,000 while a bug is
there.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest

from .helpers import wait_workers_ready
from .traffic import Result, Traffic, summary

CYCLES = 5


def sigterm_under_load(
    fresh_server: Callable[..., Any],
    keepalive: int = 0,
    close: int = 0,
    grpc_clients: int = 0,
    raw_keepalive: int = 0,
    raw_close: int = 0,
    model: tuple[str, ...] = ("WhoAmI",),
) -> tuple[int, list[Result], str]:
    """Start a 2-worker server, load it, SIGTERM it mid-load, keep sending until every
    client is refused. Returns (exit status, every request's result, the server log)."""
    server = fresh_server(*model, "--workers", "2")
    wait_workers_ready(server, 2)
    traffic = Traffic(
        server.url,
        server.grpc_target,
        keepalive,
        close,
        grpc_clients,
        raw_keepalive,
        raw_close,
        stop_when_refused=True,
        max_seconds=90,
    ).start()
    try:
        traffic.wait_for(lambda rs: len(rs) >= 300)  # steady load first
        server.signal(signal.SIGTERM)
        code = server.proc.wait(60)
        # Every client goes on until the closed port refuses it (bounded by max_seconds).
        traffic.wait_for(lambda rs: {r.client for r in rs if r.kind == "refused"} == traffic.names)
    finally:
        results = traffic.stop()
    return code, results, server.log()


def lost(results: list[Result]) -> list[Result]:
    return [r for r in results if r.kind == "failed"]


def test_sigterm_under_load_stops_cleanly(fresh_server):
    code, results, log = sigterm_under_load(fresh_server, 4, 4, 4)
    assert code == 0
    # Whatever was answered was answered well: no error status during the drain, and the
    # only gRPC failures are the shutdown ones (see the xfail below).
    assert not [r for r in lost(results) if r.detail.startswith("HTTP ")], summary(results)
    assert all(
        r.detail.startswith(("CANCELLED", "UNAVAILABLE"))
        for r in lost(results)
        if r.client.startswith("grpc")
    ), summary(results)
    assert "Traceback" not in log
    assert log.count("stopped") >= 3  # both workers, then unitserve itself


def zero_loss(fresh_server: Callable[..., Any], **clients_and_model: Any) -> None:
    for cycle in range(CYCLES):
        code, results, _ = sigterm_under_load(fresh_server, **clients_and_model)
        assert code == 0
        assert not lost(results), f"stop {cycle + 1}: {summary(results)}"


# The raw asyncio clients (see traffic.py) keep the server saturated; Busy is a
# CPU-bound model, which keeps connections waiting in the accept backlog and calls
# waiting in gRPC's queue, as a real CPU-heavy model under load does. Measured on a
# 2-core machine, each zero-loss test below sees its loss in 7 or 8 stops out of 8.
BUSY = ("Busy", "--threads", "4", "--grpc-threads", "4")


def test_sigterm_loses_no_request_on_keepalive_connections(fresh_server):
    zero_loss(fresh_server, raw_keepalive=64)


def test_sigterm_loses_no_request_on_new_connections(fresh_server):
    zero_loss(fresh_server, raw_close=64, model=BUSY)


@pytest.mark.xfail(
    strict=True,
    reason="grpc core (grpc/grpc#41785): when the server stops, RPCs that reached the "
    "C-core but were not yet picked up by the Python server are CANCELLED, even within the "
    "grace period; grpcio offers no way to stop accepting new RPCs first. In Kubernetes the "
    "pod leaves the Service endpoints (and the gRPC health service turns NOT_SERVING) "
    "before the grace period, so clients have stopped sending when the server stops.",
)
def test_sigterm_loses_no_grpc_request(fresh_server):
    zero_loss(fresh_server, grpc_clients=16, model=BUSY)
