"""Differential tests on the Open Inference Protocol: MLServer 1.7 with its sklearn,
xgboost, lightgbm and mlflow runtimes, and unitserve's prepackaged servers, serve the
same model files and are sent the same requests over REST and gRPC. Output names,
datatypes, shapes and values must agree; MLServer's ``parameters.content_type`` tags are
its own (unitserve sends none) and are left out of the comparison.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from unitserve.proto import inference_pb2 as pb
from unitserve.proto import inference_pb2_grpc

from ..client_venvs import client_python
from ..conftest import Server, wait_until
from ..server_models import COLUMNS, train
from .mlserver_process import MLServer

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 4.0, 1.0]]

# name: (MLServer runtime, file in the model's folder or "" for the folder, our server)
MODELS = {
    "iris-sklearn": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    "iris-xgboost": ("mlserver_xgboost.XGBoostModel", "model.json", "XGBOOST_SERVER"),
    "iris-lightgbm": ("mlserver_lightgbm.LightGBMModel", "model.bst", "LIGHTGBM_SERVER"),
    "iris-mlflow": ("mlserver_mlflow.MLflowRuntime", "", "MLFLOW_SERVER"),
}

# (model, requested outputs or None)
CASES = [
    ("iris-sklearn", None),
    ("iris-sklearn", ["predict_proba"]),
    ("iris-sklearn", ["predict", "predict_proba"]),
    ("iris-xgboost", None),
    ("iris-xgboost", ["predict_proba"]),
    ("iris-lightgbm", None),
    ("iris-mlflow", None),
]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MLServer, dict[str, Any]]]:
    python = client_python("mlserver-runtimes")
    folder = tmp_path_factory.mktemp("mlserver")
    # Trained by the reference side, whose libraries may not read files ours write.
    train(
        python,
        folder,
        sklearn_classifier="iris-sklearn",
        xgboost_classifier="iris-xgboost",
        lightgbm_classifier="iris-lightgbm/x",
        mlflow_classifier="iris-mlflow/model",
    )
    (folder / "iris-lightgbm" / "x" / "model.txt").rename(folder / "iris-lightgbm" / "model.bst")
    ours: dict[str, Server] = {}
    for name, (runtime, file_name, implementation) in MODELS.items():
        where = folder / name if name != "iris-mlflow" else folder / name / "model"
        uri = str(where / file_name) if file_name else str(where)
        settings = {"name": name, "implementation": runtime, "parameters": {"uri": uri}}
        (folder / name / "model-settings.json").write_text(json.dumps(settings))
        ours[name] = Server(implementation, "--model-uri", uri, "--model-name", name, cwd=folder)
    mlserver = MLServer(folder, "mlserver-runtimes", list(MODELS))
    try:
        for server in ours.values():
            server.start()
        wait_until(mlserver.ready, timeout=180, every=0.3)
        yield mlserver, ours
    finally:
        for server in ours.values():
            server.stop()
        mlserver.stop()


def request_body(model: str, outputs: list[str] | None) -> dict[str, Any]:
    """The rows as one FP64 input; for the MLflow model, whose signature names its
    columns, one input a column (MLServer decodes a column-based model's request so)."""
    rows = np.array(ROWS)
    if model == "iris-mlflow":
        inputs = [
            {"name": name, "datatype": "FP64", "shape": [len(rows), 1], "data": rows[:, i].tolist()}
            for i, name in enumerate(COLUMNS)
        ]
    else:
        inputs = [
            {
                "name": "x",
                "datatype": "FP64",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ]
    body: dict[str, Any] = {"inputs": inputs}
    if outputs:
        body["outputs"] = [{"name": n} for n in outputs]
    return body


def comparable(answer: dict[str, Any]) -> list[tuple[str, str, list[int], list[Any]]]:
    return [(o["name"], o["datatype"], o["shape"], o["data"]) for o in answer["outputs"]]


def same(a: list[Any], b: list[Any]) -> None:
    assert [x[:3] for x in a] == [x[:3] for x in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(
            np.array(x[3], dtype=float), np.array(y[3], dtype=float), rtol=1e-6
        )


@pytest.mark.parametrize("model,outputs", CASES)
def test_rest_answers_are_mlservers(servers: Any, model: str, outputs: Any) -> None:
    mlserver, ours = servers
    body = json.dumps(request_body(model, outputs))
    headers = {"content-type": "application/json"}
    a = httpx.post(f"{mlserver.url}/v2/models/{model}/infer", content=body, headers=headers)
    b = ours[model].post(f"/v2/models/{model}/infer", content=body, headers=headers)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    same(comparable(a.json()), comparable(b.json()))


def grpc_outputs(target: str, model: str, outputs: Any) -> list[Any]:
    request = pb.ModelInferRequest(model_name=model)
    for given in request_body(model, None)["inputs"]:
        tensor = request.inputs.add(name=given["name"], datatype="FP64", shape=given["shape"])
        tensor.contents.fp64_contents.extend(given["data"])
    for name in outputs or []:
        request.outputs.add(name=name)
    with grpc.insecure_channel(target) as channel:
        answer = inference_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, timeout=30
        )
    found = []
    for i, out in enumerate(answer.outputs):
        dtype = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8", "INT32": "<i4"}[out.datatype]
        if answer.raw_output_contents:
            values = np.frombuffer(answer.raw_output_contents[i], dtype=dtype).tolist()
        else:
            field = {"FP64": "fp64", "FP32": "fp32", "INT64": "int64", "INT32": "int"}[out.datatype]
            values = list(getattr(out.contents, f"{field}_contents"))
        found.append((out.name, out.datatype, list(out.shape), values))
    return found


@pytest.mark.parametrize("model,outputs", CASES)
def test_grpc_answers_are_mlservers(servers: Any, model: str, outputs: Any) -> None:
    mlserver, ours = servers
    same(
        grpc_outputs(mlserver.grpc_target, model, outputs),
        grpc_outputs(ours[model].grpc_target, model, outputs),
    )


def test_an_unknown_output_is_a_4xx_on_both(servers: Any) -> None:
    mlserver, ours = servers
    body = json.dumps(request_body("iris-sklearn", ["transform_nope"]))
    headers = {"content-type": "application/json"}
    a = httpx.post(f"{mlserver.url}/v2/models/iris-sklearn/infer", content=body, headers=headers)
    b = ours["iris-sklearn"].post("/v2/models/iris-sklearn/infer", content=body, headers=headers)
    assert 400 <= a.status_code < 500 and b.status_code == 400
    assert "transform_nope was received" in a.text and "transform_nope was received" in b.text
