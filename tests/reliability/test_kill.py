"""A worker killed with SIGKILL under load.

tests/e2e/test_process.py kills a worker under one REST keep-alive client and allows
one failure. Here the load is mixed and concurrent (REST keep-alive, REST with a new
connection per request, gRPC channels): the requests the dead worker was holding may
fail, but only those: each client loses at most what it had sent to that worker before
it could notice the death, nothing fails once the client has had a success after the
kill, nothing at all fails after the replacement is up, no failure is an HTTP or gRPC
error status (only dropped connections), and the replacement serves both protocols.
"""

from __future__ import annotations

import os
import signal
from collections import defaultdict

import grpc

from unitserve.proto import prediction_pb2 as pb

from ..e2e.metrics_text import total
from .helpers import scrape, wait_for_workers, wait_until, wait_workers_ready
from .traffic import GRPC_BODY, GRPC_PREDICT, Result, Traffic, pid_of, summary

# One request in flight on the dead worker's connection, plus one a client may have
# sent on that connection before the kernel's reset reached it.
MAX_FAILURES_PER_CLIENT = 2


def test_sigkilled_worker_is_replaced_and_only_its_requests_fail(fresh_server):
    server = fresh_server("WhoAmI", "--workers", "2")
    wait_workers_ready(server, 2)
    victim = wait_for_workers(server, 2)["0"]
    traffic = Traffic(server.url, server.grpc_target, 4, 4, 4, max_seconds=90).start()
    try:
        # Steady load first: every client busy, both workers answering.
        traffic.wait_for(
            lambda rs: len(rs) >= 300 and len({r.pid for r in rs if r.kind == "ok"}) == 2
        )
        os.kill(victim, signal.SIGKILL)
        # The replacement: same slot, another pid, ready (the supervisor lists a worker
        # once it has started; requests only reach it once it has loaded).
        new = wait_until(lambda: (p := wait_for_workers(server, 2)["0"]) != victim and p)
        killed_at = len(traffic.snapshot())
        traffic.wait_for(lambda rs: sum(1 for r in rs if r.pid == new) >= 20)
        replaced_at = len(traffic.snapshot())
        traffic.wait_for(lambda rs: len(rs) >= replaced_at + 200)
    finally:
        results = traffic.stop()
    assert any(r.pid == victim for r in results[:killed_at]), "the victim never served"

    failures = [r for r in results if r.kind != "ok"]
    assert all(not r.detail.startswith("HTTP ") for r in failures), summary(results)
    assert all(
        r.detail.startswith("UNAVAILABLE") for r in failures if r.client.startswith("grpc")
    ), summary(results)
    by_client: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        by_client[r.client].append(r)
    for client, mine in by_client.items():
        kinds = [r.kind for r in mine]
        assert kinds.count("failed") + kinds.count("refused") <= MAX_FAILURES_PER_CLIENT, (
            client,
            summary(mine),
        )
        # No failure after this client's first success following its first failure.
        if "failed" in kinds or "refused" in kinds:
            first_bad = next(i for i, k in enumerate(kinds) if k != "ok")
            recovered = next((i for i in range(first_bad, len(kinds)) if kinds[i] == "ok"), None)
            assert recovered is not None, f"{client} never recovered: {summary(mine)}"
            assert all(k == "ok" for k in kinds[recovered:]), (client, summary(mine))
    # Nothing sent once the replacement was serving failed, whichever the client.
    assert all(r.kind == "ok" for r in results[replaced_at:]), summary(results[replaced_at:])

    # The replacement serves gRPC too: new connections, until one reaches it.
    assert grpc_reaches(server.grpc_target, new), "the replacement never answered gRPC"
    text = scrape(server)
    assert total(text, "unitserve_worker_restarts_total", reason="crash") == 1
    assert "killed by SIGKILL" in server.log()


def grpc_reaches(target: str, pid: int, attempts: int = 100) -> bool:
    """True once a new gRPC connection is answered by worker `pid` (bounded)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    for _ in range(attempts):
        with grpc.insecure_channel(target, options=options) as channel:
            predict = channel.unary_unary(GRPC_PREDICT)
            message = pb.SeldonMessage.FromString(predict(GRPC_BODY, timeout=10))
            if pid_of(message.jsonData) == pid:
                return True
    return False
