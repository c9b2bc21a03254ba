"""Differential harness: MLServer 1.7 and `unitserve start` serving the same model
repository, sent the same requests.

The repository (tests/e2e/repository_models/): scikit-learn, XGBoost and LightGBM
models trained on tiny made-up data by MLServer's own runtimes' libraries, a custom
model (an MLServer runtime for MLServer, the equivalent Seldon class for unitserve,
same name, same ``parameters.extra``), and a broken model whose file is missing. The
servers start as Core 2 starts them (MLServer's variables, nothing loaded), and each
model is loaded over gRPC as Core 2's agent loads it.

`record()` keeps, per request, the status and the answer with its volatile parts
(ids) taken out: MLServer's record is checked against the libraries' own predictions
(so that the harness is known to reach the models), and unitserve's must equal it,
except for the differences listed in KNOWN (each one a line of docs/compatibility.md).
Set UNITSERVE_RECORD_DIR to keep each server's record as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format

from unitserve.proto import inference_pb2 as pb

from ..client_venvs import client_python
from .core2_agent import Core2Agent
from .repository_servers import RepositoryServer

pytestmark = pytest.mark.slow  # trains models and starts MLServer: about a minute

MODELS = Path(__file__).parent / "repository_models"
VENV = "mlserver-runtimes"
LIBRARY_MODELS = ("iris-sklearn", "iris-xgboost", "iris-lightgbm")
ALL_MODELS = (*LIBRARY_MODELS, "scale")
# Differences between the servers that are known and meant: case → why. (Each becomes a
# line of docs/compatibility.md once `unitserve start` serves this repository.)
KNOWN: dict[str, str] = {
    "grpc index": "MLServer names states as Python prints its enum (State.READY); the "
    "protocol, and Core 2's agent, say READY",
    "index": "MLServer lists a model that failed to load with an empty reason; unitserve says why",
    **{
        f"{model} wrong width": "a request the model cannot take is the client's mistake: "
        "unitserve answers 400 where MLServer answers 500 with the library's exception"
        for model in LIBRARY_MODELS
    },
    # The custom model: a Seldon class keeps its own answer (docs/compatibility.md,
    # "unitserve start"); the library models answer as MLServer's runtimes.
    **{
        f"scale {case}": "a Seldon class's output has no `content_type` tag and the "
        "shape of the array it returned; MLServer's custom runtime has no "
        "`model_version`"
        for case in ("infer", "versioned infer", "grpc infer")
    },
    "scale wrong width": "as scale infer (the Seldon class takes any width, as the runtime)",
    **{
        f"{model} metadata": "MLServer's metadata has `versions: []` and empty `parameters`; "
        "unitserve lists the model's version and leaves out what is empty"
        for model in ALL_MODELS
    },
    **{
        f"{model} ready": "MLServer answers readiness with an empty body; unitserve with "
        '{"name", "ready": true}, the protocol\'s form'
        for model in ALL_MODELS
    },
    **{
        f"{model} unknown output": "the same 400, worded by unitserve"
        for model in ("iris-sklearn", "iris-xgboost")
    },
    "unknown model infer": "the same 404, worded by unitserve (it says which models it serves)",
    "broken ready": "the same 404, worded by unitserve",
}


def build_repository(root: Path, custom: str) -> dict[str, Any]:
    """Train the library models into `root`, add the custom model and a broken one;
    the libraries' own predictions are returned (expected.json)."""
    python = client_python(VENV)
    subprocess.run([str(python), str(MODELS / "train_tiny.py"), str(root)], check=True, timeout=300)
    shutil.copytree(MODELS / custom, root / "scale")
    broken = root / "broken"
    broken.mkdir()
    settings = {"name": "broken", "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./missing.joblib"}}  # fmt: skip
    (broken / "model-settings.json").write_text(json.dumps(settings))
    return json.loads((root / "expected.json").read_text())


def tensor(name: str, values: list[list[float]]) -> dict[str, Any]:
    array = np.asarray(values, dtype=np.float32)
    return {"name": name, "shape": list(array.shape), "datatype": "FP32",
            "data": array.ravel().tolist()}  # fmt: skip


def rest_cases(probe: list[list[float]]) -> dict[str, tuple[str, str, Any]]:
    """case → (method, path, JSON body or None)."""
    cases: dict[str, tuple[str, str, Any]] = {}
    for model in ALL_MODELS:
        infer = f"/v2/models/{model}/infer"
        cases[f"{model} infer"] = ("POST", infer, {"inputs": [tensor("x", probe)]})
        cases[f"{model} metadata"] = ("GET", f"/v2/models/{model}", None)
        cases[f"{model} ready"] = ("GET", f"/v2/models/{model}/ready", None)
        cases[f"{model} wrong width"] = (
            "POST", infer, {"inputs": [tensor("x", [row[:3] for row in probe])]},
        )  # fmt: skip
        cases[f"{model} versioned infer"] = (
            "POST", f"/v2/models/{model}/versions/v1/infer", {"inputs": [tensor("x", probe)]},
        )  # fmt: skip
    for model in ("iris-sklearn", "iris-xgboost"):
        cases[f"{model} predict_proba"] = (
            "POST", f"/v2/models/{model}/infer",
            {"inputs": [tensor("x", probe)], "outputs": [{"name": "predict_proba"}]},
        )  # fmt: skip
        cases[f"{model} unknown output"] = (
            "POST", f"/v2/models/{model}/infer",
            {"inputs": [tensor("x", probe)], "outputs": [{"name": "nope"}]},
        )  # fmt: skip
    cases["unknown model infer"] = ("POST", "/v2/models/nope/infer", {"inputs": []})
    cases["broken ready"] = ("GET", "/v2/models/broken/ready", None)
    cases["index"] = ("POST", "/v2/repository/index", {})
    return cases


def _volatile_out(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _volatile_out(v) for k, v in value.items() if k not in ("id",)}
    if isinstance(value, list):
        return [_volatile_out(v) for v in value]
    return value


def _as_written_by_either(answer: Any) -> Any:
    """An inference answer with what differs only in its writing taken out: MLServer's
    empty answer ``parameters`` over REST (``{}``: nothing) and its FP32 values over
    REST, written as the float64 nearest them (unitserve writes the FP32 numbers)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("outputs"), list):
        return answer
    answer = {k: v for k, v in answer.items() if k != "parameters" or v}
    outputs = []
    for output in answer["outputs"]:
        if output.get("datatype") == "FP32" and "data" in output:
            output = {**output, "data": np.asarray(output["data"], np.float32).tolist()}
        outputs.append(output)
    return {**answer, "outputs": outputs}


def record(server: RepositoryServer, probe: list[list[float]]) -> dict[str, Any]:
    """Each case's status and answer (see the module doc)."""
    out: dict[str, Any] = {}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for case, (method, path, body) in rest_cases(probe).items():
            r = client.request(method, path, json=body)
            try:
                answer: Any = r.json()
            except ValueError:
                answer = r.text
            if case == "index":  # listed in no particular order
                answer = sorted(answer, key=lambda entry: entry.get("name", ""))
            answer = _as_written_by_either(_volatile_out(answer))
            out[case] = {"status": r.status_code, "answer": answer}
    agent = Core2Agent(server.models_dir, server.grpc_target, server.url)
    try:
        for model in ALL_MODELS:
            request = pb.ModelInferRequest(model_name=model)
            values = np.asarray(probe, dtype=np.float32)
            sent = request.inputs.add(name="x", datatype="FP32", shape=list(values.shape))
            sent.contents.fp32_contents.extend(values.ravel().tolist())
            try:
                answer = agent.rpc("ModelInfer", request, pb.ModelInferResponse, 60)
                out[f"{model} grpc infer"] = {"status": "OK", "answer": _volatile_out(
                    json_format.MessageToDict(answer))}  # fmt: skip
            except grpc.RpcError as exc:
                out[f"{model} grpc infer"] = {"status": exc.code().name, "answer": exc.details()}
        out["grpc index"] = {"status": "OK", "answer": agent.index()}
    finally:
        agent.close()
    return out


def serve(kind: str, root: Path) -> Iterator[tuple[RepositoryServer, dict[str, str]]]:
    """The server on `root`, each model loaded as the agent loads it: (server, the
    outcome of each load)."""
    server = (
        RepositoryServer.mlserver(root, venv=VENV)
        if kind == "mlserver"
        else RepositoryServer.unitserve(root)
    )
    try:
        server.wait_live(timeout=180)
        agent = Core2Agent(root, server.grpc_target, server.url)
        loads = {}
        try:
            agent.start()
            for model in (*ALL_MODELS, "broken"):
                try:
                    agent.load(model, timeout=120)
                    loads[model] = "OK"
                except grpc.RpcError as exc:
                    loads[model] = exc.code().name
        finally:
            agent.close()
        yield server, loads
    finally:
        server.stop()


def keep(kind: str, data: dict[str, Any]) -> None:
    folder = os.environ.get("UNITSERVE_RECORD_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"repository-{kind}.json").write_text(json.dumps(data, indent=2))


@pytest.fixture(scope="module")
def mlserver_record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mlserver-repository")
    expected = build_repository(root, "custom_mlserver")
    for server, loads in serve("mlserver", root):
        data = {"loads": loads, "expected": expected, "cases": record(server, expected["probe"])}
        keep("mlserver", data)
        return data
    raise AssertionError("MLServer did not start")


def test_mlserver_serves_the_repository_with_the_libraries_answers(
    mlserver_record: dict[str, Any],
) -> None:
    """The harness reaches the models: MLServer's answers are the libraries' own."""
    loads, expected, cases = (mlserver_record[k] for k in ("loads", "expected", "cases"))
    assert loads == {**dict.fromkeys(ALL_MODELS, "OK"), "broken": loads["broken"]}
    assert loads["broken"] != "OK"
    for model in LIBRARY_MODELS:
        answer = cases[f"{model} infer"]
        assert answer["status"] == 200, (model, answer)
        [output] = answer["answer"]["outputs"]
        got = np.ravel(output["data"])
        assert np.allclose(got, np.ravel(expected[model]["predict"]), atol=1e-5), (model, got)
        assert cases[f"{model} wrong width"]["status"] >= 400
    for model in ("iris-sklearn", "iris-xgboost"):
        [proba] = cases[f"{model} predict_proba"]["answer"]["outputs"]
        assert np.allclose(np.ravel(proba["data"]), np.ravel(expected[model]["predict_proba"]))
    [scaled] = cases["scale infer"]["answer"]["outputs"]
    assert np.allclose(np.ravel(scaled["data"]), np.ravel(expected["probe"]) * 2.5)
    assert cases["unknown model infer"]["status"] == 404
    assert set(cases["grpc index"]["answer"]) >= {*ALL_MODELS, "broken"}


def test_unitserve_answers_as_mlserver_does(
    mlserver_record: dict[str, Any], tmp_path: Path
) -> None:
    build_repository(tmp_path, "custom_seldon")
    for server, loads in serve("unitserve", tmp_path):
        cases = record(server, mlserver_record["expected"]["probe"])
        keep("unitserve", {"loads": loads, "cases": cases})
        assert loads == mlserver_record["loads"]
        different = {
            case: (mlserver_record["cases"][case], cases.get(case))
            for case in mlserver_record["cases"]
            if case not in KNOWN and cases.get(case) != mlserver_record["cases"][case]
        }
        assert different == {}
