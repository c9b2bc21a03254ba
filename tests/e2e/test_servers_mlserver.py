"""Differential tests on the Open Inference Protocol: MLServer 1.7 with its sklearn,
xgboost, lightgbm and mlflow runtimes, and unitserve's prepackaged servers, serve the
same model files and are sent the same requests over REST and gRPC. The whole answers
must be the same (outputs, their ``parameters.content_type`` tags, the answer's
parameters, the model's version), except the request id, which each server makes,
and what differs only in how it is written (see `whole`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format

from unitserve.proto import inference_pb2 as pb
from unitserve.proto import inference_pb2_grpc

from ..client_venvs import client_python
from ..conftest import Server
from ..server_models import COLUMNS, train
from .mlserver_process import MLServer, side_by_side, write_model_settings

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 4.0, 1.0]]
VERSION = "v1"

# name: (MLServer runtime, file in the model's folder or "" for the folder, our server)
MODELS = {
    "iris-sklearn": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    "iris-regressor": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    "iris-scaler": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    "iris-xgboost": ("mlserver_xgboost.XGBoostModel", "model.json", "XGBOOST_SERVER"),
    "iris-lightgbm": ("mlserver_lightgbm.LightGBMModel", "model.bst", "LIGHTGBM_SERVER"),
    "iris-mlflow": ("mlserver_mlflow.MLflowRuntime", "", "MLFLOW_SERVER"),
    "iris-table": ("mlserver_mlflow.MLflowRuntime", "", "MLFLOW_SERVER"),
}
# The models given one input a column (their MLflow signature names the columns).
BY_COLUMN = ("iris-mlflow", "iris-table")

# (model, requested outputs or None, request parameters or None)
CASES = [
    ("iris-sklearn", None, None),
    ("iris-sklearn", ["predict_proba"], None),
    ("iris-sklearn", ["predict", "predict_proba"], None),
    # the runtimes echo no request parameters
    ("iris-sklearn", None, {"team": "fraud"}),
    ("iris-regressor", None, None),
    ("iris-scaler", ["transform"], None),
    ("iris-xgboost", None, None),
    ("iris-xgboost", ["predict_proba"], None),
    ("iris-lightgbm", None, None),
    ("iris-mlflow", None, None),
    ("iris-table", None, None),
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
        sklearn_regressor="iris-regressor",
        sklearn_transformer="iris-scaler",
        xgboost_classifier="iris-xgboost",
        lightgbm_classifier="iris-lightgbm/x",
        mlflow_classifier="iris-mlflow/model",
        mlflow_table="iris-table/model",
    )
    (folder / "iris-lightgbm" / "x" / "model.txt").rename(folder / "iris-lightgbm" / "model.bst")
    ours: dict[str, Server] = {}
    for name, (runtime, file_name, implementation) in MODELS.items():
        where = folder / name / "model" if name in BY_COLUMN else folder / name
        uri = str(where / file_name) if file_name else str(where)
        parameters = {"uri": uri, "version": VERSION}
        write_model_settings(folder / name, name, runtime, parameters)
        flags = ("--model-uri", uri, "--model-name", name, "--model-version", VERSION)
        ours[name] = Server(implementation, *flags, cwd=folder)
    with side_by_side(folder, ours) as mlserver:
        yield mlserver, ours


def request_body(
    model: str, outputs: list[str] | None, parameters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The rows as one FP64 input (three features for the regressor); for the MLflow
    models, whose signature names its columns, one input a column (MLServer decodes a
    column-based model's request so)."""
    rows = np.array(ROWS)
    if model == "iris-regressor":
        rows = rows[:, :3]
    if model in BY_COLUMN:
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
    if parameters:
        body["parameters"] = parameters
    return body


def whole(answer: dict[str, Any]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """An answer (REST JSON, or gRPC as protobuf's JSON form) as (everything but the
    values, each output's values). Left out: the request id, which each server makes,
    and MLServer's empty answer ``parameters`` over REST (``{}``: nothing). The values
    are compared apart, as numbers: MLServer writes FP32 values over REST as the
    float64 nearest them, unitserve as the FP32 numbers (the same numbers)."""
    rest = {k: v for k, v in answer.items() if k not in ("id", "parameters", "outputs")}
    if answer.get("parameters"):
        rest["parameters"] = answer["parameters"]
    outputs, values = [], []
    for output in answer["outputs"]:
        output = dict(output)
        if "data" in output:
            data = output.pop("data")
        else:
            [data] = output.pop("contents").values()
        dtype = {"FP32": np.float32, "FP64": np.float64, "BYTES": object}.get(
            output["datatype"], np.int64
        )
        values.append(np.asarray(data, dtype=dtype))
        outputs.append(output)
    rest["outputs"] = outputs
    return rest, values


def same(a: dict[str, Any], b: dict[str, Any]) -> None:
    (a_rest, a_values), (b_rest, b_values) = whole(a), whole(b)
    assert a_rest == b_rest
    for x, y in zip(a_values, b_values, strict=True):
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-6)
        else:
            assert x.tolist() == y.tolist()


@pytest.mark.parametrize("model,outputs,parameters", CASES)
def test_rest_answers_are_mlservers(
    servers: Any, model: str, outputs: Any, parameters: Any
) -> None:
    mlserver, ours = servers
    body = json.dumps(request_body(model, outputs, parameters))
    headers = {"content-type": "application/json"}
    a = httpx.post(f"{mlserver.url}/v2/models/{model}/infer", content=body, headers=headers)
    b = ours[model].post(f"/v2/models/{model}/infer", content=body, headers=headers)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    same(a.json(), b.json())


def grpc_answer(target: str, model: str, outputs: Any) -> dict[str, Any]:
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
    assert not answer.raw_output_contents  # the request's values were typed: so are the answer's
    found: dict[str, Any] = json_format.MessageToDict(answer)
    return found


@pytest.mark.parametrize("model,outputs,parameters", [c for c in CASES if not c[2]])
def test_grpc_answers_are_mlservers(
    servers: Any, model: str, outputs: Any, parameters: Any
) -> None:
    mlserver, ours = servers
    same(
        grpc_answer(mlserver.grpc_target, model, outputs),
        grpc_answer(ours[model].grpc_target, model, outputs),
    )


def test_an_unknown_output_is_a_4xx_on_both(servers: Any) -> None:
    mlserver, ours = servers
    body = json.dumps(request_body("iris-sklearn", ["transform_nope"]))
    headers = {"content-type": "application/json"}
    a = httpx.post(f"{mlserver.url}/v2/models/iris-sklearn/infer", content=body, headers=headers)
    b = ours["iris-sklearn"].post("/v2/models/iris-sklearn/infer", content=body, headers=headers)
    assert 400 <= a.status_code < 500 and b.status_code == 400
    assert "transform_nope was received" in a.text and "transform_nope was received" in b.text


def test_predict_proba_of_a_regressor_is_a_400_on_both(servers: Any) -> None:
    mlserver, ours = servers
    body = json.dumps(request_body("iris-regressor", ["predict_proba"]))
    headers = {"content-type": "application/json"}
    a = httpx.post(f"{mlserver.url}/v2/models/iris-regressor/infer", content=body, headers=headers)
    b = ours["iris-regressor"].post(
        "/v2/models/iris-regressor/infer", content=body, headers=headers
    )
    assert a.status_code == b.status_code == 400
    for answer in (a, b):
        assert "LinearRegression'> models do not support 'predict_proba" in answer.json()["error"]
    codes = []
    for target in (mlserver.grpc_target, ours["iris-regressor"].grpc_target):
        with pytest.raises(grpc.RpcError) as caught:
            grpc_answer(target, "iris-regressor", ["predict_proba"])
        codes.append(caught.value.code())
    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 2


def test_a_transformer_asked_for_no_output_is_a_400_here(servers: Any) -> None:
    """A difference (docs/compatibility.md): MLServer calls the missing ``predict`` and
    fails with a 500; unitserve says the model has no such method, a 400."""
    mlserver, ours = servers
    body = json.dumps(request_body("iris-scaler", None))
    headers = {"content-type": "application/json"}
    a = httpx.post(f"{mlserver.url}/v2/models/iris-scaler/infer", content=body, headers=headers)
    b = ours["iris-scaler"].post("/v2/models/iris-scaler/infer", content=body, headers=headers)
    assert (a.status_code, b.status_code) == (500, 400)
    assert b.json() == {"error": "StandardScaler has no method predict"}


def grpc_metadata(target: str, model: str) -> dict[str, Any]:
    with grpc.insecure_channel(target) as channel:
        answer = inference_pb2_grpc.GRPCInferenceServiceStub(channel).ModelMetadata(
            pb.ModelMetadataRequest(name=model), timeout=30
        )
    found: dict[str, Any] = json_format.MessageToDict(answer)
    return found


@pytest.mark.parametrize("model", BY_COLUMN)
def test_mlflow_model_metadata_is_mlservers(servers: Any, model: str) -> None:
    """The whole metadata answer, over REST and gRPC: the signature's columns as
    inputs (with the content type each is sent as), its outputs, the model's content
    type. But for `versions` (docs/compatibility.md): MLServer's is empty, ours the
    model's version."""
    mlserver, ours = servers
    a = httpx.get(f"{mlserver.url}/v2/models/{model}")
    b = ours[model].get(f"/v2/models/{model}")
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    theirs, mine = a.json(), b.json()
    assert (theirs.pop("versions"), mine.pop("versions")) == ([], [VERSION])
    assert mine == theirs
    inputs = mine["inputs"]
    assert [t["name"] for t in inputs] == COLUMNS
    assert inputs[0] == {
        "name": COLUMNS[0],
        "datatype": "FP64",
        "shape": [-1, 1],
        "parameters": {"content_type": "np"},
    }
    assert mine["parameters"] == {"content_type": "pd"}
    theirs = grpc_metadata(mlserver.grpc_target, model)
    mine = grpc_metadata(ours[model].grpc_target, model)
    assert ("versions" not in theirs, mine.pop("versions")) == (True, [VERSION])
    assert mine == theirs
    assert mine["inputs"][0]["parameters"] == {"content_type": {"stringParam": "np"}}
