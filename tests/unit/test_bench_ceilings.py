"""The benchmark's library ceilings (benchmarks/ceilings/library_replies.py) answer what the
prepackaged servers answer, the same body from the same model file: a ceiling that did
less than the server would make its best reachable ratio a false promise."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

from tests import server_models
from tests.unit.test_servers import serve

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 4.0, 1.0]]


@pytest.fixture(scope="module")
def replies() -> ModuleType:
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module("ceilings.library_replies")


def without_id(answer: dict[str, Any]) -> dict[str, Any]:
    """An Open Inference answer less what each server makes or names its own way."""
    return {k: v for k, v in answer.items() if k not in ("id", "model_name")}


def v2_body(datatype: str) -> bytes:
    flat = [x for row in ROWS for x in row]
    tensor = {"name": "input-0", "shape": [len(ROWS), 4], "datatype": datatype, "data": flat}
    return orjson.dumps({"inputs": [tensor]})


def test_the_seldon_sklearn_ceiling_answers_as_sklearn_server(
    tmp_path: Path, replies: ModuleType
) -> None:
    server_models.sklearn_classifier(tmp_path)
    body = orjson.dumps({"data": {"ndarray": ROWS}})
    ceiling = orjson.loads(replies.MAKERS["seldon-sklearn"](tmp_path / "model.joblib")(body))
    ours = serve("SKLEARN_SERVER", tmp_path).post("/api/v1.0/predictions", content=body)
    assert ours.status_code == 200, ours.text
    assert ceiling == ours.json()


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("library", ["sklearn", "xgboost"])
def test_the_v2_ceilings_answer_as_the_servers(
    tmp_path: Path, replies: ModuleType, library: str, datatype: str
) -> None:
    if library == "sklearn":
        server_models.sklearn_classifier(tmp_path)
        model_file, implementation = tmp_path / "model.joblib", "SKLEARN_SERVER"
    else:
        pytest.importorskip("xgboost")
        server_models.xgboost_classifier(tmp_path)
        model_file, implementation = tmp_path / "model.json", "XGBOOST_SERVER"
    body = v2_body(datatype)
    ceiling = orjson.loads(replies.MAKERS[f"v2-{library}"](model_file)(body))
    ours = serve(implementation, tmp_path).post("/v2/models/m/infer", content=body)
    assert ours.status_code == 200, ours.text
    assert without_id(ceiling) == without_id(ours.json())
    assert ceiling["outputs"][0]["shape"] == [len(ROWS), 1]
