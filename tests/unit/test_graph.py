"""The walk of a SeldonDeployment's graph, in-process: every node type and route value,
feedback, meta along the path, errors passed through, graph metadata and the graph's
start-up mistakes. The expected answers follow the orchestrator's rules as the graph
contract states them (a route's children, child 0 for non-combiners, a router's own
tags lost, children-first feedback along meta.routing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from unitserve.graph import spec as graph_spec
from unitserve.graph.sources import find_sources

from .engine_harness import RpcError
from .graph_harness import GraphHarness

HEAD = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: test}
spec:
  predictors:
  - name: p
    graph:
"""


def doc(graph: str) -> str:
    return HEAD + "".join(f"      {line}\n" for line in graph.strip("\n").splitlines())


CHAIN = doc(
    """
name: out
type: OUTPUT_TRANSFORMER
children:
- name: in
  type: TRANSFORMER
  children:
  - name: model
"""
)


def router(route: int, combiner: bool = False, children: int = 2) -> str:
    kids = "".join(
        f"""
  - name: c{i}
    type: MODEL
    parameters:
    - {{name: value, value: "{i + 1}", type: FLOAT}}
    - {{name: name, value: c{i}, type: STRING}}"""
        for i in range(children)
    )
    return doc(
        f"""
name: top
type: {"COMBINER" if combiner else "ROUTER"}
{"" if combiner else f'parameters: [{{name: route, value: "{route}", type: INT}}]'}
children:{kids}
"""
    )


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[GraphHarness] = []

    def build(document: str, classes: dict[str, str], **kw: Any) -> GraphHarness:
        h = GraphHarness(document, classes, tmp_path, **kw)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def body(x: Any = None) -> dict[str, Any]:
    return {"data": {"ndarray": x if x is not None else [[1, 2]]}}


CONSTANTS = {"c0": "Constant", "c1": "Constant", "c2": "Constant"}


def test_chain_transforms_predicts_then_transforms_output(make: Any) -> None:
    h = make(CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"})
    r = h.predict(body())
    assert r.status_code == 200
    answer = r.json()
    assert answer["data"]["ndarray"] == [[-4, -6]]
    meta = answer["meta"]
    assert meta["tags"] == {"input": "AddOne", "model": "Double2", "output": "Negate"}
    assert meta["routing"] == {"out": -1, "in": -1, "model": -1}
    assert set(meta["requestPath"]) == {"in", "model", "out"}
    assert r.headers["seldon-puid"] == meta["puid"]
    assert [c[:2] for c in h.node_calls.calls] == [
        ("in", "transform_input"),
        ("model", "predict"),
        ("out", "transform_output"),
    ]


def test_puid_from_the_header_reaches_the_answer(make: Any) -> None:
    h = make(CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"})
    r = h.post("/api/v0.1/predictions", json=body(), headers={"Seldon-Puid": "abc"})
    assert r.headers["seldon-puid"] == "abc"
    assert r.json()["meta"]["puid"] == "abc"


def test_chain_over_grpc(make: Any) -> None:
    h = make(CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"})
    answer, context = h.call("Seldon/Predict", body(), (("seldon-puid", "xyz"),))
    assert answer["data"]["ndarray"] == [[-4.0, -6.0]]
    assert answer["meta"]["routing"] == {"out": -1, "in": -1, "model": -1}
    assert answer["meta"]["puid"] == "xyz"
    assert context.sent == (("seldon-puid", "xyz"),)


@pytest.mark.parametrize("route", [0, 1, 2])
def test_router_sends_to_the_chosen_child_only(make: Any, route: int) -> None:
    h = make(router(route, children=3), {"top": "FixedRouter", **CONSTANTS})
    answer = h.predict(body()).json()
    assert answer["data"]["ndarray"] == [[route + 1.0]]
    # the router's own tags are lost; the chosen child's are kept
    assert answer["meta"]["tags"] == {f"c{route}": route + 1.0}
    assert answer["meta"]["routing"] == {"top": route, f"c{route}": -1}


def test_route_minus_one_runs_every_child_and_keeps_child_0(make: Any) -> None:
    h = make(router(-1), {"top": "FixedRouter", **CONSTANTS})
    answer = h.predict(body()).json()
    assert answer["data"]["ndarray"] == [[1.0]]
    assert answer["meta"]["routing"] == {"top": -1, "c0": -1, "c1": -1}
    assert sorted(c[0] for c in h.node_calls.calls) == ["c0", "c1", "top"]


def test_route_minus_two_returns_the_message_without_children(make: Any) -> None:
    h = make(router(-2), {"top": "FixedRouter", **CONSTANTS})
    answer = h.predict(body([[7, 8]])).json()
    assert answer["data"]["ndarray"] == [[7, 8]]
    assert answer["meta"]["routing"] == {"top": -2}
    assert [c[0] for c in h.node_calls.calls] == ["top"]


@pytest.mark.parametrize("route", [2, 5, -3])
def test_route_out_of_range_is_500_with_a_sentence(make: Any, route: int) -> None:
    h = make(router(route), {"top": "FixedRouter", **CONSTANTS})
    r = h.predict(body())
    assert r.status_code == 500
    info = r.json()["status"]["info"]
    assert "router 'top'" in info and f"route {route}" in info
    assert h.predict(body()).status_code == 500  # and the graph keeps serving
    with pytest.raises(Exception) as raised:  # gRPC: INTERNAL with the same sentence
        h.call("Seldon/Predict", body())
    assert "INTERNAL" in str(raised.value) and f"route {route}" in str(raised.value)


def test_combiner_aggregates_every_child_in_order_and_merges_meta(make: Any) -> None:
    h = make(router(0, combiner=True), {"top": "Sum", **CONSTANTS})
    answer = h.predict(body()).json()
    assert answer["data"]["ndarray"] == [[3.0]]
    assert answer["meta"]["tags"] == {"c0": 1.0, "c1": 2.0, "combiner": "Sum"}
    assert answer["meta"]["routing"] == {"top": -1, "c0": -1, "c1": -1}


@pytest.mark.parametrize("ratio, child", [("1.0", 0), ("0.0", 1)])
def test_random_abtest_follows_ratio_a(make: Any, ratio: str, child: int) -> None:
    graph = doc(
        f"""
name: ab
implementation: RANDOM_ABTEST
parameters: [{{name: ratioA, value: "{ratio}", type: FLOAT}}]
children:
- name: c0
  parameters: [{{name: value, value: "1", type: FLOAT}}, {{name: name, value: c0, type: STRING}}]
- name: c1
  parameters: [{{name: value, value: "2", type: FLOAT}}, {{name: name, value: c1, type: STRING}}]
"""
    )
    h = make(graph, {"c0": "Constant", "c1": "Constant"})
    answer = h.predict(body()).json()
    assert answer["data"]["ndarray"] == [[child + 1.0]]
    assert answer["meta"]["routing"]["ab"] == child


def test_methods_override_the_type(make: Any) -> None:
    graph = doc(
        """
name: both
type: MODEL
methods: [TRANSFORM_INPUT]
"""
    )
    h = make(graph, {"both": "AddOne"})
    assert h.predict(body()).json()["data"]["ndarray"] == [[2, 3]]


def test_feedback_goes_to_the_routed_child_only(make: Any) -> None:
    h = make(router(1), {"top": "FixedRouter", **CONSTANTS})
    prediction = h.predict(body()).json()
    feedback = {"request": body(), "response": prediction, "reward": 1.0}
    r = h.post("/api/v1.0/feedback", json=feedback)
    assert r.status_code == 200
    assert h.user("c1").fed == [1.0]
    assert h.user("c0").fed == []
    assert h.user("top").fed == [1]  # the router gets its own route


def test_feedback_without_routing_reaches_every_child(make: Any) -> None:
    h = make(router(1), {"top": "FixedRouter", **CONSTANTS})
    r = h.post("/api/v1.0/feedback", json={"request": body(), "reward": 0.5})
    assert r.status_code == 200
    assert h.user("c0").fed == [0.5] and h.user("c1").fed == [0.5]


def test_feedback_over_grpc(make: Any) -> None:
    h = make(router(0), {"top": "FixedRouter", **CONSTANTS})
    feedback = {"request": body(), "response": {"meta": {"routing": {"top": 0}}}, "reward": 2}
    h.call("Seldon/SendFeedback", feedback)
    assert h.user("c0").fed == [2.0] and h.user("c1").fed == []


def test_node_error_passes_through_with_status_and_body(make: Any) -> None:
    graph = doc(
        """
name: in
type: TRANSFORMER
children:
- name: model
"""
    )
    h = make(graph, {"in": "AddOne", "model": "Conflict"})
    r = h.predict(body())
    assert r.status_code == 409
    assert r.json()["status"]["info"] == "conflict: try again"
    assert r.headers["content-type"] == "application/json"
    with pytest.raises(Exception) as raised:
        h.call("Seldon/Predict", body())
    assert "ABORTED" in str(raised.value) and "conflict: try again" in str(raised.value)
    assert ("model", "predict", "409") in h.node_calls.calls


def test_a_node_that_raises_gives_500_and_the_graph_keeps_serving(make: Any) -> None:
    h = make(doc("name: model\n"), {"model": "Boom"})
    assert h.predict(body()).status_code == 500
    assert h.predict(body()).json()["status"]["info"] == "boom"


def test_routing_injection_can_be_turned_off(make: Any) -> None:
    h = make(CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"}, routing_injection=False)
    assert "routing" not in h.predict(body()).json()["meta"]


def test_graph_metadata_follows_the_edge_rules(make: Any) -> None:
    h = make(CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"})
    meta = h.get("/api/v1.0/metadata").json()
    assert meta["name"] == "p"
    assert set(meta["models"]) == {"out", "in", "model"}
    assert h.get("/api/v1.0/metadata/model").status_code == 200
    assert h.get("/api/v1.0/metadata/nope").status_code == 404
    assert h.get("/api/v1.0/status/model").json()["strData"] == "healthy"
    grpc_meta, _ = h.call("Seldon/GraphMetadata", {})
    assert grpc_meta["name"] == "p"
    # only the orchestrator's paths: a node's own path is not the graph's
    assert h.post("/predict", json=body()).status_code == 404


def test_a_node_is_asked_for_by_name_on_both_transports(make: Any) -> None:
    """The orchestrator's API names one of the graph's nodes: its metadata and its health
    status; a name the graph has no node of is 404 (NOT_FOUND) with the same sentence."""
    graph = doc(
        """
name: ab
implementation: RANDOM_ABTEST
parameters: [{name: ratioA, value: "1.0", type: FLOAT}]
children:
- name: model
- name: other
"""
    )
    h = make(graph, {"model": "Double", "other": "Double"})
    # a local node: what it said at load, and its own health_status
    own = h.get("/api/v1.0/metadata/model")
    assert (own.status_code, own.json()) == (200, h.graph.nodes["model"].metadata)
    grpc_meta, _ = h.call("Seldon/ModelMetadata", {"name": "model"})
    assert grpc_meta["name"] == own.json()["name"]
    status = h.get("/api/v1.0/status/model")
    assert status.status_code == 200 and status.json()["strData"] == "healthy"
    # a node the orchestrator plays itself: no metadata of its own, always ready
    assert h.get("/api/v1.0/metadata/ab").json() == {}
    assert h.get("/api/v1.0/status/ab").json() == {"status": "ready", "node": "ab"}
    missing = "the graph has no node 'nope'"
    for path in ("/api/v1.0/metadata/nope", "/api/v1.0/status/nope"):
        r = h.get(path)
        assert r.status_code == 404
        # Seldon's error body: its code and status fields as the wrapper writes them
        assert r.json() == {
            "status": {"code": -1, "info": missing, "reason": "MICROSERVICE_NOT_FOUND", "status": 1}
        }
    with pytest.raises(RpcError) as raised:
        h.call("Seldon/ModelMetadata", {"name": "nope"})
    assert raised.value.code == grpc.StatusCode.NOT_FOUND and raised.value.details == missing
    # a member's path has one name after the prefix
    assert h.get("/api/v1.0/status/model/more").status_code == 404


# ----------------------------------------------------------------------------- start-up mistakes


def load(tmp_path: Path, text: str) -> graph_spec.GraphSpec:
    path = tmp_path / "g.yaml"
    path.write_text(text)
    return graph_spec.load(path)


@pytest.mark.parametrize(
    "graph, words",
    [
        ("name: a\ntype: SPLITTER\n", "node 'a': unknown type 'SPLITTER'"),
        ("name: r\ntype: ROUTER\n", "node 'r': a ROUTER needs at least one child"),
        ("name: a\nchildren:\n- name: a\n", "node 'a': the name is used twice"),
        ("name: a\nendpoint: {service_host: h, type: SOAP}\n", "must be REST or GRPC"),
    ],
)
def test_bad_graphs_name_the_node_and_the_problem(tmp_path: Path, graph: str, words: str) -> None:
    with pytest.raises(graph_spec.GraphError) as raised:
        load(tmp_path, doc(graph))
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_node_with_no_class_and_no_endpoint_is_refused(tmp_path: Path) -> None:
    spec = load(tmp_path, doc("name: lonely\n"))
    with pytest.raises(graph_spec.GraphError, match="node 'lonely': no class and no endpoint"):
        find_sources(spec, {}, lambda path: {})


def test_bad_yaml_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(graph_spec.GraphError, match="not valid YAML"):
        load(tmp_path, "spec: [unclosed\n")


def test_yaml_cycle_is_refused(tmp_path: Path) -> None:
    text = doc("&top\nname: a\nchildren:\n- *top\n")
    with pytest.raises(graph_spec.GraphError, match="cycle"):
        load(tmp_path, text)


# ----------------------------------------------------------------------------- async and raw


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_async_node_methods_run_in_the_walk(make: Any, transport: str) -> None:
    graph = doc(
        """
name: in
type: TRANSFORMER
children:
- name: model
"""
    )
    h = make(graph, {"in": "AddOne", "model": "AsyncDouble"})
    if transport == "rest":
        answer = h.predict(body()).json()
        assert answer["data"]["ndarray"] == [[4, 6]]
        feedback = {"request": body(), "response": answer, "reward": 3}
        assert h.post("/api/v1.0/feedback", json=feedback).status_code == 200
    else:
        answer, _ = h.call("Seldon/Predict", body())
        assert answer["data"]["ndarray"] == [[4.0, 6.0]]
        h.call("Seldon/SendFeedback", {"request": body(), "response": answer, "reward": 3})
    assert h.user("model").fed == [3.0]


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_raw_methods_get_the_wire_form_of_the_clients_transport(make: Any, transport: str) -> None:
    graph = doc(
        """
name: in
type: TRANSFORMER
children:
- name: model
"""
    )
    h = make(graph, {"in": "AddOne", "model": "RawAddTen"})
    if transport == "rest":
        answer = h.predict(body()).json()
    else:
        answer, _ = h.call("Seldon/Predict", body())
    assert answer["data"]["ndarray"] == [[12, 13]]
    # a raw method's answer is its own: the request's tags are not merged into it, as for
    # `unitserve serve` and Seldon's wrapper
    assert answer["meta"]["tags"] == {"raw": "predict"}
    assert answer["meta"]["routing"] == {"in": -1, "model": -1}


@pytest.mark.parametrize("transport", ["rest", "grpc"])
@pytest.mark.parametrize("x, child", [(5, 0), (-5, 1)])
def test_raw_router_and_raw_combiner(make: Any, transport: str, x: int, child: int) -> None:
    graph = doc(
        """
name: top
type: COMBINER
children:
- name: router
  type: ROUTER
  children:
  - name: c0
    parameters: [{name: value, value: "1", type: FLOAT}]
  - name: c1
    parameters: [{name: value, value: "2", type: FLOAT}]
- name: c2
  parameters: [{name: value, value: "3", type: FLOAT}]
"""
    )
    classes = {"top": "RawCombiner", "router": "RawRouter", **CONSTANTS}
    h = make(graph, classes)
    if transport == "rest":
        answer = h.predict(body([[x]])).json()
    else:
        answer, _ = h.call("Seldon/Predict", body([[x]]))
    assert answer["data"]["ndarray"] == [[child + 1.0, 3.0]]
    assert answer["meta"]["routing"]["router"] == child


def test_the_graphs_grpc_server_offers_only_the_orchestrators_service(make: Any) -> None:
    from unitserve.metrics.worker import NoRequestMetrics
    from unitserve.proto import INFERENCE_SERVICE_NAME, SERVICE_NAMES
    from unitserve.transport.accounting import RequestAccounting
    from unitserve.transport.grpc.server import GrpcServer

    h = make(CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"})
    assert set(h.grpc_services) == {"seldon.protos.Seldon"}
    accounting = RequestAccounting(NoRequestMetrics())
    from unitserve.models.dataplane import DataPlane
    from unitserve.models.model_settings import ModelSettings
    from unitserve.models.registry import ModelRegistry
    from unitserve.models.served_model import ServedModel
    from unitserve.runtime.control import LocalChannel

    async def servers() -> tuple[GrpcServer, GrpcServer, ModelRegistry]:  # on a loop, as a worker
        # The services follow the registry's default model: the graph, or one of its
        # nodes' classes served alone.
        graph_server = GrpcServer(h.registry, "127.0.0.1", 0, None, accounting, 1)
        alone = ModelRegistry(LocalChannel())
        alone.add(ServedModel(ModelSettings(implementation="Double"), h.user("model")))
        plane = DataPlane(alone)
        return graph_server, GrpcServer(alone, "127.0.0.1", 0, None, accounting, 1, plane), alone

    graph_server, one_model, alone = h.loop.run_until_complete(servers())
    # what reflection lists and health reports: the Seldon service alone
    assert graph_server.served == ["seldon.protos.Seldon"]
    assert one_model.served == [*SERVICE_NAMES, INFERENCE_SERVICE_NAME]
    for server in (graph_server, one_model):  # never started: frees their thread pools
        server.server.stop(None)
    alone.close()


def test_error_bodies_are_json_and_not_html_escaped(make: Any) -> None:
    graph = doc("name: in\ntype: TRANSFORMER\nchildren:\n- name: model\n")
    h = make(graph, {"in": "AddOne", "model": "Picky"})
    r = h.predict(body())
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/json"
    assert r.json()["status"]["info"] == "x must be > 0 & < 10, not <script>"
    assert b"\\u003c" not in r.content and b"&lt;" not in r.content


def _unreachable_remote(kind: str) -> str:
    """A transformer whose child is a remote node (REST or GRPC) on a loopback port
    nobody listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = "httpPort" if kind == "REST" else "grpcPort"
    return doc(
        f"""
name: in
type: TRANSFORMER
children:
- name: model
  endpoint: {{service_host: 127.0.0.1, {key}: {port}, type: {kind}}}
"""
    )


@pytest.mark.parametrize("kind", ["REST", "GRPC"])
def test_an_unreachable_remote_node_is_a_500_naming_it(make: Any, kind: str) -> None:
    graph = _unreachable_remote(kind)
    h = make(graph, {"in": "AddOne"}, env={"UNITSERVE_REQUEST_TIMEOUT": "5"})
    for _ in range(2):  # and the graph keeps answering
        r = h.predict(body())
        assert r.status_code == 500
        status = r.json()["status"]
        assert status["status"] == "FAILURE" and "node 'model'" in status["info"]


@pytest.mark.parametrize("kind", ["REST", "GRPC"])
def test_ready_waits_for_every_remote_node(make: Any, kind: str) -> None:
    graph = _unreachable_remote(kind)
    h = make(graph, {"in": "AddOne"})
    r = h.get("/ready")
    assert r.status_code == 503
    assert "node 'model'" in r.json()["status"]["info"]
    assert h.get("/live").status_code == 200


@pytest.mark.parametrize("kind", ["REST", "GRPC"])
def test_a_remote_nodes_status_is_asked_of_it_over_rest(make: Any, kind: str) -> None:
    graph = _unreachable_remote(kind)
    h = make(graph, {"in": "AddOne"}, env={"UNITSERVE_REQUEST_TIMEOUT": "5"})
    r = h.get("/api/v1.0/status/model")
    if kind == "REST":  # its /health/status, which nobody answers
        assert r.status_code == 500 and "node 'model'" in r.json()["status"]["info"]
    else:  # a gRPC node is not asked
        assert (r.status_code, r.json()) == (200, {"status": "ready", "node": "model"})
    assert h.get("/api/v1.0/metadata/model").json() == {}  # it said nothing at load


def test_ready_with_local_nodes_only(make: Any) -> None:
    h = make(CHAIN, {"out": "Negate", "in": "AddOne", "model": "Double"})
    assert h.get("/ready").status_code == 200


def test_a_remote_rest_node_gets_the_request_id_as_seldon_puid(make: Any) -> None:
    import http.server
    import threading

    seen: list[str | None] = []

    class Node(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            seen.append(self.headers.get("seldon-puid"))
            answer = b'{"data": {"ndarray": [[7]]}}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Node)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        graph = doc(
            f"""
name: in
type: TRANSFORMER
children:
- name: model
  endpoint: {{service_host: 127.0.0.1, httpPort: {port}, type: REST}}
"""
        )
        h = make(graph, {"in": "AddOne"})
        r = h.post("/api/v1.0/predictions", json=body(), headers={"Seldon-Puid": "req-1"})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["ndarray"] == [[7]]
        assert seen == ["req-1"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
