"""`unitserve manifest` and `unitserve build` for a prepackaged server: the SeldonDeployment
names the implementation and the modelUri (no image, or ours), and the image installs
unitserve with the server's extra and serves the implementation."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from unitserve.cli.main import main

GRAPH = """\
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: iris
spec:
  predictors:
  - name: default
    graph:
      name: classifier
      implementation: SKLEARN_SERVER
      modelUri: gs://seldon-models/v1.19.0/sklearn/iris
"""


def printed(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_manifest_of_a_folder_with_an_implementation_has_no_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = "gs://seldon-models/sklearn/iris"
    text = printed(
        capsys, "manifest", str(tmp_path), "--implementation", "SKLEARN_SERVER",
        "--model-uri", uri, "--print",
    )  # fmt: skip
    predictor = yaml.safe_load(text)["spec"]["predictors"][0]
    assert predictor["graph"]["implementation"] == "SKLEARN_SERVER"
    assert predictor["graph"]["modelUri"] == uri
    assert "componentSpecs" not in predictor


def test_manifest_with_an_implementation_and_our_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = printed(
        capsys, "manifest", str(tmp_path), "--implementation", "XGBOOST_SERVER",
        "--model-uri", "s3://models/xgb", "--image", "registry.example/xgb:1", "--print",
    )  # fmt: skip
    predictor = yaml.safe_load(text)["spec"]["predictors"][0]
    assert predictor["graph"]["implementation"] == "XGBOOST_SERVER"
    (container,) = predictor["componentSpecs"][0]["spec"]["containers"]
    assert container["image"] == "registry.example/xgb:1"


def test_manifest_needs_a_model_uri_and_a_known_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["manifest", str(tmp_path), "--implementation", "SKLEARN_SERVER"]) == 1
    assert "needs --model-uri" in capsys.readouterr().err
    argv = ["manifest", str(tmp_path), "--implementation", "SPARK_SERVER", "--model-uri", "x"]
    assert main(argv) == 1
    assert "not a prepackaged server" in capsys.readouterr().err
    argv = ["manifest", str(tmp_path), "--implementation", "SKLEARN_SERVER", "--model-uri", "x"]
    assert main([*argv, "--target", "kserve", "--image", "i"]) == 1
    assert "--implementation is for --target seldon" in capsys.readouterr().err


def test_manifest_of_a_graph_keeps_a_prepackaged_node_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "iris.yaml").write_text(GRAPH)
    text = printed(capsys, "manifest", str(tmp_path / "iris.yaml"), "--print")
    predictor = yaml.safe_load(text)["spec"]["predictors"][0]
    assert predictor["graph"] == yaml.safe_load(GRAPH)["spec"]["predictors"][0]["graph"]
    assert not predictor["componentSpecs"]
    assert capsys.readouterr().err == ""  # a bucket: nothing to say


def test_manifest_of_a_graph_notes_a_model_uri_on_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "iris.yaml").write_text(GRAPH.replace("gs://seldon-models/v1.19.0/", "./"))
    assert main(["manifest", str(tmp_path / "iris.yaml"), "--print"]) == 0
    (note,) = capsys.readouterr().err.splitlines()
    assert note.startswith("unitserve manifest: note: node 'classifier': modelUri ./sklearn/iris")
    assert "the operator cannot download" in note


def test_build_with_an_implementation_installs_its_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = printed(capsys, "build", str(tmp_path), "--implementation", "LIGHTGBM_SERVER", "--print")
    assert '"unitserve[lightgbm]==' in text
    assert 'MODEL_NAME="LIGHTGBM_SERVER"' in text
    assert main(["build", str(tmp_path), "--implementation", "NOPE_SERVER"]) == 1
    assert "not a prepackaged server" in capsys.readouterr().err


DOC = Path(__file__).resolve().parents[2] / "docs" / "prepackaged-servers.md"


def test_the_docs_cluster_section_runs_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's "In a cluster" commands, in order, in a fresh folder holding the page's
    graph file (`docker build` aside: no image is built here)."""
    text = DOC.read_text()
    graph = re.search(r"```yaml\n(# iris-deployment.yaml.*?)```", text, re.S)
    assert graph is not None
    (tmp_path / "iris-deployment.yaml").write_text(graph.group(1))
    section = text.split("\n## In a cluster\n", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\$ (.*)$", section, re.M)
    assert [c.split()[:2] for c in commands if c.startswith("unitserve")] == [
        ["unitserve", "manifest"],
        ["unitserve", "manifest"],
        ["unitserve", "build"],
        ["unitserve", "manifest"],
    ]
    monkeypatch.chdir(tmp_path)
    for command in commands:
        words = shlex.split(command, comments=True)
        if words[0] == "mkdir":
            Path(words[1]).mkdir()
        elif words[0] == "unitserve":
            assert main(words[1:]) == 0, (command, capsys.readouterr())
        else:
            assert words[:2] == ["docker", "build"], command
    capsys.readouterr()
    sdep = yaml.safe_load((tmp_path / "deploy" / "seldondeployment.yaml").read_text())
    predictor = sdep["spec"]["predictors"][0]
    assert predictor["graph"]["implementation"] == "SKLEARN_SERVER"
    assert predictor["graph"]["modelUri"] == "gs://my-bucket/iris"
    (container,) = predictor["componentSpecs"][0]["spec"]["containers"]
    assert container["image"] == "registry.example/iris-server:1"
    dockerfile = (tmp_path / "deploy" / "Dockerfile").read_text()
    assert '"unitserve[sklearn]==' in dockerfile and 'MODEL_NAME="SKLEARN_SERVER"' in dockerfile
