"""Every folder of examples/ served as a container would serve it — `unitserve serve`
with no class argument, from the folder, reading .s2i/environment — and called
over REST (and gRPC where the example is about a gRPC-visible behaviour)."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from ..client_venvs import client_python
from ..conftest import Server, wait_until
from .grpc_client import RpcError, call_json
from .test_graph_cli import GraphServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class S2iServer(Server):
    """`unitserve serve` started without an interface name, in an example folder."""

    def __init__(self, folder: str, *flags: str, env: dict[str, str] | None = None) -> None:
        super().__init__("s2i-start", *flags, env=env, cwd=EXAMPLES / folder)
        self.command.remove("s2i-start")

    def scrape(self, path: str = "/metrics") -> str:
        r = httpx.get(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=10)
        assert r.status_code == 200
        return r.text

    def predict(self, body: object, path: str = "/api/v1.0/predictions") -> httpx.Response:
        return self.post(path, json=body)


@pytest.fixture(scope="module")
def example() -> Iterator[object]:
    """example(folder, *flags, env=None) → a started S2iServer, shared within this module."""
    servers: dict[tuple, S2iServer] = {}

    def get(folder: str, *flags: str, env: dict[str, str] | None = None) -> S2iServer:
        key = (folder, flags, tuple(sorted((env or {}).items())))
        if key not in servers:
            servers[key] = S2iServer(folder, *flags, env=env).start()
        return servers[key]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def graph_example() -> Iterator[Any]:
    """graph_example(folder) → `unitserve graph graph.yaml` started in examples/folder,
    shared within this module."""
    servers: dict[str, GraphServer] = {}

    def get(folder: str) -> GraphServer:
        if folder not in servers:
            server = GraphServer(Path("graph.yaml"), cwd=EXAMPLES / folder)
            servers[folder] = server
            wait_until(server.ready, timeout=60)
        return servers[folder]

    yield get
    for server in servers.values():
        server.stop()


def _is_graph(folder: Path) -> bool:
    return (folder / "graph.yaml").is_file()


def test_every_example_has_a_class_file_readme_and_s2i_environment():
    folders = sorted(p for p in EXAMPLES.iterdir() if p.is_dir())
    assert len(folders) >= 15
    graphs = [f for f in folders if _is_graph(f)]
    for graph in graphs:
        # a graph: graph.yaml, a one-line README, a component folder per local node
        readme = (graph / "README.md").read_text().strip()
        assert readme and "\n" not in readme, f"{graph.name}: README is one line"
        tested = re.search(rf"graph_example\(\s*\"{graph.name}\"", Path(__file__).read_text())
        assert tested, f"{graph.name} has no end-to-end test here"
        nodes = [p for p in graph.iterdir() if p.is_dir()]
        assert nodes, graph
        folders += nodes
    for folder in folders:
        if _is_graph(folder):
            continue
        in_graph = _is_graph(folder.parent)  # tested with its graph
        env = dict(
            line.split("=", 1) for line in (folder / ".s2i/environment").read_text().splitlines()
        )
        assert (folder / f"{env['MODEL_NAME']}.py").is_file(), folder
        assert env["SERVICE_TYPE"] in {
            "MODEL",
            "TRANSFORMER",
            "OUTPUT_TRANSFORMER",
            "ROUTER",
            "COMBINER",
        }
        readme = (folder / "README.md").read_text().strip()
        assert readme and "\n" not in readme, f"{folder.name}: README is one line"
        if in_graph:
            continue
        tested = re.search(rf"example\(\s*\"{folder.name}\"", Path(__file__).read_text())
        assert tested, f"{folder.name} has no end-to-end test here"


def test_identity(example):
    server = example("identity")
    out = server.predict({"data": {"names": ["a", "b"], "ndarray": [[1, 2]]}}).json()
    assert out == {"data": {"names": ["t:0", "t:1"], "ndarray": [[1, 2]]}, "meta": {}}
    grpc_out = call_json(server.grpc_target, "Model/Predict", {"data": {"ndarray": [[1, 2]]}})
    assert grpc_out["data"] == {"names": ["t:0", "t:1"], "ndarray": [[1.0, 2.0]]}


def test_class_names(example):
    server = example("class_names")
    out = server.predict({"data": {"ndarray": [[0.5, 1.5], [-3, 1]]}}).json()["data"]
    assert out["names"] == ["negative", "positive"]
    probs = np.array(out["ndarray"])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 1] > 0.5 > probs[1, 1]
    grpc_out = call_json(
        server.grpc_target,
        "Model/Predict",
        {"data": {"tensor": {"shape": [1, 2], "values": [0.5, 1.5]}}},
    )
    assert grpc_out["data"]["names"] == ["negative", "positive"]
    assert grpc_out["data"]["tensor"]["shape"] == [1, 2]


def test_input_transformer(example):
    server = example("input_transformer")
    body = {"data": {"ndarray": [[5.8, 3.0, 3.8, 1.2], [6.6, 3.4, 5.6, 2.0]]}}
    out = server.predict(body, "/transform-input").json()["data"]["ndarray"]
    assert np.allclose(out, [[0, 0, 0, 0], [1, 1, 1, 1]])
    grpc_out = call_json(server.grpc_target, "Transformer/TransformInput", body)
    assert np.allclose(grpc_out["data"]["ndarray"], [[0, 0, 0, 0], [1, 1, 1, 1]])


def test_output_transformer(example):
    server = example("output_transformer")
    body = {"data": {"ndarray": [[0.1, 0.7, 0.2], [0.9, 0.05, 0.05]]}}
    out = server.predict(body, "/transform-output").json()
    assert out["data"] == {"names": ["species"], "ndarray": [["versicolor"], ["setosa"]]}
    grpc_out = call_json(server.grpc_target, "OutputTransformer/TransformOutput", body)
    assert grpc_out["data"]["ndarray"] == [["versicolor"], ["setosa"]]


def test_combiner(example):
    server = example("combiner")
    children = [{"data": {"ndarray": [[1, 2]]}}, {"data": {"ndarray": [[3, 6]]}}]
    assert server.predict(children, "/aggregate").json()["data"]["ndarray"] == [[2.0, 4.0]]
    wrapped = {"seldonMessages": children}
    assert server.predict(wrapped, "/aggregate").json()["data"]["ndarray"] == [[2.0, 4.0]]
    grpc_out = call_json(server.grpc_target, "Combiner/Aggregate", wrapped)
    assert grpc_out["data"]["ndarray"] == [[2.0, 4.0]]


def route(server: S2iServer, features: list) -> dict:
    return server.predict({"data": {"ndarray": features}}, "/route").json()["data"]


def test_router(example):
    server = example("router")
    assert route(server, [[0.1, 0.2]]) == {"names": ["t:0"], "ndarray": [[0]]}
    assert route(server, [[5, 6]])["ndarray"] == [[1]]
    grpc_out = call_json(server.grpc_target, "Router/Route", {"data": {"ndarray": [[5, 6]]}})
    assert grpc_out["data"]["ndarray"] == [[1.0]]
    # Feedback: the routing the executor recorded for this node ("0" without
    # PREDICTIVE_UNIT_ID) reaches send_feedback as `routing`.
    feedback = {
        "request": {"data": {"ndarray": [[5, 6]]}},
        "response": {"meta": {"routing": {"0": 1}}, "data": {"ndarray": [[1]]}},
        "reward": 1.0,
    }
    r = server.post("/api/v1.0/feedback", json=feedback)
    assert r.status_code == 200
    assert r.json()["jsonData"]["rewards"]["1"] >= 1.0


def test_router_threshold_parameter(example):
    server = example(
        "router", "--parameters", '[{"name": "threshold", "value": "10", "type": "FLOAT"}]'
    )
    assert route(server, [[5, 6]])["ndarray"] == [[0]]


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample `name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics(example):
    server = example("metrics")
    for _ in range(2):
        out = server.predict({"data": {"ndarray": [[1, 2], [3, 4]]}}).json()
        assert out["data"]["ndarray"] == [[2.0, 4.0], [6.0, 8.0]]
    keys = [m["key"] for m in out["meta"]["metrics"]]
    assert keys == [
        "metered_rows",
        "metered_last_batch_rows",
        "metered_compute_seconds",
        "metered_calls",
    ]
    text = server.scrape()
    assert _sample(text, "metered_rows_total", method="predict") == 4.0
    assert _sample(text, "metered_last_batch_rows", method="predict") == 2.0
    assert _sample(text, "metered_compute_seconds_count", method="predict") == 2.0
    assert _sample(text, "metered_compute_seconds_bucket", le="+Inf") == 2.0
    assert _sample(text, "metered_calls_total", kind="batch", method="predict") == 2.0
    assert _sample(text, "metered_rows_total", worker_id="0") == 4.0
    assert "metered_rows_total" in server.scrape("/prometheus")


def test_tags(example):
    server = example("tags")
    body = {
        "meta": {"tags": {"client": "web", "model": "from-request"}},
        "data": {"ndarray": [[1]]},
    }
    meta = server.predict(body).json()["meta"]
    assert meta["tags"] == {"client": "web", "model": "tagged", "version": "1.0.0"}


def test_runtime_tags_and_metrics(example):
    server = example("runtime_tags_metrics")
    out = server.predict({"data": {"ndarray": [[1, 2], [3, 4]]}}).json()
    assert out["data"]["ndarray"] == [[3.0], [7.0]]
    assert out["meta"]["tags"] == {"source": "runtime", "model": "row-counter", "rows": 2}
    assert out["meta"]["metrics"] == [
        {"type": "COUNTER", "key": "rows_seen", "value": 2},
        {"type": "GAUGE", "key": "last_rows", "value": 2},
    ]
    grpc_meta = call_json(server.grpc_target, "Model/Predict", {"data": {"ndarray": [[1, 2]]}})[
        "meta"
    ]
    assert grpc_meta["tags"]["source"] == "runtime"
    text = server.scrape()
    assert _sample(text, "rows_seen_total", method="predict") == 3.0
    assert _sample(text, "last_rows", method="predict") == 1.0


def test_health_status(example):
    server = example("health")
    server.predict({"data": {"ndarray": [[1]]}})
    status = server.get("/health/status").json()["jsonData"]
    assert status["status"] == "ok" and status["predictions"] == 1
    assert server.get("/health/ping").text == "pong"
    assert server.get("/ready").status_code == 200


def test_predict_raw_forces_float64(example):
    server = example("raw_float64")
    out = server.predict({"data": {"ndarray": [[1, 3], [2, 2]]}}).json()
    assert out == {
        "data": {"names": ["share_0", "share_1"], "ndarray": [[0.25, 0.75], [0.5, 0.5]]},
        "meta": {"tags": {"dtype": "float64"}},
    }
    grpc_out = call_json(
        server.grpc_target,
        "Model/Predict",
        {"data": {"tensor": {"shape": [1, 2], "values": [1, 3]}}},
    )
    assert grpc_out["data"]["ndarray"] == [[0.25, 0.75]]
    assert grpc_out["meta"]["tags"] == {"dtype": "float64"}


def test_object_array(example):
    server = example("object_array")
    out = server.predict({"data": {"ndarray": [[0.2, 0.9], [0.1, 0.3]]}}).json()
    assert out["data"] == {"names": ["label", "score"], "ndarray": [["high", 0.9], ["low", 0.3]]}
    grpc_out = call_json(server.grpc_target, "Model/Predict", {"data": {"ndarray": [[0.2, 0.9]]}})
    assert grpc_out["data"]["ndarray"] == [["high", 0.9]]


def test_error_handler(example):
    server = example("error_handler")
    ok = server.predict({"data": {"ndarray": [[5, 1]]}})
    assert ok.status_code == 200 and ok.json()["data"]["ndarray"] == [[4.0]]
    handled = server.predict({"data": {"ndarray": [[1, 5]]}})
    assert handled.status_code == 402
    assert handled.json() == {
        "status": {"app_code": 1402, "info": "1 row(s) exceed the credit", "status": 1}
    }
    shaped = server.predict({"data": {"ndarray": [[1, 2, 3]]}})
    assert shaped.status_code == 422
    assert shaped.json() == {
        "status": {
            "code": -1,
            "info": "expected rows of [credit, price]",
            "reason": "BAD_SHAPE",
            "status": 1,
        }
    }
    with pytest.raises(RpcError) as err:
        call_json(server.grpc_target, "Model/Predict", {"data": {"ndarray": [[1, 2, 3]]}})
    assert err.value.code.name == "INVALID_ARGUMENT"
    assert "expected rows of [credit, price]" in err.value.details


def test_numpy_classifier_trained_in_load(example):
    server = example("numpy_classifier")
    with (EXAMPLES / "numpy_classifier" / "flowers.csv").open() as f:
        rows = list(csv.reader(f))[1:]
    X = [[float(v) for v in r[:-1]] for r in rows]
    truth = [r[-1] for r in rows]
    out = server.predict({"data": {"ndarray": X}}).json()["data"]
    assert out["names"] == ["setosa", "versicolor", "virginica"]
    predicted = [out["names"][i] for i in np.argmax(out["ndarray"], axis=1)]
    assert np.mean(np.array(predicted) == np.array(truth)) > 0.9
    grpc_out = call_json(
        server.grpc_target,
        "Model/Predict",
        {"data": {"tensor": {"shape": [1, 4], "values": [5.0, 3.4, 1.5, 0.2]}}},
    )
    assert int(np.argmax(grpc_out["data"]["tensor"]["values"])) == 0
    meta = server.get("/metadata").json()
    assert meta["inputs"][0]["schema"]["names"][0] == "sepal_length"


def test_batching_sklearn_answers_each_client_its_own_rows(example):
    pytest.importorskip("sklearn")  # an example-only dependency
    import concurrent.futures
    import importlib.util

    server = example("batching_sklearn", "--max-batch-size", "64", "--max-batch-time", "5")
    spec = importlib.util.spec_from_file_location(
        "forest_example", EXAMPLES / "batching_sklearn" / "ForestClassifier.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    forest = module.trained_forest()  # the same seed: the same forest as the server's
    rows = module.training_data()[0][:48]
    expected = forest.predict_proba(rows)

    def client(i: int) -> list[float]:
        body = {"data": {"ndarray": [rows[i].tolist()]}}
        with httpx.Client(base_url=server.url, timeout=60) as c:
            out = c.post("/api/v1.0/predictions", json=body).json()["data"]
        assert out["names"] == ["class_0", "class_1", "class_2"]
        return out["ndarray"][0]

    with concurrent.futures.ThreadPoolExecutor(48) as pool:
        answers = list(pool.map(client, range(48)))
    assert np.allclose(np.array(answers), expected)


def test_numpy_classifier_data_is_reproducible(tmp_path):
    folder = EXAMPLES / "numpy_classifier"
    shutil.copy(folder / "make_data.py", tmp_path)
    subprocess.run([sys.executable, "make_data.py"], cwd=tmp_path, check=True, timeout=60)
    assert (tmp_path / "flowers.csv").read_bytes() == (folder / "flowers.csv").read_bytes()


def test_metadata(example):
    server = example("metadata")
    meta = server.get("/metadata").json()
    assert meta == {
        "name": "price-model",
        "versions": ["2024-06"],
        "platform": "numpy",
        "inputs": [{"messagetype": "ndarray", "schema": {"names": ["size", "rooms"]}}],
        "outputs": [{"name": "price", "datatype": "FP64", "shape": [1]}],
        "custom": {"team": "pricing"},
    }
    grpc_meta = call_json(server.grpc_target, "Model/Metadata", {})
    assert grpc_meta["name"] == "price-model" and grpc_meta["outputs"][0]["shape"] == ["1"]


def test_metadata_environment_override(example):
    server = example("metadata", env={"MODEL_METADATA": "platform: sklearn\nversions: [v9]"})
    meta = server.get("/metadata").json()
    assert meta["platform"] == "sklearn" and meta["versions"] == ["v9"]
    assert meta["name"] == "price-model"


def run_triton(server: S2iServer, which: str) -> dict:
    """What NVIDIA's tritonclient (its own virtual environment: its pins clash with
    ours) saw calling the example over HTTP and gRPC."""
    done = subprocess.run(
        [
            str(client_python("tritonclient")),
            str(Path(__file__).parent / "clients" / "triton_examples.py"),
            f"127.0.0.1:{server.http_port}",
            server.grpc_target,
            which,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_v2_numeric_with_tritonclient(example):
    server = example("v2_numeric")
    r = server.post(
        "/v2/models/HousePrices/infer",
        json={
            "inputs": [
                {
                    "name": "features",
                    "shape": [2, 3],
                    "datatype": "FP32",
                    "data": [[80, 3, 20], [120, 4, 5]],
                }
            ]
        },
    )
    assert r.json()["outputs"] == [
        {"name": "output-0", "datatype": "FP32", "shape": [2], "data": [325000.0, 467500.0]}
    ]
    seen = run_triton(server, "numeric")
    assert seen["ready"]
    assert seen["metadata"]["inputs"] == [
        {"name": "features", "datatype": "FP32", "shape": [-1, 3]}
    ]
    assert seen["grpc_metadata_inputs"] == seen["metadata"]["inputs"]
    expected = {"dtype": "float32", "shape": [2], "data": [325000.0, 467500.0]}
    for way in ("http_json", "http_binary", "grpc"):
        assert seen[way]["outputs"] == {"output-0": expected}, way
    assert (seen["http_json"]["id"], seen["grpc"]["id"]) == ("ex-1", "ex-2")


def test_v2_text_with_tritonclient(example):
    server = example("v2_text")
    text = {"name": "text", "shape": [2], "datatype": "BYTES", "data": ["Hello  World", "Über"]}
    r = server.post("/v2/models/TextStats/infer", json={"inputs": [text]})
    assert [(o["name"], o["datatype"], o["data"]) for o in r.json()["outputs"]] == [
        ("normalized", "BYTES", ["hello world", "über"]),
        ("word_count", "INT32", [2, 1]),
    ]
    as_str = {**text, "parameters": {"content_type": "str"}}
    r = server.post("/v2/models/TextStats/infer", json={"inputs": [as_str]})
    assert r.json()["outputs"][1]["data"] == [2, 1]
    seen = run_triton(server, "text")
    assert seen["ready"]
    assert [o["name"] for o in seen["metadata"]["outputs"]] == ["normalized", "word_count"]
    expected = {
        "normalized": {"dtype": "object", "shape": [3], "data": ["hello world", "über straße", ""]},
        "word_count": {"dtype": "int32", "shape": [3], "data": [2, 2, 0]},
    }
    for way in ("http_json", "http_binary", "grpc"):
        assert seen[way]["outputs"] == expected, way


# ----------------------------------------------------------------------------- graphs


def test_graph_chain(graph_example):
    server = graph_example("graph_chain")
    r = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[9, 7], [1, 2]]}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["ndarray"] == ["high", "low"]
    assert r.json()["meta"]["routing"] == {"label": -1, "scale": -1, "score": -1}
    grpc_out = call_json(
        f"127.0.0.1:{server.grpc_port}", "Seldon/Predict", {"data": {"ndarray": [[9, 7]]}}
    )
    assert grpc_out["data"]["ndarray"] == ["high"]


def test_graph_ab_router_learns_from_feedback(graph_example):
    server = graph_example("graph_ab_router")

    def predict() -> dict[str, Any]:
        r = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[2, 4]]}})
        assert r.status_code == 200, r.text
        return r.json()

    def reward(answer: dict[str, Any], value: float) -> dict[str, Any]:
        r = server.client.post(
            "/api/v1.0/feedback",
            json={"request": {"data": {"ndarray": [[2, 4]]}}, "response": answer, "reward": value},
        )
        assert r.status_code == 200, r.text
        return r.json()

    first = predict()  # each child is tried once: a, then b
    assert first["meta"]["routing"]["chooser"] == 0 and first["data"]["ndarray"] == [[6.0]]
    reward(first, 0.0)
    second = predict()
    assert second["meta"]["routing"]["chooser"] == 1 and second["data"]["ndarray"] == [[3.0]]
    assert second["meta"]["tags"] == {"variant": "b"}
    # feedback reaches the router with its own route; its answer is the router's
    assert reward(second, 1.0)["jsonData"] == {"tries": [1, 1], "rewards": [0.0, 1.0]}
    for _ in range(3):  # b did better: b from now on (epsilon is 0 in graph.yaml)
        assert predict()["meta"]["routing"]["chooser"] == 1


def test_graph_ensemble(graph_example):
    server = graph_example("graph_ensemble")
    r = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["data"]["ndarray"] == [[4.0]]
    assert answer["meta"]["tags"] == {"linear": "yes", "quadratic": "yes"}
    assert answer["meta"]["routing"] == {"mean": -1, "linear": -1, "quadratic": -1}
