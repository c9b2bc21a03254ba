"""`unitserve graph` end to end: the real CLI serving a graph on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from unitserve.proto import prediction_pb2 as pb
from unitserve.proto import prediction_pb2_grpc

from ..client_venvs import client_python
from ..conftest import FIXTURES, Server, clean_env, free_ports, run_cli, stop_process, wait_until

GRAPHS = FIXTURES / "graphs"
CLIENTS = Path(__file__).parent / "clients"


def request_message() -> pb.SeldonMessage:
    return json_format.ParseDict({"data": {"ndarray": [[1, 2]]}}, pb.SeldonMessage())


class GraphServer:
    def __init__(
        self, yaml: Path, *flags: str, cwd: Path = GRAPHS, env: dict[str, str] | None = None
    ) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.log = tempfile.NamedTemporaryFile(prefix="unitserve-graph-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unitserve",
                "graph",
                str(yaml),
                "--host",
                "127.0.0.1",
                "--http-port",
                str(self.http_port),
                "--grpc-port",
                str(self.grpc_port),
                "--metrics-port",
                str(self.metrics_port),
                *flags,
            ],
            cwd=cwd,
            env=clean_env(env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=30)

    def ready(self) -> bool:
        assert self.proc.poll() is None, Path(self.log.name).read_text()
        try:
            return self.client.get("/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.client.close()
        stop_process(self.proc)


@pytest.fixture
def graph_server() -> Iterator[Any]:
    started: list[GraphServer] = []

    def start(yaml: Path, *flags: str) -> GraphServer:
        server = GraphServer(yaml, *flags)
        started.append(server)
        wait_until(server.ready, timeout=60)
        return server

    yield start
    for server in started:
        server.stop()


def test_three_node_chain_over_rest_grpc_and_metrics(graph_server: Any) -> None:
    server = graph_server(GRAPHS / "chain" / "graph.yaml")
    r = server.client.post(
        "/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}}, headers={"Seldon-Puid": "p1"}
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["data"]["ndarray"] == [[-4, -6]]
    assert answer["meta"]["routing"] == {"output": -1, "input": -1, "model": -1}
    assert answer["meta"]["requestPath"]["model"] == "example/model:0.1"
    assert r.headers["seldon-puid"] == "p1"
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        request = json_format.ParseDict({"data": {"ndarray": [[1, 2]]}}, pb.SeldonMessage())
        reply = json_format.MessageToDict(stub.Predict(request, timeout=10))
        assert reply["data"]["ndarray"] == [[-4.0, -6.0]]
    # reflection offers what the graph serves: the orchestrator's service, no component's
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
        names = sorted(s.name for s in response.list_services_response.service)
        assert names == ["grpc.reflection.v1alpha.ServerReflection", "seldon.protos.Seldon"]
        with pytest.raises(grpc.RpcError) as raised:
            prediction_pb2_grpc.ModelStub(channel).Predict(request_message(), timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED

    # The node metrics are tallied and written with the request metrics, a few times a
    # second: polled for, not expected at once.
    def scrape() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/prometheus", timeout=10).text
        return text if "unitserve_graph_node_duration_seconds" in text else None

    metrics = wait_until(scrape, timeout=10)
    assert "chain_model_calls_total{" in metrics and 'model_name="model"' in metrics


def test_a_remote_node_over_rest(graph_server: Any, tmp_path: Path) -> None:
    model = Server("Node", cwd=GRAPHS / "chain" / "model").start()
    try:
        yaml = tmp_path / "remote.yaml"
        yaml.write_text((GRAPHS / "remote.yaml").read_text().replace("PORT", str(model.http_port)))
        server = graph_server(yaml, "--node", f"input={GRAPHS / 'chain' / 'input'}")
        r = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["ndarray"] == [[4, 6]]
        assert r.json()["meta"]["routing"] == {"input": -1, "model": -1}
    finally:
        model.stop()


@pytest.mark.parametrize(
    "graph, words",
    [
        ("name: a\ntype: SPLITTER\n", "node 'a': unknown type"),
        ("name: lonely\n", "node 'lonely': no class and no endpoint"),
        ("name: r\ntype: ROUTER\n", "node 'r': a ROUTER needs at least one child"),
    ],
)
def test_bad_graphs_exit_1_with_one_line(tmp_path: Path, graph: str, words: str) -> None:
    text = (
        "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\n"
        "metadata: {name: bad}\nspec:\n  predictors:\n  - name: p\n    graph:\n"
        + "".join(f"      {line}\n" for line in graph.splitlines())
    )
    (tmp_path / "bad.yaml").write_text(text)
    done = run_cli("graph", str(tmp_path / "bad.yaml"), cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], done.stderr


def test_a_remote_node_over_grpc(graph_server: Any, tmp_path: Path) -> None:
    model = Server("Node", cwd=GRAPHS / "chain" / "model").start()
    try:
        yaml = tmp_path / "remote.yaml"
        text = (GRAPHS / "remote.yaml").read_text()
        text = text.replace("httpPort: PORT", f"grpcPort: {model.grpc_port}")
        yaml.write_text(text.replace("type: REST", "type: GRPC"))
        server = graph_server(yaml, "--node", f"input={GRAPHS / 'chain' / 'input'}")
        r = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["ndarray"] == [[4.0, 6.0]]
        assert r.json()["meta"]["routing"] == {"input": -1, "model": -1}
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_pb2_grpc.SeldonStub(channel)
            request = json_format.ParseDict({"data": {"ndarray": [[1, 2]]}}, pb.SeldonMessage())
            reply = json_format.MessageToDict(stub.Predict(request, timeout=10))
        assert reply["data"]["ndarray"] == [[4.0, 6.0]]
        # the remote node's metadata is asked for over gRPC too: what its REST /metadata
        # says, less the empty entries the graph's metadata leaves out
        own = model.get("/metadata").json()
        models = server.client.get("/api/v1.0/metadata").json()["models"]
        assert models["model"] == {k: v for k, v in own.items() if v or k in ("inputs", "outputs")}
    finally:
        model.stop()


FEEDBACK = GRAPHS / "feedback"


def feedback_graph(graph_server: Any) -> Any:
    nodes = FEEDBACK / "nodes"
    flags = [f"--node={name}={nodes}:Nodes.{name.title()}" for name in ("router", "model", "spare")]
    return graph_server(FEEDBACK / "graph.yaml", *flags)


def test_a_node_that_raises_answers_and_the_graph_keeps_serving(graph_server: Any) -> None:
    server = feedback_graph(graph_server)
    bad, good = {"data": {"ndarray": [[-1, 2]]}}, {"data": {"ndarray": [[1, 2]]}}
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_pb2_grpc.SeldonStub(channel)
        for _ in range(2):  # a failure, then an answer, twice: nothing is left broken
            r = server.client.post("/api/v1.0/predictions", json=bad)
            assert r.status_code == 500, r.text
            assert r.headers["content-type"] == "application/json"
            assert "negative input" in r.json()["status"]["info"]
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(json_format.ParseDict(bad, pb.SeldonMessage()), timeout=10)
            assert raised.value.code() != grpc.StatusCode.OK
            assert "negative input" in (raised.value.details() or "")
            r = server.client.post("/api/v1.0/predictions", json=good)
            assert r.status_code == 200, r.text
            assert r.json()["data"]["ndarray"] == [[2.0, 4.0]]
            reply = stub.Predict(json_format.ParseDict(good, pb.SeldonMessage()), timeout=10)
            assert json_format.MessageToDict(reply)["data"]["ndarray"] == [[2.0, 4.0]]


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_seldon_client_in_gateway_mode(graph_server: Any, transport: str) -> None:
    python = client_python("seldon-core")
    server = feedback_graph(graph_server)
    port = server.http_port if transport == "rest" else server.grpc_port
    done = subprocess.run(
        [str(python), str(CLIENTS / "seldon_client_graph.py"), f"127.0.0.1:{port}", transport],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    predict, feedback = (json.loads(line) for line in done.stdout.splitlines())
    assert predict["success"], predict
    assert predict["response"]["data"]["ndarray"] == [[2.0, 4.0]]
    assert predict["response"]["meta"]["routing"] == {"router": 0, "model": -1}
    assert feedback["success"], feedback
    # the root (the router) answers the feedback: its first one
    assert feedback["response"]["data"]["ndarray"] == [[1.0]]


def test_init_graph_serves_and_answers_out_of_the_box(graph_server: Any, tmp_path: Path) -> None:
    done = run_cli("init", "demo-graph", "--graph", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "demo-graph"
    server = graph_server(folder / "graph.yaml")
    r = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0, 2.0]]}})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["ndarray"] == [[1.0, 2.0]]  # the starters echo
    assert r.json()["meta"]["routing"] == {"output": -1, "input": -1, "model": -1}
    # each node's own test passes as written
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "output",
            "input",
            "model",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout + tests.stderr
    # and the same file gives a SeldonDeployment
    images = [f"--image={n}=demo-{n}:0.1" for n in ("output", "input", "model")]
    done = run_cli("manifest", "graph.yaml", *images, "--print", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert "kind: SeldonDeployment" in done.stdout


def test_init_graph_refuses_a_type(tmp_path: Path) -> None:
    done = run_cli("init", "g", "--graph", "--type", "ROUTER", cwd=tmp_path)
    assert done.returncode == 1
    assert "--type and --class-name are for one component" in done.stderr


@pytest.mark.parametrize("kind", ["REST", "GRPC"])
def test_a_remote_nodes_error_passes_through(graph_server: Any, tmp_path: Path, kind: str) -> None:
    model = Server("Nodes.Model", cwd=FEEDBACK / "nodes").start()
    try:
        port = f"httpPort: {model.http_port}" if kind == "REST" else f"grpcPort: {model.grpc_port}"
        text = (GRAPHS / "remote.yaml").read_text().replace("httpPort: PORT", port)
        (tmp_path / "remote.yaml").write_text(text.replace("type: REST", f"type: {kind}"))
        server = graph_server(
            tmp_path / "remote.yaml", "--node", f"input={GRAPHS / 'chain' / 'input'}"
        )
        bad = {"data": {"ndarray": [[-5, 2]]}}  # still negative after the input's + 1
        r = server.client.post("/api/v1.0/predictions", json=bad)
        assert r.status_code == 500, r.text
        assert "negative input" in r.json()["status"]["info"]
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = prediction_pb2_grpc.SeldonStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(json_format.ParseDict(bad, pb.SeldonMessage()), timeout=10)
        assert "negative input" in (raised.value.details() or "")
        good = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}})
        assert good.status_code == 200 and good.json()["data"]["ndarray"] == [[4.0, 6.0]]
    finally:
        model.stop()
