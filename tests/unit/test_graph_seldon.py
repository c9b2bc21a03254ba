"""`unitserve graph` against Seldon's own recorded expectations for graphs.

The scenarios and their expected answers are data (tests/data/seldon_graph/), each with
the Seldon test it comes from; the nodes are our classes behaving as Seldon's test nodes
(tests/fixtures/graphs/nodes/SeldonNodes.py). Predictions are checked on REST and gRPC.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .graph_harness import GraphHarness

DATA = Path(__file__).parents[1] / "data" / "seldon_graph"
PREDICTIONS = yaml.safe_load((DATA / "predictions.yaml").read_text())
METADATA = yaml.safe_load((DATA / "graph_metadata.yaml").read_text())


def deployment(
    graph: dict[str, Any],
    containers: list[dict[str, Any]] | None = None,
    version: str = "machinelearning.seldon.io/v1alpha2",
) -> str:
    predictor: dict[str, Any] = {"name": "example", "graph": graph}
    if containers:
        predictor["componentSpecs"] = [{"spec": {"containers": containers}}]
    return yaml.safe_dump(
        {
            "apiVersion": version,
            "kind": "SeldonDeployment",
            "metadata": {"name": "seldon-expectation"},
            "spec": {"predictors": [predictor]},
        }
    )


def with_parameters(graph: dict[str, Any], parameters: dict[str, dict[str, int]]) -> None:
    """The scenario's constructor arguments, as the graph's typed node parameters."""
    values = parameters.get(graph["name"], {})
    if values:
        graph["parameters"] = [
            {"name": k, "value": str(v), "type": "INT"} for k, v in values.items()
        ]
    for child in graph.get("children") or []:
        with_parameters(child, parameters)


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[GraphHarness] = []

    def build(case: dict[str, Any], containers: list[dict[str, Any]] | None = None) -> Any:
        graph = dict(case["graph"])
        with_parameters(graph, case.get("parameters", {}))
        classes = {name: f"SeldonNodes.{cls}" for name, cls in case["classes"].items()}
        h = GraphHarness(deployment(graph, containers), classes, tmp_path)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def grpc_json(value: Any) -> Any:
    """What a JSON answer's numbers look like after protobuf (every number a double)."""
    if isinstance(value, bool) or not isinstance(value, int | list | dict):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, list):
        return [grpc_json(v) for v in value]
    return {k: grpc_json(v) for k, v in value.items()}


CASES = [
    pytest.param(case, transport, id=f"{case['id']}-{transport}")
    for case in PREDICTIONS["scenarios"]
    for transport in case.get("transports", ["rest", "grpc"])
]


@pytest.mark.parametrize("case, transport", CASES)
def test_prediction_as_seldon_recorded_it(make: Any, case: dict[str, Any], transport: str) -> None:
    h = make(case)
    expect = case["expect"]
    if transport == "rest":
        r = h.post("/api/v0.1/predictions", json=case["request"])
        assert r.status_code == expect["status"], r.text
        answer = r.json()
        if "body_status" in expect:
            assert answer["status"] == expect["body_status"]
    else:
        answer, _ = h.call("Seldon/Predict", case["request"])
        expect = {k: grpc_json(v) if k == "data" else v for k, v in expect.items()}
    for key, value in expect.get("data", {}).items():  # what Seldon's test looks at
        assert answer["data"][key] == value
    if "tags" in expect:
        tags = answer["meta"]["tags"]
        if transport == "grpc":  # protobuf's Value holds every number as a double
            assert tags == {k: grpc_json(v) for k, v in expect["tags"].items()}
        else:
            assert tags == expect["tags"]
    if "routing" in expect:
        assert answer["meta"]["routing"] == expect["routing"]


@pytest.mark.parametrize("case", PREDICTIONS["feedback"], ids=lambda c: c["id"])
@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_feedback_as_seldon_recorded_it(make: Any, case: dict[str, Any], transport: str) -> None:
    h = make(case)
    expect = case["expect"]
    if transport == "rest":
        r = h.post("/api/v1.0/feedback", json=case["request"])
        assert r.status_code == expect["status"], r.text
        answer = r.json()
    else:
        answer, _ = h.call("Seldon/SendFeedback", case["request"])
    assert answer["data"]["ndarray"] == expect["data"]["ndarray"]
    for node in expect["fed"]:
        assert len(h.user(node).fed) == 1, node


def message(item: list[Any]) -> dict[str, Any]:
    """``[messagetype, names, shape]`` (the data file's short form) → a metadata entry."""
    kind, names, shape = item
    return {"messagetype": kind, "schema": {"names": names, "shape": shape}}


def node_metadata(short: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": short["name"],
        "platform": "seldon",
        "versions": ["generic-node/v0.4"],
        "inputs": [message(m) for m in short["inputs"]],
        "outputs": [message(m) for m in short["outputs"]],
    }


@pytest.mark.parametrize("case", METADATA["cases"], ids=lambda c: c["id"])
@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_graph_metadata_as_seldon_recorded_it(
    make: Any, case: dict[str, Any], transport: str
) -> None:
    containers = []
    expected_models = {}
    for name, short in case["nodes"].items():
        container: dict[str, Any] = {"name": name, "image": METADATA["image"]}
        if short is None:
            expected_models[name] = case["expect_router"]
        else:
            expected_models[name] = node_metadata(short)
            container["env"] = [
                {"name": "MODEL_METADATA", "value": yaml.safe_dump(expected_models[name])}
            ]
        containers.append(container)
    classes = dict.fromkeys(case["nodes"], "Generic")
    h = make({**case, "classes": classes}, containers)
    expected = {
        "name": "example",
        "models": expected_models,
        "graphinputs": [message(m) for m in case["graphinputs"]],
        "graphoutputs": [message(m) for m in case["graphoutputs"]],
    }
    if transport == "rest":
        r = h.get("/api/v1.0/metadata")
        assert r.status_code == 200, r.text
        assert r.json() == expected
    else:
        answer, _ = h.call("Seldon/GraphMetadata", {})
        # the protobuf message names the graph's edges inputs and outputs, and has no
        # empty repeated field
        assert answer == {
            "name": "example",
            "models": {
                name: {k: v for k, v in model.items() if v != []}
                for name, model in expected_models.items()
            },
            "inputs": expected["graphinputs"],
            "outputs": expected["graphoutputs"],
        }
    if case["id"] == "single":  # a node's own metadata keeps its empty custom map
        r = h.get("/api/v1.0/metadata/model")
        assert r.json() == {**expected_models["model"], "custom": {}}
