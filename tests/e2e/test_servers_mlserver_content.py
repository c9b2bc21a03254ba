"""Differential tests of the request content types (``parameters.content_type`` of an
Open Inference request): MLServer 1.7 with its sklearn, xgboost, lightgbm and mlflow
runtimes, and unitserve's prepackaged servers, serve the same model files and are sent
the same requests; the whole answers must be the same (see `same`).

The heart of it: a scikit-learn Pipeline whose ColumnTransformer was fitted on a
DataFrame with named columns (numbers and text) answers a ``pd`` request, one input a
column, on both servers, over REST and gRPC.
"""

from __future__ import annotations

import json
import shutil
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
from ..server_models import COLUMNS, GARDENS, train
from .mlserver_process import MLServer, side_by_side, write_model_settings
from .test_servers_mlserver import same

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 4.0, 1.0]]
GARDEN = [GARDENS[0], GARDENS[2], GARDENS[1]]
DOCUMENTS = ["kind and helpful", "rude, wrong and useless", "good help"]
VERSION = "v1"

# name: (MLServer runtime, file in the model's folder or "" for the folder, our server)
MODELS = {
    "table": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    # the same model, whose settings read a request naming no content type as "pd"
    "table-default": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    "text": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    "iris-sklearn": ("mlserver_sklearn.SKLearnModel", "model.joblib", "SKLEARN_SERVER"),
    "iris-xgboost": ("mlserver_xgboost.XGBoostModel", "model.json", "XGBOOST_SERVER"),
    "iris-lightgbm": ("mlserver_lightgbm.LightGBMModel", "model.bst", "LIGHTGBM_SERVER"),
    "iris-mlflow": ("mlserver_mlflow.MLflowRuntime", "model", "MLFLOW_SERVER"),
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MLServer, dict[str, Any]]]:
    python = client_python("mlserver-runtimes")
    folder = tmp_path_factory.mktemp("mlserver-content")
    # Trained by the reference side, whose libraries may not read files ours write.
    train(
        python,
        folder,
        sklearn_table_pipeline="table",
        sklearn_text_pipeline="text",
        sklearn_classifier="iris-sklearn",
        xgboost_classifier="iris-xgboost",
        lightgbm_classifier="iris-lightgbm/x",
        mlflow_classifier="iris-mlflow/model",
    )
    (folder / "iris-lightgbm" / "x" / "model.txt").rename(folder / "iris-lightgbm" / "model.bst")
    shutil.copytree(folder / "table", folder / "table-default")
    ours: dict[str, Server] = {}
    for name, (runtime, file_name, implementation) in MODELS.items():
        uri = str(folder / name / file_name)
        parameters = {"uri": uri, "version": VERSION}
        flags: tuple[str, ...] = ("--model-uri", uri, "--model-name", name)
        flags += ("--model-version", VERSION)
        if name == "table-default":
            parameters["content_type"] = "pd"
            given = [{"name": "content_type", "value": "pd", "type": "STRING"}]
            flags += ("--parameters", json.dumps(given))
        write_model_settings(folder / name, name, runtime, parameters)
        ours[name] = Server(implementation, *flags, cwd=folder)
    with side_by_side(folder, ours) as mlserver:
        yield mlserver, ours


def columns(text_tag: bool = True) -> list[dict[str, Any]]:
    """The rows as one FP64 input a column, and (for the table model) the text column
    ``garden`` as BYTES, tagged ``str`` as MLServer's own pandas codec writes it."""
    rows = np.array(ROWS)
    inputs: list[dict[str, Any]] = [
        {"name": name, "datatype": "FP64", "shape": [len(rows), 1], "data": rows[:, i].tolist()}
        for i, name in enumerate(COLUMNS)
    ]
    garden: dict[str, Any] = {"name": "garden", "datatype": "BYTES", "shape": [3, 1]}
    garden["data"] = GARDEN
    if text_tag:
        garden["parameters"] = {"content_type": "str"}
    return [*inputs, garden]


def body(
    inputs: list[dict[str, Any]], content_type: str | None, outputs: list[str] | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {"inputs": inputs}
    if content_type:
        found["parameters"] = {"content_type": content_type}
    if outputs:
        found["outputs"] = [{"name": n} for n in outputs]
    return found


def one_input(**parameters: Any) -> list[dict[str, Any]]:
    rows = np.array(ROWS)
    given: dict[str, Any] = {"name": "x", "datatype": "FP64", "shape": list(rows.shape)}
    given["data"] = rows.ravel().tolist()
    if parameters:
        given["parameters"] = parameters
    return [given]


def text_input(tagged: bool) -> list[dict[str, Any]]:
    given: dict[str, Any] = {"name": "docs", "datatype": "BYTES", "shape": [3]}
    given["data"] = DOCUMENTS
    if tagged:
        given["parameters"] = {"content_type": "str"}
    return [given]


# (model, request body)
CASES = {
    "table-pd": ("table", body(columns(), "pd")),
    "table-pd-untagged-text": ("table", body(columns(text_tag=False), "pd")),
    "table-pd-proba": ("table", body(columns(), "pd", ["predict", "predict_proba"])),
    "table-settings-pd": ("table-default", body(columns(), None)),
    "text-str": ("text", body(text_input(tagged=True), "str", ["predict_proba"])),
    "text-str-untagged": ("text", body(text_input(tagged=False), "str")),
    "sklearn-np": ("iris-sklearn", body(one_input(), "np")),
    "sklearn-input-np": ("iris-sklearn", body(one_input(content_type="np"), None)),
    "sklearn-pd": ("iris-sklearn", body(columns()[:4], "pd", ["predict_proba"])),
    "xgboost-pd": ("iris-xgboost", body(columns()[:4], "pd", ["predict_proba"])),
    "lightgbm-pd": ("iris-lightgbm", body(columns()[:4], "pd")),
    "mlflow-pd": ("iris-mlflow", body(columns()[:4], "pd")),
}


def post(url: str, model: str, request: dict[str, Any]) -> httpx.Response:
    headers = {"content-type": "application/json"}
    return httpx.post(
        f"{url}/v2/models/{model}/infer", content=json.dumps(request), headers=headers, timeout=30
    )


@pytest.mark.parametrize("case", list(CASES))
def test_rest_answers_are_mlservers(servers: Any, case: str) -> None:
    mlserver, ours = servers
    model, request = CASES[case]
    a = post(mlserver.url, model, request)
    b = post(ours[model].url, model, request)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    same(a.json(), b.json())


def grpc_answer(target: str, model: str, request: dict[str, Any]) -> dict[str, Any]:
    """`request` (the REST body) sent as a ModelInferRequest, typed contents."""
    message = pb.ModelInferRequest(model_name=model)
    for key, value in (request.get("parameters") or {}).items():
        message.parameters[key].string_param = value
    for given in request["inputs"]:
        tensor = message.inputs.add(
            name=given["name"], datatype=given["datatype"], shape=given["shape"]
        )
        for key, value in (given.get("parameters") or {}).items():
            tensor.parameters[key].string_param = value
        if given["datatype"] == "BYTES":
            tensor.contents.bytes_contents.extend(s.encode() for s in given["data"])
        else:
            tensor.contents.fp64_contents.extend(given["data"])
    for output in request.get("outputs") or []:
        message.outputs.add(name=output["name"])
    with grpc.insecure_channel(target) as channel:
        answer = inference_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            message, timeout=30
        )
    found: dict[str, Any] = json_format.MessageToDict(answer)
    return found


# Over gRPC a BYTES input comes as bytes: MLServer makes text of them only when the
# input says ``str`` (an untagged text column is bytes there, which the model refuses).
GRPC_CASES = [c for c in CASES if "untagged" not in c]


@pytest.mark.parametrize("case", GRPC_CASES)
def test_grpc_answers_are_mlservers(servers: Any, case: str) -> None:
    mlserver, ours = servers
    model, request = CASES[case]
    same(
        grpc_answer(mlserver.grpc_target, model, request),
        grpc_answer(ours[model].grpc_target, model, request),
    )


def test_several_inputs_without_pd_are_a_400_on_both(servers: Any) -> None:
    mlserver, ours = servers
    request = body(columns()[:4], None)
    a = post(mlserver.url, "iris-sklearn", request)
    b = post(ours["iris-sklearn"].url, "iris-sklearn", request)
    assert a.status_code == b.status_code == 400, (a.text, b.text)
    assert "single input" in a.json()["error"]
    assert "takes one input, and the request has 4" in b.json()["error"]
    request = body(columns()[:4], "np")
    a = post(mlserver.url, "iris-xgboost", request)
    b = post(ours["iris-xgboost"].url, "iris-xgboost", request)
    assert a.status_code == b.status_code == 400, (a.text, b.text)


def test_where_mlserver_fails_or_guesses_this_answers_or_says_why(servers: Any) -> None:
    """Differences (docs/prepackaged-servers.md): MLServer fills the short column of a
    table whose columns differ in length with missing values, and answers; it ignores a
    content type no codec has (the request is read as an array): here both are 400s
    saying why. An array (``np``) sent to an MLflow model whose signature names its
    columns is a 500 from MLServer, and here the DataFrame of those columns (as on the
    Seldon protocol)."""
    mlserver, ours = servers
    a = post(mlserver.url, "iris-mlflow", body(one_input(), "np"))
    b = post(ours["iris-mlflow"].url, "iris-mlflow", body(one_input(), "np"))
    assert (a.status_code, b.status_code) == (500, 200), (a.text, b.text)
    unequal = columns()
    unequal[-1] = {**unequal[-1], "shape": [2, 1], "data": GARDEN[:2]}
    a = post(mlserver.url, "table", body(unequal, "pd"))
    b = post(ours["table"].url, "table", body(unequal, "pd"))
    assert (a.status_code, b.status_code) == (200, 400), (a.text, b.text)
    assert "columns must be as long as each other" in b.json()["error"]
    a = post(mlserver.url, "iris-sklearn", body(one_input(), "arrow"))
    b = post(ours["iris-sklearn"].url, "iris-sklearn", body(one_input(), "arrow"))
    assert (a.status_code, b.status_code) == (200, 400), (a.text, b.text)
    assert "'arrow' is not one this server decodes" in b.json()["error"]
