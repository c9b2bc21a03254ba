"""OpenTelemetry tracing end to end: a real server with --tracing exports over OTLP to
a collector this test runs on 127.0.0.1 (tests/otlp_collector.py), which decodes the
protobuf it receives. Nothing of the SDK is mocked."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

pytest.importorskip("opentelemetry.sdk", reason="the tracing extra is not installed")
pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto is not installed")

from tests.conftest import FIXTURES, wait_until
from tests.e2e.test_graph_cli import GraphServer
from tests.otlp_collector import CLIENT_KIND, SERVER_KIND, STATUS_ERROR, Collector
from unitserve.proto import inference_pb2 as v2pb
from unitserve.proto import prediction_pb2 as pb

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
V2_TRACE = "11f067aa0ba902b700f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
GRAPHS = FIXTURES / "graphs"
BODY = {"data": {"ndarray": [[1.0, 2.0]]}, "meta": {"puid": "puid-123"}}


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def tracing_env(endpoint: str, **extra: str) -> dict[str, str]:
    return {
        "TRACING": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: spans arrive while the test waits
        **extra,
    }


def spans_of(collector: Collector, trace_id: str, count: int) -> list[Any]:
    return wait_until(lambda: len(s := collector.trace(trace_id)) >= count and s, timeout=20)


def spans_named(collector: Collector, trace_id: str, *names: str) -> dict[str, Any]:
    """The trace's spans by name, once every one of `names` has arrived: the server span
    ends last and may leave in a later export than its children, so a count of spans
    is not enough to wait for."""

    def arrived() -> dict[str, Any]:
        found = by_name(collector.trace(trace_id))
        return found if set(names) <= found.keys() else {}

    return wait_until(arrived, timeout=20)


def by_name(spans: list[Any]) -> dict[str, Any]:
    return {s.name: s for s in spans}


def test_rest_request_is_one_server_span_with_children(fresh_server: Any, collector: Collector):
    server = fresh_server(
        "Identity", "--access-log", "--log-format", "json", env=tracing_env(collector.endpoint)
    )
    answer = server.post(
        "/api/v1.0/predictions",
        json=BODY,
        headers={"traceparent": TRACEPARENT, "tracestate": "vendor=value"},
    )
    assert answer.status_code == 200
    spans = by_name(spans_of(collector, TRACE_ID, 5))
    root = spans["POST /api/v1.0/predictions"]
    assert root.kind == SERVER_KIND
    assert root.parent_id == PARENT_ID  # the caller's span, from traceparent
    assert root.attributes["http.request.method"] == "POST"
    assert root.attributes["http.route"] == "/api/v1.0/predictions"
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["unitserve.model.name"] == "Identity"
    assert root.attributes["seldon.puid"] == "puid-123"
    assert root.resource["service.name"] == "Identity"  # OTEL_SERVICE_NAME unset
    for child in ("parse", "decode", "predict", "encode"):
        assert spans[child].parent_id == root.span_id, child
    assert root.status != STATUS_ERROR
    assert collector.paths[0] == "/v1/traces"
    # the JSON access line carries the request's trace id
    access = wait_until(
        lambda: [
            line
            for line in server.log().splitlines()
            if '"unitserve.access"' in line and "/api/v1.0/predictions" in line
        ]
    )
    line = json.loads(access[0])
    assert line["trace_id"] == TRACE_ID
    assert line["puid"] == answer.json()["meta"]["puid"] == "puid-123"  # the answer's puid


def test_a_500_marks_the_server_span_failed(fresh_server: Any, collector: Collector):
    server = fresh_server("Failing", env=tracing_env(collector.endpoint))
    answer = server.post("/api/v1.0/predictions", json=BODY, headers={"traceparent": TRACEPARENT})
    assert answer.status_code == 500
    spans = spans_named(collector, TRACE_ID, "POST /api/v1.0/predictions", "predict")
    root = spans["POST /api/v1.0/predictions"]
    assert root.status == STATUS_ERROR
    assert root.attributes["http.response.status_code"] == 500
    assert root.attributes["error.type"] == "500"
    predict = spans["predict"]
    assert predict.status == STATUS_ERROR
    assert "exception" in predict.events
    assert predict.parent_id == root.span_id


def test_open_inference_and_grpc_requests_are_traced(fresh_server: Any, collector: Collector):
    server = fresh_server("Identity", env=tracing_env(collector.endpoint))
    infer = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}
    answer = server.post(
        "/v2/models/Identity/infer", json=infer, headers={"traceparent": TRACEPARENT}
    )
    assert answer.status_code == 200, answer.text
    grpc_trace = "0af7651916cd43dd8448eb211c80319c"
    with grpc.insecure_channel(server.grpc_target) as channel:
        predict = channel.unary_unary(
            "/seldon.protos.Model/Predict",
            request_serializer=pb.SeldonMessage.SerializeToString,
            response_deserializer=pb.SeldonMessage.FromString,
        )
        message = pb.SeldonMessage()
        message.data.ndarray.values.add().list_value.values.add().number_value = 1.0
        predict(message, metadata=(("traceparent", f"00-{grpc_trace}-{PARENT_ID}-01"),))
        infer_rpc = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=v2pb.ModelInferRequest.SerializeToString,
            response_deserializer=v2pb.ModelInferResponse.FromString,
        )
        request = v2pb.ModelInferRequest(model_name="Identity")
        tensor = request.inputs.add(name="x", datatype="FP64", shape=[1, 2])
        tensor.contents.fp64_contents.extend([1.0, 2.0])
        infer_rpc(request, metadata=(("traceparent", f"00-{V2_TRACE}-{PARENT_ID}-01"),))
    rest = spans_named(collector, TRACE_ID, "POST /v2/models/{model}/infer", "predict")
    assert rest["POST /v2/models/{model}/infer"].kind == SERVER_KIND
    assert rest["predict"].parent_id == rest["POST /v2/models/{model}/infer"].span_id
    rpc = spans_named(collector, grpc_trace, "seldon.protos.Model/Predict", "predict")
    root = rpc["seldon.protos.Model/Predict"]
    assert root.kind == SERVER_KIND and root.parent_id == PARENT_ID
    assert root.attributes["rpc.system"] == "grpc"
    assert root.attributes["rpc.service"] == "seldon.protos.Model"
    assert root.attributes["rpc.method"] == "Predict"
    assert root.attributes["rpc.grpc.status_code"] == 0
    assert rpc["predict"].parent_id == root.span_id
    v2 = spans_named(collector, V2_TRACE, "inference.GRPCInferenceService/ModelInfer", "predict")
    v2_root = v2["inference.GRPCInferenceService/ModelInfer"]
    assert v2_root.kind == SERVER_KIND and v2_root.parent_id == PARENT_ID
    assert v2["predict"].parent_id == v2_root.span_id


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-not-a-trace-01",
        f"00-{'0' * 32}-{PARENT_ID}-01",  # the all-zero trace id is invalid
        f"00-{TRACE_ID}-{PARENT_ID}-01" + "x" * 4000,  # oversized (within the server's head limit)
        "ff-" + "a" * 60,
    ],
)
def test_a_bad_traceparent_starts_a_new_trace(
    fresh_server: Any, collector: Collector, traceparent: str
):
    server = fresh_server("Identity", env=tracing_env(collector.endpoint))
    answer = server.post(
        "/api/v1.0/predictions",
        json=BODY,
        headers={"traceparent": traceparent, "tracestate": "k=" + "v" * 4000},
    )
    assert answer.status_code == 200
    root = wait_until(lambda: collector.named("POST /api/v1.0/predictions"), timeout=20)[0]
    assert root.parent_id == ""  # a new trace: no parent
    assert root.trace_id not in (TRACE_ID, "0" * 32)


def test_otlp_over_grpc(fresh_server: Any, collector: Collector):
    endpoint = collector.start_grpc()
    env = tracing_env(endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_SERVICE_NAME="svc")
    server = fresh_server("Identity", env=env)
    assert server.post("/api/v1.0/predictions", json=BODY).status_code == 200
    root = wait_until(lambda: collector.named("POST /api/v1.0/predictions"), timeout=20)[0]
    assert root.resource["service.name"] == "svc"


def test_an_unreachable_collector_costs_requests_nothing(fresh_server: Any):
    # A collector that accepts connections and never answers: the worst case, where
    # each export waits for its whole timeout. Requests must not wait with it.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(1)
        endpoint = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
        env = tracing_env(endpoint, OTEL_BSP_MAX_QUEUE_SIZE="8", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="8")
        server = fresh_server("Identity", env=env)
        for _ in range(60):
            answer = server.post("/api/v1.0/predictions", json=BODY)
            assert answer.status_code == 200
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout=60)
        log = server.log()
        assert "spans were dropped (the export queue was full" in log, log[-3000:]


def test_a_graph_traces_each_node_and_the_remote_node_joins_the_trace(
    fresh_server: Any, collector: Collector, tmp_path: Path
):
    env = tracing_env(collector.endpoint)
    model = fresh_server("Node", cwd=GRAPHS / "chain" / "model", env=env)
    yaml = tmp_path / "remote.yaml"
    yaml.write_text((GRAPHS / "remote.yaml").read_text().replace("PORT", str(model.http_port)))
    graph = GraphServer(yaml, "--node", f"input={GRAPHS / 'chain' / 'input'}", env=env)
    try:
        wait_until(graph.ready, timeout=60)
        answer = graph.client.post(
            "/api/v1.0/predictions",
            json={"data": {"ndarray": [[1, 2]]}},
            headers={"traceparent": TRACEPARENT},
        )
        assert answer.status_code == 200, answer.text
        # graph server span, node input (local), node model (client), and in the model's
        # process: its server span and its predict. The two processes export on their own
        # schedules: wait for the graph's spans themselves, not for a count.
        wanted = {"node input transform_input", "node model predict", "transform_input"}

        def graph_spans() -> list[Any]:
            spans = collector.trace(TRACE_ID)
            roots = [
                s
                for s in spans
                if s.name == "POST /api/v1.0/predictions" and s.parent_id == PARENT_ID
            ]
            return spans if roots and wanted <= {s.name for s in spans} else []

        spans = wait_until(graph_spans, timeout=20)
        named = by_name(spans)
        graph_root = next(
            s for s in spans if s.name == "POST /api/v1.0/predictions" and s.parent_id == PARENT_ID
        )
        local = named["node input transform_input"]
        remote = named["node model predict"]
        assert local.parent_id == graph_root.span_id and remote.parent_id == graph_root.span_id
        assert remote.kind == CLIENT_KIND
        assert named["transform_input"].parent_id == local.span_id
        node_server = wait_until(
            lambda: [s for s in collector.trace(TRACE_ID) if s.parent_id == remote.span_id]
        )[0]
        assert node_server.name == "POST /predict" and node_server.kind == SERVER_KIND
        node_predict = wait_until(
            lambda: [s for s in collector.named("predict") if s.parent_id == node_server.span_id]
        )
        assert node_predict[0].trace_id == TRACE_ID
    finally:
        graph.stop()
