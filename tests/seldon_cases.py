"""Seldon calls as tables that the in-process tests (tests/unit/test_seldon_payloads.py)
and the real-server ones (tests/e2e/test_seldon_payloads.py) run over both transports:
each RPC's REST path, the REST status each gRPC status stands for, and the cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

TRANSPORTS = ["rest", "grpc"]
ONE = {"data": {"ndarray": [[1]]}}

# Each RPC's REST path (the services' several names for one operation share it).
REST_PATH = {
    "Model/Predict": "/predict",
    "Seldon/Predict": "/api/v1.0/predictions",
    "Generic/TransformInput": "/transform-input",
    "Transformer/TransformInput": "/transform-input",
    "Generic/TransformOutput": "/transform-output",
    "OutputTransformer/TransformOutput": "/transform-output",
    "Generic/Route": "/route",
    "Router/Route": "/route",
    "Router/SendFeedback": "/send-feedback",
    "Generic/SendFeedback": "/send-feedback",
    "Model/SendFeedback": "/send-feedback",
    "Seldon/SendFeedback": "/api/v1.0/feedback",
    "Combiner/Aggregate": "/aggregate",
    "Generic/Aggregate": "/aggregate",
}

# The REST status each gRPC status a Seldon call can end with stands for.
REST_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


@dataclass
class Sent:
    """What a client saw: the answer in JSON form, or the error (the REST status, or
    the one the gRPC status stands for, and the server's sentence)."""

    body: dict[str, Any]
    status: int = 200
    error: str = ""


def send_over(
    transport: str,
    rpc: str,
    post: Callable[[str], Any],
    call: Callable[[str], dict[str, Any]],
    rpc_error: type[Exception],
) -> Sent:
    """One call over `transport`: `post(path)` gives the REST answer (an httpx one),
    `call(rpc)` the gRPC answer in JSON form or raises `rpc_error` (with ``code`` and
    ``details``), as the in-process harness and the real client each do."""
    if transport == "rest":
        r = post(REST_PATH[rpc])
        assert r.headers["content-type"] == "application/json"
        answer = r.json()
        if r.status_code != 200:
            return Sent({}, r.status_code, answer["status"]["info"])
        return Sent(answer)
    try:
        return Sent(call(rpc))
    except rpc_error as exc:
        return Sent({}, REST_STATUS[exc.code], exc.details)  # type: ignore[attr-defined]


def pick(transport: str, rest: Any, grpc_form: Any) -> Any:
    return rest if transport == "rest" else grpc_form


_FEEDBACK = {"request": ONE, "response": {"meta": {"routing": {"0": 1}}}, "reward": 1}
_TWO = {"seldonMessages": [{"data": {"ndarray": [[1, 2]]}}, {"data": {"ndarray": [[3, 4]]}}]}
_ROUTED = {"data": {"tensor": {"shape": [3], "values": [1, 2, 3]}}}

# (fixture class, RPC, request, the answer's field (its path), what it holds): every service name of
# the transformers, the router, the combiner and feedback.
SERVICE_CASES: list[tuple[str, str, dict[str, Any], tuple[str, ...], Any]] = [
    *(
        ("Transformer", rpc, {"data": {"ndarray": [[1, 2]]}}, ("data", "ndarray"), [[2, 3]])
        for rpc in ("Generic/TransformInput", "Transformer/TransformInput")
    ),
    *(
        ("Transformer", rpc, {"data": {"ndarray": [[1, 2]]}}, ("data", "ndarray"), [[2, 4]])
        for rpc in ("Generic/TransformOutput", "OutputTransformer/TransformOutput")
    ),
    *(
        (
            "Router",
            rpc,
            _ROUTED,
            ("data",),
            {"names": ["t:0"], "tensor": {"shape": [1, 1], "values": [1]}},
        )
        for rpc in ("Generic/Route", "Router/Route")
    ),
    *(
        ("Router", rpc, _FEEDBACK, ("strData",), "routing=1 reward=1.0")
        for rpc in (
            "Router/SendFeedback",
            "Generic/SendFeedback",
            "Model/SendFeedback",
            "Seldon/SendFeedback",
        )
    ),
    *(
        ("Combiner", rpc, _TWO, ("data", "ndarray"), [[2, 3]])
        for rpc in ("Combiner/Aggregate", "Generic/Aggregate")
    ),
]

# (fixture class, RPC, request, (REST status, gRPC status as its REST one), sentence).
ERROR_CASES: list[tuple[str, str, dict[str, Any], tuple[int, int], str]] = [
    (
        "Failing",
        "Model/Predict",
        {"data": {"names": ["seldon"], "ndarray": [1]}},
        (403, 403),
        "not for you",
    ),
    (
        "Failing",
        "Model/Predict",
        {"data": {"names": ["default"], "ndarray": [1]}},
        (400, 400),
        "bad input, says the model",
    ),
    ("Failing", "Model/Predict", ONE, (500, 500), "predict failed on purpose"),
    # an operation the class does not define: REST answers 400, as Seldon's wrapper does
    ("Identity", "Router/Route", ONE, (400, 501), "Route not defined"),
]


def field(answer: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        answer = answer[key]
    return answer
