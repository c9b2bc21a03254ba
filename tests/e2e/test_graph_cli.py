"""`unitserve graph` end to end: the real CLI serving a graph on 127.0.0.1."""

from __future__ import annotations

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

from unitserve.proto import prediction_pb2 as pb
from unitserve.proto import prediction_pb2_grpc

from ..conftest import FIXTURES, Server, clean_env, free_ports, run_cli, wait_until

GRAPHS = FIXTURES / "graphs"


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
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


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
    metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/prometheus", timeout=10).text
    assert "chain_model_calls_total{" in metrics and 'model_name="model"' in metrics
    assert "unitserve_graph_node_duration_seconds" in metrics


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
