"""Prepackaged servers whose model is in a bucket: a real S3 server (moto's, on 127.0.0.1,
checking keys), the endpoint and keys in the environment as the operator sets them for an
S3-compatible store, and `unitserve serve` and `unitserve graph` started as users start them.
The answers are compared with scikit-learn's own predictions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import json_format

from tests import server_models
from tests.storage_services import MotoS3
from unitserve.proto import inference_pb2, inference_pb2_grpc, prediction_pb2, prediction_pb2_grpc

from ..conftest import FIXTURES, free_ports, run_cli, wait_until
from .test_graph_cli import GraphServer

BUCKET = "models"
GRAPH = FIXTURES / "graphs" / "s3_iris" / "graph.yaml"
ROWS_CM = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
ROWS_MM = [[value * 10 for value in row] for row in ROWS_CM]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoS3, Any]]:
    """The S3 server, holding an iris classifier at s3://models/iris/model.joblib (put
    there with boto3, not with unitserve)."""
    folder = tmp_path_factory.mktemp("iris")
    model = server_models.sklearn_classifier(folder)
    server = MotoS3(checked_keys=True)
    try:
        server.s3.create_bucket(Bucket=BUCKET)
        server.put(BUCKET, "iris/model.joblib", (folder / "model.joblib").read_bytes())
        yield server, model
    finally:
        server.stop()


def s3_environment(s3: MotoS3, cache: Path, secret: str | None = None) -> dict[str, str]:
    """The variables Seldon's operator gives a model for an S3-compatible server."""
    return {
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY": secret or s3.secret,
        "AWS_REGION": "us-east-1",
        "S3_ENDPOINT": f"127.0.0.1:{s3.port}",
        "S3_USE_HTTPS": "0",
        "UNITSERVE_MODEL_CACHE": str(cache),
    }


def seldon_predict(target: str, rows: list[list[float]], graph: bool = False) -> dict[str, Any]:
    """A Seldon-protocol Predict over gRPC: the graph's is the orchestrator's service
    (`Seldon`), a single component's is `Model`."""
    with grpc.insecure_channel(target) as channel:
        request = json_format.ParseDict({"data": {"ndarray": rows}}, prediction_pb2.SeldonMessage())
        stub = prediction_pb2_grpc.SeldonStub if graph else prediction_pb2_grpc.ModelStub
        answer = stub(channel).Predict(request, timeout=10)
    return dict(json_format.MessageToDict(answer))


def test_graph_transformer_in_front_of_sklearn_server_from_s3(
    bucket: tuple[MotoS3, Any], tmp_path: Path
) -> None:
    s3, model = bucket
    expected = model.predict_proba(np.array(ROWS_MM) / 10.0)
    server = GraphServer(GRAPH, cwd=tmp_path, env=s3_environment(s3, tmp_path / "cache"))
    try:
        wait_until(server.ready, timeout=90)
        body = server.client.post(
            "/api/v1.0/predictions", json={"data": {"ndarray": ROWS_MM}}
        ).json()
        assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
        np.testing.assert_allclose(body["data"]["ndarray"], expected, rtol=1e-12)
        assert set(body["meta"]["requestPath"]) == {"centimetres", "classifier"}
        answer = seldon_predict(f"127.0.0.1:{server.grpc_port}", ROWS_MM, graph=True)
        np.testing.assert_allclose(answer["data"]["ndarray"], expected, rtol=1e-12)
        # The transformer's answer went to the model: the raw measurements would make the
        # classifier answer something else.
        assert not np.allclose(model.predict_proba(np.array(ROWS_MM)), expected)
    finally:
        server.stop()
    # Fetched once, into the cache the environment names.
    assert list((tmp_path / "cache").rglob("model.joblib"))


def test_serve_sklearn_server_with_an_s3_model_uri(
    bucket: tuple[MotoS3, Any], tmp_path: Path, fresh_server: Any
) -> None:
    s3, model = bucket
    server = fresh_server(
        "SKLEARN_SERVER",
        "--model-uri",
        f"s3://{BUCKET}/iris",
        "--model-name",
        "iris",
        cwd=tmp_path,
        env=s3_environment(s3, tmp_path / "cache"),
        timeout=90,
    )
    rows = np.array(ROWS_CM)
    body = server.post("/api/v1.0/predictions", json={"data": {"ndarray": ROWS_CM}}).json()
    np.testing.assert_allclose(body["data"]["ndarray"], model.predict_proba(rows), rtol=1e-12)
    answer = seldon_predict(server.grpc_target, ROWS_CM)
    np.testing.assert_allclose(answer["data"]["ndarray"], model.predict_proba(rows), rtol=1e-12)
    v2 = server.post(
        "/v2/models/iris/infer",
        json={
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [3, 4], "data": ROWS_CM}],
            "outputs": [{"name": "predict_proba"}],
        },
    ).json()
    assert v2["outputs"][0]["name"] == "predict_proba"
    np.testing.assert_allclose(
        np.reshape(v2["outputs"][0]["data"], (3, 3)), model.predict_proba(rows), rtol=1e-12
    )
    with grpc.insecure_channel(server.grpc_target) as channel:
        infer = inference_pb2.ModelInferRequest(model_name="iris")
        tensor = infer.inputs.add(name="x", datatype="FP64", shape=[3, 4])
        tensor.contents.fp64_contents.extend(rows.ravel().tolist())
        got = inference_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer, timeout=10)
    assert got.outputs[0].name == "predict"
    assert list(got.outputs[0].contents.int64_contents) == model.predict(rows).tolist()


def test_wrong_keys_are_exit_1_naming_the_bucket(
    bucket: tuple[MotoS3, Any], tmp_path: Path
) -> None:
    s3, _ = bucket
    done = run_cli(
        "serve",
        "SKLEARN_SERVER",
        "--model-uri",
        f"s3://{BUCKET}/iris",
        cwd=tmp_path,
        env=s3_environment(s3, tmp_path / "cache", secret="not-the-secret"),
        timeout=90,
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, done.stderr
    assert f"s3://{BUCKET}/iris" in errors[0] and f"'{BUCKET}'" in errors[0]


def test_graph_with_wrong_keys_is_exit_1_naming_the_node_and_bucket(
    bucket: tuple[MotoS3, Any], tmp_path: Path
) -> None:
    s3, _ = bucket
    http, grpc_port, metrics = free_ports(3)  # should it start serving after all
    done = run_cli(
        "graph",
        str(GRAPH),
        *("--host", "127.0.0.1", "--http-port", str(http), "--grpc-port", str(grpc_port)),
        *("--metrics-port", str(metrics)),
        cwd=tmp_path,
        env=s3_environment(s3, tmp_path / "cache", secret="not-the-secret"),
        timeout=90,
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, done.stderr
    assert errors[0].count("node 'classifier'") == 1, errors[0]
    assert f"modelUri s3://{BUCKET}/iris" in errors[0] and f"'{BUCKET}'" in errors[0]


def test_a_missing_prefix_is_exit_1_naming_the_uri(
    bucket: tuple[MotoS3, Any], tmp_path: Path
) -> None:
    s3, _ = bucket
    done = run_cli(
        "serve",
        "SKLEARN_SERVER",
        "--model-uri",
        f"s3://{BUCKET}/no-such-model",
        cwd=tmp_path,
        env=s3_environment(s3, tmp_path / "cache"),
        timeout=90,
    )
    assert done.returncode == 1, done.stderr
    assert f"s3://{BUCKET}/no-such-model" in done.stderr
    assert "looked for model.joblib, model.pickle, model.pkl" in done.stderr
    assert "Traceback" not in done.stderr
