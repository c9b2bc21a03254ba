"""The operation table and what derives from it (REST routes, gRPC services, the
OpenAPI paths), the request value types, and where user calls run (calls.py).

In-process: no server, no sockets."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest

from unitserve import SeldonNotImplementedError
from unitserve.calls import Invoker, run_sync
from unitserve.component import MethodTable
from unitserve.engine import Engine
from unitserve.errors import MalformedMessage
from unitserve.operations import ENGINE_OPERATIONS, OPERATIONS
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.seldon.json_codec import JsonCodec
from unitserve.protocol.seldon.proto_codec import FeedbackJsonCodec
from unitserve.protocol.seldon.proto_fast import BytesCodec
from unitserve.transport.grpc.handlers import SERVICES, GrpcRequest
from unitserve.transport.rest.app import ROUTES, NoBody, RestRequest
from unitserve.transport.rest.openapi import document
from unitserve.transport.rest.request_body import request_payload

GET, POST, GET_POST = {"GET"}, {"POST"}, {"GET", "POST"}

# The paths Seldon's wrapper serves (and ours: /live, /ready): what clients rely on.
EXPECTED_ROUTES = {
    "/predict": ("predict", GET_POST),
    "/api/v1.0/predictions": ("predict", POST),
    "/api/v0.1/predictions": ("predict", POST),
    "/transform-input": ("transform_input", GET_POST),
    "/transform-output": ("transform_output", GET_POST),
    "/route": ("route", GET_POST),
    "/aggregate": ("aggregate", GET_POST),
    "/send-feedback": ("send_feedback", GET_POST),
    "/api/v1.0/feedback": ("send_feedback", POST),
    "/api/v0.1/feedback": ("send_feedback", POST),
    "/health/ping": ("ping", GET),
    "/health/status": ("health_status", GET),
    "/api/v1.0/health/status": ("health_status", GET),
    "/metadata": ("metadata", GET),
    "/api/v1.0/metadata": ("metadata", GET),
    "/seldon.json": ("openapi", GET),
    "/live": ("live", GET),
    "/ready": ("ready", GET),
}

# The services and methods of Seldon's prediction.proto.
EXPECTED_SERVICES = {
    "Generic": {
        "TransformInput": "transform_input",
        "TransformOutput": "transform_output",
        "Route": "route",
        "Aggregate": "aggregate",
        "SendFeedback": "send_feedback",
    },
    "Model": {"Predict": "predict", "SendFeedback": "send_feedback", "Metadata": "metadata"},
    "Router": {"Route": "route", "SendFeedback": "send_feedback"},
    "Transformer": {"TransformInput": "transform_input"},
    "OutputTransformer": {"TransformOutput": "transform_output"},
    "Combiner": {"Aggregate": "aggregate"},
    "Seldon": {
        "Predict": "predict",
        "SendFeedback": "send_feedback",
        "ModelMetadata": "metadata",
        "GraphMetadata": "graph_metadata",
    },
}

# The `method` label Seldon puts on user metrics, per operation.
EXPECTED_LABELS = {
    "predict": "predict",
    "transform_input": "inputtransform",
    "transform_output": "outputtransform",
    "route": "router",
    "aggregate": "aggregate",
    "send_feedback": "feedback",
    "health_status": "health",
    # Open Inference Protocol inference: the label of the method its service type calls.
    "infer": "",
}


def test_routes_derived_from_the_table_are_seldons() -> None:
    assert {path: (r.kind, set(r.methods)) for path, r in ROUTES.items()} == EXPECTED_ROUTES


def test_grpc_services_derived_from_the_table_are_seldons() -> None:
    assert SERVICES == EXPECTED_SERVICES
    assert list(SERVICES) == list(EXPECTED_SERVICES)  # registration order


def test_engine_operations_name_real_methods() -> None:
    fields = {f.name for f in dataclasses.fields(MethodTable)}
    assert {op.name: op.label for op in ENGINE_OPERATIONS} == EXPECTED_LABELS
    for op in ENGINE_OPERATIONS:
        assert callable(getattr(Engine, op.name)), op.name
        assert set(op.user_methods) <= fields, op.name
    for op in OPERATIONS.values():
        if not op.in_engine:
            assert not hasattr(Engine, op.name), op.name


def test_openapi_documents_every_route() -> None:
    # The Seldon routes (the /v2 paths: tests/unit/test_api_docs.py)
    paths = document(v2=False)["paths"]
    assert set(paths) == set(ROUTES)
    for path, route in ROUTES.items():
        assert paths[path], path
        assert {method.upper() for method in paths[path]} <= route.methods, path
    # aliases are documented as the path they stand for
    assert paths["/api/v1.0/predictions"] == paths["/predict"]
    assert paths["/api/v0.1/feedback"] == paths["/send-feedback"]
    assert paths["/api/v1.0/health/status"] == paths["/health/status"]
    orjson.dumps(document())  # serialisable as served


# ----------------------------------------------------------------------------- requests


def test_rest_request_reads_where_called() -> None:
    body = b'{"data": {"ndarray": [[1, 2]]}}'
    request = RestRequest(body, JsonCodec(), "application/json", b"", request_payload)
    assert request.read() == {"data": {"ndarray": [[1, 2]]}}
    # the type says None already; the test checks the code agrees
    assert NoBody(JsonCodec()).read() is None  # type: ignore[func-returns-value]


def test_grpc_request_keeps_bytes_or_parses() -> None:
    data = pb.Feedback(reward=1.5).SerializeToString()
    assert GrpcRequest(data, BytesCodec(), None).read() == data
    assert GrpcRequest(data, BytesCodec(), pb.Feedback).read().reward == 1.5
    with pytest.raises(MalformedMessage):
        GrpcRequest(b"\xff\xff\xff", BytesCodec(), pb.Feedback).read()


# ----------------------------------------------------------------------------- engine + calls


class Model:
    def predict(self, X: Any, names: Any) -> Any:
        return X * 2


class RawFallsThrough(Model):
    def predict_raw(self, request: Any) -> Any:
        raise SeldonNotImplementedError("not here")


class RawAnswers(Model):
    def predict_raw(self, request: Any) -> Any:
        return {"jsonData": {"raw": True}, "status": {"code": 201}}


class DeprecatedFeedback:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def send_feedback_rest(self, request: Any) -> Any:
        self.seen.append(request)
        return None


BODY = {"data": {"ndarray": [[1, 2]]}}


def _predict(user: Any) -> tuple[int, Any]:
    status, body = run_sync(Engine(user).predict(BODY, JsonCodec()))
    return status, orjson.loads(body)


def test_raw_method_falls_through_to_predict() -> None:
    assert _predict(RawFallsThrough()) == _predict(Model())
    status, answer = _predict(Model())
    assert status == 200 and answer["data"]["ndarray"] == [[2, 4]]


def test_raw_predict_answer_sets_the_status() -> None:
    assert _predict(RawAnswers()) == (201, {"jsonData": {"raw": True}, "status": {"code": 201}})


def test_deprecated_feedback_gets_json_text_and_none_is_empty() -> None:
    user = DeprecatedFeedback()
    codec = FeedbackJsonCodec()
    feedback = codec.parse_feedback({"reward": 1.0})
    status, body = run_sync(Engine(user).send_feedback(feedback, codec))
    assert (status, orjson.loads(body)) == (200, {})
    assert len(user.seen) == 1 and isinstance(user.seen[0], str)
    assert orjson.loads(user.seen[0]) == {"reward": 1.0}


class AsyncModel:
    async def predict(self, X: Any, names: Any) -> Any:
        return X + 1


@pytest.mark.parametrize("user", [Model(), AsyncModel()], ids=["sync", "async"])
def test_invoker_runs_sync_on_threads_and_async_on_the_loop(user: Any) -> None:
    async def run() -> tuple[int, Any]:
        invoker = Invoker(Engine(user), threads=1)
        try:
            body = orjson.dumps(BODY)
            request = RestRequest(body, JsonCodec(), "application/json", b"", request_payload)
            return await invoker.call("predict", request)
        finally:
            invoker.close()

    status, body = asyncio.run(run())
    expected = [[2, 4]] if isinstance(user, Model) else [[2, 3]]
    assert (status, orjson.loads(body)["data"]["ndarray"]) == (200, expected)
