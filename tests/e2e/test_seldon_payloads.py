"""The Seldon services and their errors through a real server, over both transports
(REST with httpx, gRPC with a grpc.aio client): the same table the in-process tests run
(tests/unit/test_seldon_payloads.py, where every payload kind is tested too)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import seldon_cases as cases
from tests.conftest import Server

from .grpc_client import RpcError, call_json


def send(server: Server, transport: str, body: Any, rpc: str = "Model/Predict") -> cases.Sent:
    return cases.send_over(
        transport,
        rpc,
        lambda path: server.post(path, json=body),
        lambda name: call_json(server.grpc_target, name, body),
        RpcError,
    )


@pytest.fixture(params=cases.TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("rpc", ["Model/Predict", "Seldon/Predict"])
def test_predict_numbers_keep_the_transports_type(serve, transport, rpc):
    sent = send(serve("Identity"), transport, {"data": {"ndarray": [[1, 2]]}}, rpc)
    assert sent.body == {"data": {"names": ["t:0", "t:1"], "ndarray": [[1, 2]]}, "meta": {}}
    values = sent.body["data"]["ndarray"][0]
    assert {type(v) for v in values} == cases.pick(transport, {int}, {float})


@pytest.mark.parametrize(("target", "rpc", "body", "path", "expected"), cases.SERVICE_CASES)
def test_transformers_router_combiner_feedback_services(
    serve, transport, target, rpc, body, path, expected
):
    assert cases.field(send(serve(target), transport, body, rpc).body, path) == expected


@pytest.mark.parametrize(("target", "rpc", "body", "statuses", "sentence"), cases.ERROR_CASES)
def test_error_codes(serve, transport, target, rpc, body, statuses, sentence):
    sent = send(serve(target), transport, body, rpc)
    assert (sent.status, sent.error) == (cases.pick(transport, *statuses), sentence)


def test_unknown_result_type(serve, transport):
    sent = send(serve("Returns"), transport, {"data": {"names": ["int"], "ndarray": [1]}})
    assert sent.status == cases.pick(transport, 400, 500)
