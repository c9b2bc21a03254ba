"""SIGTERM under load: zero accepted requests lost.

tests/e2e/test_process.py proves that requests *in flight* at SIGTERM finish (50 slow
REST requests, 4 gRPC ones). Here clients keep sending through the whole stop, in a
closed loop, and every request is classified (see traffic.py): a refused connection
(nothing listens any more) never reached the server and is not a loss, nor is one the
kernel reset from the accept queue when the port closed, which no process had accepted;
a non-2xx answer, or a connection that the server accepted and then dropped without an
answer, is.

`test_sigterm_under_load_stops_cleanly` checks the stop itself: exit 0, no error
status, and the server does stop accepting. The zero-loss tests, one per kind of client,
hold except gRPC's (see its xfail). Each repeats the stop a few times and stops at the
first loss, because each loss is a race that a single stop may miss; `CYCLES` stops keep
the chance of a false pass below 1 in 10,000 while a bug is there. Since a reset from
the accept queue at the moment the port closes is not counted as a loss, the drain's
serving of that queue is also checked without a race, on a frozen worker
(`test_sigterm_answers_connections_already_in_the_accept_queue`).
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..conftest import wait_until
from .helpers import wait_workers_ready
from .traffic import REST_BODY, Result, Traffic, summary

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
# 2-core machine before the drain served the accept queue and kept idle keep-alive
# connections for a grace period, each zero-loss test below saw a loss in 7 or 8 stops
# out of 8.
BUSY = ("Busy", "--threads", "4", "--grpc-threads", "4")


def test_sigterm_loses_no_request_on_keepalive_connections(fresh_server):
    zero_loss(fresh_server, raw_keepalive=64)


def test_sigterm_loses_no_request_on_new_connections(fresh_server):
    zero_loss(fresh_server, raw_close=64, model=BUSY)


def _pending_signals(pid: int) -> int:
    """The signals waiting for process `pid` (its own and its thread group's)."""
    status = Path(f"/proc/{pid}/status").read_text()
    masks = [
        line.split()[1] for line in status.splitlines() if line.startswith(("SigPnd", "ShdPnd"))
    ]
    return int(masks[0], 16) | int(masks[1], 16)


def _frozen(pid: int) -> bool:
    """Whether every thread of process `pid` has stopped (SIGSTOP takes effect on each
    thread on its own, a little later)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            states.append((task / "stat").read_text().rpartition(")")[2].split()[0])
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return all(state == "T" for state in states)


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends on `sock` until it closes it (bounded by the timeout)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_sigterm_answers_connections_already_in_the_accept_queue(fresh_server):
    """The drain's promise, set up on purpose rather than left to a race (which the load
    tests above cannot tell from a connection that arrived after the port closed): the
    worker is frozen, so that the kernel queues every new connection with its request,
    then stopped; each of them must be answered."""
    server = fresh_server("WhoAmI", "--workers", "1")
    (pid,) = wait_workers_ready(server, 1)
    request = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(REST_BODY), REST_BODY)
    )
    sockets: list[socket.socket] = []
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _frozen(pid))
        for _ in range(16):
            sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
            sockets.append(sock)
            sock.sendall(request)
        server.signal(signal.SIGTERM)
        # The supervisor passes SIGTERM on to the frozen worker, where it stays pending.
        wait_until(lambda: _pending_signals(pid) & (1 << (signal.SIGTERM - 1)))
    finally:
        os.kill(pid, signal.SIGCONT)
    try:
        answers = [_answer(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert [a[:12] for a in answers] == [b"HTTP/1.1 200"] * len(sockets), answers
    assert server.proc.wait(60) == 0


@pytest.mark.xfail(
    strict=True,
    reason="grpc core: when the server stops, RPCs that reached the "
    "C-core but were not yet picked up by the Python server are CANCELLED, even within the "
    "grace period; grpcio offers no way to stop accepting new RPCs first. In Kubernetes the "
    "pod leaves the Service endpoints (and the gRPC health service turns NOT_SERVING) "
    "before the grace period, so clients have stopped sending when the server stops.",
)
def test_sigterm_loses_no_grpc_request(fresh_server):
    zero_loss(fresh_server, grpc_clients=16, model=BUSY)
