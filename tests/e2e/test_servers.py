"""The prepackaged servers as users start them: `unitserve serve SKLEARN_SERVER --model-uri`
and a graph node with `implementation` and `modelUri`, real processes on 127.0.0.1."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from tests import server_models
from tests.storage_services import HttpFolder
from unitserve import component
from unitserve.proto import inference_pb2, inference_pb2_grpc, prediction_pb2, prediction_pb2_grpc

from ..conftest import run_cli, wait_until
from .test_graph_cli import GraphServer

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("iris")
    return folder, server_models.sklearn_classifier(folder)


def test_serve_sklearn_server_by_name_on_both_protocols(iris: Any, fresh_server: Any) -> None:
    folder, model = iris
    server = fresh_server("SKLEARN_SERVER", "--model-uri", f"file://{folder}", cwd=folder)
    body = server.post("/api/v1.0/predictions", json={"data": {"ndarray": ROWS}}).json()
    assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
    np.testing.assert_allclose(body["data"]["ndarray"], model.predict_proba(np.array(ROWS)))
    r = server.post(
        "/v2/models/SKLEARN_SERVER/infer",
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": ROWS}]},
    )
    assert r.json()["outputs"][0]["name"] == "predict"
    with grpc.insecure_channel(server.grpc_target) as channel:
        seldon = prediction_pb2_grpc.ModelStub(channel)
        request = json_format.ParseDict({"data": {"ndarray": ROWS}}, prediction_pb2.SeldonMessage())
        answer = json_format.MessageToDict(seldon.Predict(request, timeout=10))
        np.testing.assert_allclose(answer["data"]["ndarray"], model.predict_proba(np.array(ROWS)))
        v2 = inference_pb2_grpc.GRPCInferenceServiceStub(channel)
        infer = inference_pb2.ModelInferRequest(model_name="SKLEARN_SERVER")
        tensor = infer.inputs.add(name="x", datatype="FP64", shape=[2, 4])
        tensor.contents.fp64_contents.extend(np.ravel(ROWS).tolist())
        infer.outputs.add(name="predict_proba")
        got = v2.ModelInfer(infer, timeout=10)
        assert [o.name for o in got.outputs] == ["predict_proba"]


def test_a_missing_model_is_exit_1_with_one_line(tmp_path: Path) -> None:
    done = run_cli("serve", "XGBOOST_SERVER", "--model-uri", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, done.stderr
    assert str(tmp_path) in errors[0]
    assert "model.json, model.ubj, model.bst" in errors[0]


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
      modelUri: {uri}
      parameters:
      - name: method
        type: STRING
        value: predict
"""


def test_graph_node_with_implementation_and_model_uri_needs_no_folder(
    iris: Any, tmp_path: Path
) -> None:
    folder, model = iris
    (tmp_path / "iris.yaml").write_text(GRAPH.format(uri=f"file://{folder}"))
    server = GraphServer(tmp_path / "iris.yaml", cwd=tmp_path)
    try:
        wait_until(server.ready, timeout=60)
        body = server.client.post("/api/v1.0/predictions", json={"data": {"ndarray": ROWS}}).json()
        assert body["data"]["ndarray"] == model.predict(np.array(ROWS)).tolist()
    finally:
        server.stop()


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_metadata_is_the_served_versions_and_the_store_is_not_asked_again(
    iris: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model fetched from a URL: its metadata.yaml is read from the folder the server
    was built from, even after the URL serves a newer model."""
    folder, _ = iris
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    site = tmp_path / "site"
    site.mkdir()
    joblib = (folder / "model.joblib").read_bytes()
    (site / "iris.tgz").write_bytes(
        archive({"model.joblib": joblib, "metadata.yaml": b"name: iris-v1\n"})
    )
    server = HttpFolder(site)
    try:
        uri = f"{server.url}/iris.tgz"
        user = component.construct(
            component.import_user_class("SKLEARN_SERVER"), {"model_uri": uri}
        )
        (site / "iris.tgz").write_bytes(
            archive({"model.joblib": joblib, "metadata.yaml": b"name: iris-version-2\n"})
        )
        user.load()
        assert user.init_metadata() == {"name": "iris-v1"}
    finally:
        server.stop()
