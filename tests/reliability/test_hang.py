"""A ``predict`` that hangs.

With ``--request-timeout`` the stuck client gets a 504 (REST) or DEADLINE_EXCEEDED
(gRPC) with a JSON / text reason, while the worker's other threads and the other
worker keep answering everyone else. The hung thread itself cannot be stopped (Python
threads cannot be killed): it stays busy until the user code returns, which is why a
worker needs more than one thread (``--threads``) to survive a hang.

The Hang fixture blocks until a ``release`` file appears and writes
``hung-<pid>-<thread>`` when it starts blocking, so that the test knows where the
stuck thread is without guessing from timing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import orjson
import pytest
from google.protobuf import json_format

from unitserve.proto import prediction_pb2 as pb

from .helpers import error_status, params, wait_for_workers, wait_until

HANG = {"strData": "hang"}
NORMAL = {"strData": "hello"}
ATTEMPTS = 200  # new connections tried until every worker has answered (bounded)


def grpc_predict(target: str, body: dict, timeout: float = 30.0) -> pb.SeldonMessage:
    # A channel of its own, so that each call may land on another worker (SO_REUSEPORT
    # spreads connections, not calls).
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(target, options=options) as channel:
        predict = channel.unary_unary(
            "/seldon.protos.Model/Predict",
            request_serializer=pb.SeldonMessage.SerializeToString,
            response_deserializer=pb.SeldonMessage.FromString,
        )
        return predict(json_format.ParseDict(body, pb.SeldonMessage()), timeout=timeout)


def rest_predict(url: str, body: dict) -> httpx.Response:
    # Connection: close, so that every request is a new connection the kernel may give
    # to either worker.
    return httpx.post(f"{url}/predict", json=body, headers={"connection": "close"}, timeout=30)


def hung_threads(directory: Path) -> set[str]:
    """{"<pid>-<thread name>"} of the predict calls blocked right now."""
    return {p.name.removeprefix("hung-") for p in directory.glob("hung-*")}


@contextlib.contextmanager
def released(directory: Path) -> Iterator[None]:
    """Unblock every hung call at the end, so the server stops without waiting for them."""
    try:
        yield
    finally:
        (directory / "release").write_text("go")


def test_hung_predict_times_out_while_other_threads_and_workers_serve(fresh_server, tmp_path):
    server = fresh_server(
        "Hang",
        "--workers",
        "2",
        "--threads",
        "3",  # two calls will hang (one per protocol), possibly in the same worker
        "--grpc-threads",
        "2",
        "--request-timeout",
        "2",
        "--parameters",
        params(directory=str(tmp_path)),
    )
    workers = set(wait_for_workers(server, 2).values())
    with released(tmp_path):
        # REST: the stuck client is answered 504 with Seldon's JSON error body.
        stuck = rest_predict(server.url, HANG)
        assert stuck.status_code == 504, stuck.text
        assert stuck.headers["content-type"] == "application/json"
        assert "request timeout" in error_status(stuck.content)["info"]
        # gRPC: DEADLINE_EXCEEDED from the server (the client's own deadline is 30 s),
        # with the same reason in the details.
        with pytest.raises(grpc.RpcError) as raised:
            grpc_predict(server.grpc_target, HANG)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "request timeout" in raised.value.details()
        wait_until(lambda: len(hung_threads(tmp_path)) == 2)
        hung = hung_threads(tmp_path)

        # Everyone else is served, by every worker, over both protocols, while two
        # threads stay blocked. Answers carry the serving pid and thread.
        served: dict[str, set[str]] = {"rest": set(), "grpc": set()}
        for _ in range(ATTEMPTS):
            r = rest_predict(server.url, NORMAL)
            assert r.status_code == 200, r.text
            answer = orjson.loads(r.content)["jsonData"]
            served["rest"].add(f"{answer['pid']}-{answer['thread']}")
            if {int(s.split("-")[0]) for s in served["rest"]} == workers:
                break
        for _ in range(ATTEMPTS):
            message = grpc_predict(server.grpc_target, NORMAL)
            answer = json_format.MessageToDict(message)["jsonData"]
            served["grpc"].add(f"{int(answer['pid'])}-{answer['thread']}")
            if {int(s.split("-")[0]) for s in served["grpc"]} == workers:
                break
        for protocol, where in served.items():
            assert {int(s.split("-")[0]) for s in where} == workers, (protocol, where, workers)
            assert not where & hung, f"{protocol} answered by a thread that is hung"
        assert hung_threads(tmp_path) == hung, "the hung calls returned early"


def test_requests_that_timed_out_in_the_queue_never_run(fresh_server, tmp_path):
    server = fresh_server(
        "Hang",
        "--threads",
        "1",
        "--request-timeout",
        "1",
        "--parameters",
        params(directory=str(tmp_path)),
        grpc=False,
    )
    with released(tmp_path):
        assert rest_predict(server.url, HANG).status_code == 504
        wait_until(lambda: hung_threads(tmp_path))
        # The only user thread is blocked: these wait in the queue and time out.
        for _ in range(3):
            queued = rest_predict(server.url, NORMAL)
            assert queued.status_code == 504, queued.text
    # Released: the hung call returns; what runs next should be this request only.
    count = httpx.post(f"{server.url}/predict", json={"strData": "count"}, timeout=30)
    assert count.status_code == 200, count.text
    calls = orjson.loads(count.content)["jsonData"]["calls"]
    assert calls == 2, f"{calls - 2} requests already answered 504 ran the model anyway"
