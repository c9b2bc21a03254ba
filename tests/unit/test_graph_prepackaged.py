"""A graph node naming one of Seldon's prepackaged servers, found and built in-process as
`unitserve graph` does: its ``modelUri`` read from the graph file's folder when it is a
relative path (as node folders are), and a clear start-up error for a node without a
``modelUri`` or naming a server unitserve does not run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import server_models
from unitserve.cli.s2i import read_environment_file
from unitserve.graph import spec
from unitserve.graph.sources import find_sources, load_user

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


def deployment(node: str) -> str:
    body = "".join(f"      {line}\n" for line in node.strip("\n").splitlines())
    return f"""\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {{name: iris}}
spec:
  predictors:
  - name: default
    graph:
{body}"""


def graph_in(folder: Path, node: str) -> spec.GraphSpec:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "iris.yaml").write_text(deployment(node))
    return spec.load(folder / "iris.yaml")


def built(graph: spec.GraphSpec) -> Any:
    sources = find_sources(graph, {}, read_environment_file)
    source = sources[graph.root.name]
    assert source is not None
    return load_user(graph.root, source)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Any:
    """A working folder that is not the graph file's."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    before = os.getcwd()
    os.chdir(other)
    try:
        yield other
    finally:
        os.chdir(before)


def test_a_relative_model_uri_is_read_from_the_graph_files_folder(
    tmp_path: Path, elsewhere: Path
) -> None:
    model = server_models.sklearn_classifier(tmp_path / "deploy" / "iris")
    graph = graph_in(
        tmp_path / "deploy",
        "name: classifier\nimplementation: SKLEARN_SERVER\nmodelUri: ./iris",
    )
    server = built(graph)
    server.load()
    np.testing.assert_allclose(server.predict(ROWS), model.predict_proba(ROWS))
    assert Path(server.model_file) == tmp_path / "deploy" / "iris" / "model.joblib"


def test_an_absolute_model_uri_is_used_as_it_is(tmp_path: Path, elsewhere: Path) -> None:
    server_models.sklearn_classifier(tmp_path / "models" / "iris")
    uri = f"file://{tmp_path / 'models' / 'iris'}"
    graph = graph_in(
        tmp_path / "deploy", f"name: classifier\nimplementation: SKLEARN_SERVER\nmodelUri: {uri}"
    )
    assert Path(built(graph).model_file) == tmp_path / "models" / "iris" / "model.joblib"


def test_a_missing_relative_model_names_where_it_was_looked_for(tmp_path: Path) -> None:
    graph = graph_in(
        tmp_path / "deploy", "name: classifier\nimplementation: SKLEARN_SERVER\nmodelUri: iris"
    )
    with pytest.raises(spec.GraphError) as caught:
        built(graph)
    message = str(caught.value)
    assert message.startswith("node 'classifier': cannot fetch modelUri iris:"), message
    assert str(tmp_path / "deploy" / "iris") in message
    assert "\n" not in message


def test_a_prepackaged_node_without_a_model_uri_says_so(tmp_path: Path) -> None:
    graph = graph_in(tmp_path, "name: classifier\nimplementation: XGBOOST_SERVER")
    with pytest.raises(spec.GraphError, match=r"^node 'classifier': .*XGBOOST_SERVER needs a "):
        find_sources(graph, {}, read_environment_file)


@pytest.mark.parametrize("name", ["TENSORFLOW_SERVER", "TRITON_SERVER", "HUGGINGFACE_SERVER"])
def test_a_server_unitserve_does_not_run_is_named_as_such(tmp_path: Path, name: str) -> None:
    graph = graph_in(tmp_path, f"name: classifier\nimplementation: {name}\nmodelUri: gs://b/m")
    with pytest.raises(spec.GraphError) as caught:
        find_sources(graph, {}, read_environment_file)
    message = str(caught.value)
    assert f"{name} is one of Seldon's prepackaged servers" in message
    assert "SKLEARN_SERVER" in message and "endpoint" in message


def test_another_server_with_an_endpoint_is_called_over_the_network(tmp_path: Path) -> None:
    graph = graph_in(
        tmp_path,
        "name: classifier\nimplementation: TRITON_SERVER\n"
        "endpoint: {service_host: 127.0.0.1, httpPort: 9001}",
    )
    assert find_sources(graph, {}, read_environment_file) == {"classifier": None}


def test_help_says_where_a_prepackaged_servers_model_uri_goes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from unitserve.cli.main import build_parser

    for command in ("serve", "graph"):
        with pytest.raises(SystemExit):
            build_parser(command).parse_args([command, "--help"])
    serve_help, graph_help = capsys.readouterr().out.split("usage: unitserve graph")
    assert "or a prepackaged server, SKLEARN_SERVER" in " ".join(serve_help.split())
    assert "--model-uri" in serve_help
    # a graph's prepackaged nodes each have their own modelUri: no flag for all of them
    assert "--model-uri" not in graph_help


@pytest.mark.parametrize("protocol", ["v2", "kfserving", "tensorflow"])
def test_a_deployment_for_another_protocol_is_refused_not_served_as_seldons(
    tmp_path: Path, protocol: str
) -> None:
    (tmp_path / "iris.yaml").write_text(
        deployment("name: classifier\nimplementation: SKLEARN_SERVER\nmodelUri: ./iris").replace(
            "spec:\n", f"spec:\n  protocol: {protocol}\n"
        )
    )
    with pytest.raises(spec.GraphError, match=rf"spec.protocol '{protocol}': unitserve graph "):
        spec.load(tmp_path / "iris.yaml")
    (tmp_path / "seldon.yaml").write_text(
        deployment("name: classifier").replace("spec:\n", "spec:\n  protocol: seldon\n")
    )
    assert spec.load(tmp_path / "seldon.yaml").root.name == "classifier"
