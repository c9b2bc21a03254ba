"""An access line's ``puid`` is the one the answer's meta carries: the request's Seldon
puid on REST and gRPC, the request's id on the Open Inference Protocol, the graph's
puid in a graph; and nothing is looked for when access lines are off."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from unitserve.proto import inference_pb2 as v2pb
from unitserve.transport.accounting import PUID_KEY

from .engine_harness import fixture_model, serving
from .graph_harness import GraphHarness
from .test_graph import CHAIN

ONE = {"data": {"ndarray": [[1.0, 2.0]]}}
INFER = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The access fields of every access line written while the test runs."""
    found: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record.access)  # type: ignore[attr-defined]

    logger = logging.getLogger("unitserve.access")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield found
    logger.removeHandler(handler)
    logger.setLevel(level)


def only(lines: list[dict[str, Any]], path: str) -> dict[str, Any]:
    matching = [line for line in lines if line["path"] == path]
    assert len(matching) == 1, lines
    return matching[0]


def test_seldon_rest_and_grpc_lines_carry_the_meta_puid(access: list[dict[str, Any]]) -> None:
    with serving(fixture_model("Identity"), access_log=True) as h:
        answer = h.post("/api/v1.0/predictions", json={**ONE, "meta": {"puid": "rest-1"}})
        assert answer.json()["meta"]["puid"] == "rest-1"
        reply = h.call_json("Model/Predict", {**ONE, "meta": {"puid": "grpc-1"}})
        assert reply["meta"]["puid"] == "grpc-1"
        # Without a puid the answer has none either, and nor has the line.
        assert "puid" not in h.post("/predict", json=ONE).json().get("meta", {})
    assert only(access, "/api/v1.0/predictions")["puid"] == "rest-1"
    assert only(access, "/seldon.protos.Model/Predict")["puid"] == "grpc-1"
    assert only(access, "/predict")["puid"] is None


def test_a_failed_request_keeps_its_puid(access: list[dict[str, Any]]) -> None:
    with serving(fixture_model("Failing"), access_log=True) as h:
        answer = h.post("/predict", json={**ONE, "meta": {"puid": "failed-1"}})
        assert answer.status_code == 500
    line = only(access, "/predict")
    assert (line["status"], line["puid"]) == (500, "failed-1")


def test_open_inference_lines_carry_the_request_id(access: list[dict[str, Any]]) -> None:
    with serving(fixture_model("Identity"), access_log=True) as h:
        given = h.post("/v2/models/Identity/infer", json={**INFER, "id": "v2-rest"})
        assert given.json()["id"] == "v2-rest"
        made = h.post("/v2/models/Identity/infer", json=INFER).json()["id"]  # none sent
        reply = h.call_v2("ModelInfer", {**INFER_PROTO, "id": "v2-grpc"})
        assert reply.id == "v2-grpc"
    rest = [line["puid"] for line in access if line["path"] == "/v2/models/Identity/infer"]
    assert rest == ["v2-rest", made]
    assert only(access, "/inference.GRPCInferenceService/ModelInfer")["puid"] == "v2-grpc"


INFER_PROTO = {
    "model_name": "Identity",
    "inputs": [
        {"name": "x", "datatype": "FP64", "shape": [1, 2], "contents": {"fp64_contents": [1, 2]}}
    ],
}


def test_a_graph_line_carries_the_graph_puid(access: list[dict[str, Any]], tmp_path: Path) -> None:
    h = GraphHarness(
        CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"}, tmp_path, access_log=True
    )
    try:
        made = h.post("/api/v1.0/predictions", json=ONE).json()["meta"]["puid"]
        answer, _ = h.call("Seldon/Predict", ONE, (("seldon-puid", "graph-grpc"),))
        assert answer["meta"]["puid"] == "graph-grpc"
    finally:
        h.close()
    assert made and only(access, "/api/v1.0/predictions")["puid"] == made
    assert only(access, "/seldon.protos.Seldon/Predict")["puid"] == "graph-grpc"


def test_without_access_lines_no_puid_is_looked_for(access: list[dict[str, Any]]) -> None:
    with serving(fixture_model("Identity")) as h:
        seen: list[dict[str, Any]] = []
        app = h.app

        async def spy(scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope)
            await app(scope, receive, send)

        h.client._transport.app = spy  # type: ignore[attr-defined]
        r = h.post("/predict", json={**ONE, "meta": {"puid": "p"}})
        assert r.json()["meta"]["puid"] == "p"
        codec = h.app.readers["predict"][1]
    assert access == [] and seen and PUID_KEY not in seen[0]
    assert type(codec).__name__ == "JsonCodec"


def test_grpc_inference_lines_carry_a_made_up_id(access: list[dict[str, Any]]) -> None:
    # Answers to raw and to FP64 requests are written as bytes, not messages: the line
    # still carries the id made up for a request that had none.
    raw = {"model_name": "Identity", "inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}
    with serving(fixture_model("Identity"), access_log=True) as h:
        typed = h.call_v2("ModelInfer", INFER_PROTO).id
        request = json_format.ParseDict(raw, v2pb.ModelInferRequest())
        request.raw_input_contents.append(b"\0" * 8)
        made = h.call_v2("ModelInfer", request).id
    ids = [line["puid"] for line in access if line["path"].endswith("/ModelInfer")]
    assert ids == [typed, made] and all(ids)
