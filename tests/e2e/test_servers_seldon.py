"""Differential tests on the Seldon protocol: seldon-core 1.19's wrapper running stand-in
server classes (tests/fixtures/seldon_servers/, written from Seldon's contract: its
server images cannot be pulled here) and `unitserve serve SKLEARN_SERVER` /
`XGBOOST_SERVER` / `LIGHTGBM_SERVER` / `MLFLOW_SERVER` serve the same model files and are
sent the same requests over REST and gRPC. The answers must be the same but for
``meta``. The deliberate differences are asserted as differences: a refused request is
our 400 with the library's sentence (where Seldon's SKLearnServer and LightGBMServer
swallow the error, and its XGBoostServer and MLFlowServer answer a 500), and an MLflow
model whose signature names its columns is given them when the request names none
(Seldon's MLFlowServer fails).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format

from unitserve.proto import prediction_pb2, prediction_pb2_grpc

from ..client_venvs import client_python
from ..conftest import FIXTURES, Server, clean_env, free_ports, stop_process, wait_until
from ..server_models import COLUMNS, train

STAND_INS = FIXTURES / "seldon_servers"

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
TENSOR = {"shape": [2, 4], "values": [5.1, 3.5, 1.4, 0.2, 6.3, 3.3, 6.0, 2.5]}
REQUEST_IDS = ["one-row", "two-rows", "names", "tensor"]

# For a model that takes a plain array: the feature names, when sent, are not used.
REQUESTS: list[dict[str, Any]] = [
    {"data": {"ndarray": ROWS[:1]}},
    {"data": {"ndarray": ROWS}},
    {"data": {"names": ["a", "b", "c", "d"], "ndarray": [[6.0, 2.2, 4.0, 1.0]]}},
    {"data": {"tensor": TENSOR}},
]
# For a model whose signature names its columns: every request names them.
NAMED_REQUESTS: list[dict[str, Any]] = [
    {"data": {"names": COLUMNS, "ndarray": ROWS[:1]}},
    {"data": {"names": COLUMNS, "ndarray": ROWS}},
    {"data": {"names": COLUMNS, "ndarray": [[6.0, 2.2, 4.0, 1.0]]}},
    {"data": {"names": COLUMNS, "tensor": TENSOR}},
]


@dataclass(frozen=True)
class Case:
    """One prepackaged server, the model folder it serves, the requests it is sent, and
    what each side answers to a request it refuses (one row of three features):
    Seldon's status and a sentence in its ``status.info``; a sentence in ours (a 400).
    MLflow's refusal says the same on both sides: only the status differs."""

    cls: str
    implementation: str
    folder: str
    params: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=lambda: REQUESTS)
    seldon_refusal: tuple[int, str] = (500, "")
    our_refusal: str = ""


CASES = {
    # SKLearnServer and LightGBMServer swallow the error; the wrapper then refuses the
    # None they return with a 400 that does not say what is wrong.
    "sklearn-proba": Case(
        "SKLearnServer",
        "SKLEARN_SERVER",
        "sklearn",
        seldon_refusal=(400, "Unknown data type returned as payload"),
        our_refusal="3 features",
    ),
    "sklearn-predict": Case(
        "SKLearnServer",
        "SKLEARN_SERVER",
        "sklearn",
        {"method": "predict"},
        seldon_refusal=(400, "Unknown data type returned as payload"),
        our_refusal="3 features",
    ),
    "xgboost": Case("XGBoostServer", "XGBOOST_SERVER", "xgboost", our_refusal="got 3"),
    "lightgbm": Case(
        "LightGBMServer",
        "LIGHTGBM_SERVER",
        "lightgbm",
        seldon_refusal=(400, "Unknown data type returned as payload"),
        our_refusal="number of features in data (3)",
    ),
    "mlflow-ndarray": Case(
        "MLFlowServer",
        "MLFLOW_SERVER",
        "mlflow-array",
        {"xtype": "ndarray"},
        seldon_refusal=(500, "does not match expected shape"),
        our_refusal="does not match expected shape",
    ),
    "mlflow-dataframe": Case(
        "MLFlowServer",
        "MLFLOW_SERVER",
        "mlflow-columns",
        {"xtype": "dataframe"},
        NAMED_REQUESTS,
        seldon_refusal=(500, "Model is missing inputs"),
        our_refusal="Model is missing inputs",
    ),
    "mlflow-table": Case(
        "MLFlowServer",
        "MLFLOW_SERVER",
        "mlflow-table",
        {"xtype": "dataframe"},
        NAMED_REQUESTS,
        seldon_refusal=(500, "Model is missing inputs"),
        our_refusal="Model is missing inputs",
    ),
}


class SeldonWrapper:
    """seldon-core-microservice CLASS on loopback, with model_uri as its parameter."""

    def __init__(self, python: Path, cls: str, model_uri: Path, log: Path, **params: str) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        parameters = [{"name": "model_uri", "value": str(model_uri), "type": "STRING"}]
        parameters += [{"name": k, "value": v, "type": "STRING"} for k, v in params.items()]
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                str(python.parent / "seldon-core-microservice"),
                cls,
                "--http-port",
                str(self.http_port),
                "--grpc-port",
                str(self.grpc_port),
                "--metrics-port",
                str(self.metrics_port),
                "--parameters",
                json.dumps(parameters),
            ],
            cwd=STAND_INS,
            # MLflow keeps a tracking folder where it loads a model: the test's, not the
            # fixtures folder the wrapper runs in.
            env=clean_env({"MLFLOW_TRACKING_URI": (log.parent / "mlruns").as_uri()}),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"

    def ready(self) -> bool:
        assert self.proc.poll() is None, "seldon-core-microservice exited while starting"
        try:
            return httpx.get(f"{self.url}/health/ping", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    python = client_python("seldon-core-servers")
    folder = tmp_path_factory.mktemp("models")
    # Trained by the reference side, whose older NumPy could not read our pickles.
    train(
        python,
        folder,
        sklearn_classifier="sklearn",
        xgboost_booster="xgboost",
        lightgbm_classifier="lightgbm",
        mlflow_classifier="mlflow-columns",
        mlflow_table_by_name="mlflow-table",
        mlflow_array_classifier="mlflow-array",
    )
    return python, folder


@contextmanager
def serving(
    models: tuple[Path, Path], case: Case, logs: Path
) -> Iterator[tuple[SeldonWrapper, Server]]:
    """Seldon's wrapper with the stand-in, and unitserve, serving the case's model."""
    python, folder = models
    model = folder / case.folder
    theirs = SeldonWrapper(python, case.cls, model, logs / f"{case.folder}.log", **case.params)
    parameters = json.dumps(
        [{"name": k, "value": v, "type": "STRING"} for k, v in case.params.items()]
    )
    ours = Server(
        case.implementation, "--model-uri", str(model), "--parameters", parameters, cwd=folder
    )
    try:
        ours.start()
        wait_until(theirs.ready, timeout=90, every=0.2)
        yield theirs, ours
    finally:
        ours.stop()
        theirs.stop()


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def pair(request: Any, models: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    case = CASES[request.param]
    with serving(models, case, tmp_path_factory.mktemp("logs")) as (theirs, ours):
        yield theirs, ours, case


def predict(server: SeldonWrapper | Server, body: dict[str, Any]) -> httpx.Response:
    if isinstance(server, Server):
        return server.post("/api/v1.0/predictions", json=body)
    return httpx.post(f"{server.url}/api/v1.0/predictions", json=body, timeout=30)


def without_meta(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "meta"}


def close(a: Any, b: Any) -> None:
    """The same JSON answers, numbers equal to float32 precision (the servers' NumPy and
    JSON writers may differ in the last digits)."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys(), (a, b)
        for key in a:
            close(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b, strict=True):
            close(x, y)
    elif isinstance(a, float | int) and not isinstance(a, bool):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    else:
        assert a == b


@pytest.mark.parametrize("index", range(len(REQUEST_IDS)), ids=REQUEST_IDS)
def test_rest_answers_are_seldons(pair: Any, index: int) -> None:
    theirs, ours, case = pair
    body = case.requests[index]
    a, b = predict(theirs, body), predict(ours, body)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    close(without_meta(a.json()), without_meta(b.json()))


@pytest.mark.parametrize("index", range(len(REQUEST_IDS)), ids=REQUEST_IDS)
def test_grpc_answers_are_seldons(pair: Any, index: int) -> None:
    theirs, ours, case = pair
    answers = []
    for target in (theirs.grpc_target, ours.grpc_target):
        with grpc.insecure_channel(target) as channel:
            stub = prediction_pb2_grpc.ModelStub(channel)
            request = json_format.ParseDict(case.requests[index], prediction_pb2.SeldonMessage())
            answers.append(json_format.MessageToDict(stub.Predict(request, timeout=30)))
    close(without_meta(answers[0]), without_meta(answers[1]))


def test_a_wrong_feature_count_is_our_400_where_seldon_differs(pair: Any) -> None:
    theirs, ours, case = pair
    body = {"data": {"ndarray": [[1.0, 2.0, 3.0]]}}
    a, b = predict(theirs, body), predict(ours, body)
    # Seldon: a swallowed error is a None the wrapper refuses with a 400 that does not
    # say what is wrong; a raised one is a 500. Ours: the client's 400 with the
    # library's sentence.
    status, sentence = case.seldon_refusal
    assert a.status_code == status, a.text
    assert sentence in a.json()["status"]["info"]
    assert b.status_code == 400, b.text
    assert case.our_refusal in b.json()["status"]["info"]


@pytest.mark.parametrize("xtype", ["ndarray", "dataframe"])
def test_mlflow_columns_without_names_are_ours_where_seldon_fails(
    models: Any, tmp_path: Path, xtype: str
) -> None:
    """A model whose signature names its columns, sent rows without names: Seldon's
    MLFlowServer gives it a bare array (or a DataFrame of numbered columns), which MLflow
    refuses (a 500); ours gives it the signature's columns, and answers as Seldon does
    when the request names them."""
    case = CASES["mlflow-dataframe"]
    case = Case(case.cls, case.implementation, case.folder, {"xtype": xtype})
    with serving(models, case, tmp_path) as (theirs, ours):
        a = predict(theirs, REQUESTS[1])
        b = predict(ours, REQUESTS[1])
        named = predict(ours, NAMED_REQUESTS[1])
    assert a.status_code == 500, a.text
    assert b.status_code == named.status_code == 200, (b.text, named.text)
    close(without_meta(b.json()), without_meta(named.json()))
