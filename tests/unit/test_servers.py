"""The prepackaged servers, in-process behind the real engine, codecs and transports.

Each test trains a tiny model, saves it as users do, builds the server as `unitserve
serve SKLEARN_SERVER --model-uri …` would (by its implementation name), and checks the
answers on the Seldon protocol (REST and gRPC, as Seldon's classes answer) and on the
Open Inference Protocol (REST and gRPC, as MLServer's runtimes answer) against the
library's own predictions.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import server_models
from tests.unit.engine_harness import Harness, RpcError
from unitserve import component
from unitserve.errors import StartupError
from unitserve.servers import IMPLEMENTATIONS, model_files
from unitserve.servers import sklearn as sklearn_server

ROW = [[1.0, 2.0, 5.0, 6.0]]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def serve(implementation: str, model_uri: Path | str, **parameters: Any) -> Harness:
    """The server built by its implementation name, loaded, behind a harness."""
    user_class = component.import_user_class(implementation)
    user = component.construct(user_class, {"model_uri": str(model_uri), **parameters})
    user.load()
    return Harness(user, flags={"model_name": "m"})


def seldon_rest(h: Harness, rows: Any, names: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"ndarray": rows}
    if names:
        data["names"] = names
    r = h.post("/api/v1.0/predictions", json={"data": data})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def seldon_grpc(h: Harness, rows: Any, names: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"ndarray": rows}
    if names:
        data["names"] = names
    return h.call_json("Model/Predict", {"data": data})


def oip_request(rows: Any, outputs: list[str] | None = None) -> dict[str, Any]:
    arr = np.asarray(rows, dtype=np.float64)
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "x",
                "datatype": "FP64",
                "shape": list(arr.shape),
                "data": arr.ravel().tolist(),
            }
        ]
    }
    if outputs is not None:
        body["outputs"] = [{"name": n} for n in outputs]
    return body


def oip_rest(h: Harness, rows: Any, outputs: list[str] | None = None) -> list[dict[str, Any]]:
    r = h.post("/v2/models/m/infer", json=oip_request(rows, outputs))
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["outputs"]
    return found


def oip_grpc(h: Harness, rows: Any, outputs: list[str] | None = None) -> dict[str, np.ndarray]:
    arr = np.asarray(rows, dtype=np.float64)
    request: dict[str, Any] = {
        "model_name": "m",
        "inputs": [
            {
                "name": "x",
                "datatype": "FP64",
                "shape": list(arr.shape),
                "contents": {"fp64_contents": arr.ravel().tolist()},
            }
        ],
    }
    if outputs is not None:
        request["outputs"] = [{"name": n} for n in outputs]
    answer = h.call_v2("ModelInfer", request)
    found = {}
    for i, out in enumerate(answer.outputs):
        raw = answer.raw_output_contents[i] if answer.raw_output_contents else None
        dtype = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64}[out.datatype]
        if raw is not None:
            values = np.frombuffer(raw, dtype=dtype)
        else:
            values = np.array(
                {
                    "FP64": out.contents.fp64_contents,
                    "FP32": out.contents.fp32_contents,
                    "INT64": out.contents.int64_contents,
                }[out.datatype],
                dtype=dtype,
            )
        found[out.name] = values.reshape(list(out.shape))
    return found


def test_the_table_names_importable_classes_without_importing_libraries() -> None:
    assert set(IMPLEMENTATIONS) == {
        "SKLEARN_SERVER",
        "XGBOOST_SERVER",
        "LIGHTGBM_SERVER",
        "MLFLOW_SERVER",
    }
    for name, path in IMPLEMENTATIONS.items():
        cls = component.import_user_class(name)
        assert f"{cls.__module__}.{cls.__name__}" == path


# ----------------------------------------------------------------------------- scikit-learn


@pytest.fixture(scope="module")
def iris_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("iris")
    model = server_models.sklearn_classifier(folder)
    return folder, model


def test_sklearn_seldon_answers_predict_proba_with_default_names(iris_folder: Any) -> None:
    folder, model = iris_folder
    h = serve("SKLEARN_SERVER", folder)
    body = seldon_rest(h, ROW)
    assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
    np.testing.assert_allclose(body["data"]["ndarray"], model.predict_proba(np.array(ROW)))
    grpc_body = seldon_grpc(h, ROWS)
    np.testing.assert_allclose(grpc_body["data"]["ndarray"], model.predict_proba(np.array(ROWS)))


def test_sklearn_seldon_predict_is_one_dimensional_with_no_names(iris_folder: Any) -> None:
    folder, model = iris_folder
    h = serve("SKLEARN_SERVER", f"file://{folder}", method="predict")
    body = seldon_rest(h, ROWS)
    assert body["data"]["names"] == []
    assert body["data"]["ndarray"] == model.predict(np.array(ROWS)).tolist()


def test_sklearn_seldon_decision_function(iris_folder: Any) -> None:
    folder, model = iris_folder
    h = serve("SKLEARN_SERVER", folder, method="decision_function")
    body = seldon_rest(h, ROWS)
    np.testing.assert_allclose(body["data"]["ndarray"], model.decision_function(np.array(ROWS)))


def test_sklearn_wrong_feature_count_is_a_400_with_sklearns_sentence(iris_folder: Any) -> None:
    folder, _ = iris_folder
    h = serve("SKLEARN_SERVER", folder)
    r = h.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0, 2.0, 3.0]]}})
    assert r.status_code == 400
    assert "3 features" in r.json()["status"]["info"]
    with pytest.raises(RpcError) as err:
        seldon_grpc(h, [[1.0, 2.0, 3.0]])
    assert err.value.code.name == "INVALID_ARGUMENT"
    assert "3 features" in err.value.details
    r = h.post("/v2/models/m/infer", json=oip_request([[1.0, 2.0, 3.0]]))
    assert r.status_code == 400 and "3 features" in r.text


def test_sklearn_oip_answers_predict_by_default_as_mlserver(iris_folder: Any) -> None:
    folder, model = iris_folder
    h = serve("SKLEARN_SERVER", folder)
    (out,) = oip_rest(h, ROWS)
    assert out["name"] == "predict"
    assert out["datatype"] == "INT64"
    assert out["shape"] == [2, 1]
    assert out["data"] == model.predict(np.array(ROWS)).tolist()
    by_grpc = oip_grpc(h, ROWS)
    assert list(by_grpc) == ["predict"]
    assert by_grpc["predict"].tolist() == [[v] for v in model.predict(np.array(ROWS))]


def test_sklearn_oip_requested_outputs_choose_the_methods(iris_folder: Any) -> None:
    folder, model = iris_folder
    h = serve("SKLEARN_SERVER", folder)
    outs = oip_rest(h, ROWS, ["predict_proba", "predict"])
    assert [o["name"] for o in outs] == ["predict_proba", "predict"]
    assert outs[0]["datatype"] == "FP64" and outs[0]["shape"] == [2, 3]
    np.testing.assert_allclose(
        np.array(outs[0]["data"]).reshape(2, 3), model.predict_proba(np.array(ROWS))
    )
    by_grpc = oip_grpc(h, ROWS, ["transform"] if hasattr(model, "transform") else ["predict"])
    assert len(by_grpc) == 1


def test_sklearn_oip_unknown_output_and_proba_of_a_regressor_are_400s(
    tmp_path: Path, iris_folder: Any
) -> None:
    folder, _ = iris_folder
    h = serve("SKLEARN_SERVER", folder)
    r = h.post("/v2/models/m/infer", json=oip_request(ROWS, ["score"]))
    assert r.status_code == 400 and "score was received" in r.text
    server_models.sklearn_regressor(tmp_path / "reg")
    h = serve("SKLEARN_SERVER", tmp_path / "reg")
    r = h.post("/v2/models/m/infer", json=oip_request([[1.0, 2.0, 3.0]], ["predict_proba"]))
    assert r.status_code == 400 and "do not support 'predict_proba'" in r.text
    with pytest.raises(RpcError) as err:
        oip_grpc(h, [[1.0, 2.0, 3.0]], ["predict_proba"])
    assert err.value.code.name == "INVALID_ARGUMENT"


def test_sklearn_oip_answer_is_mlservers_whole(iris_folder: Any) -> None:
    """Each output tagged as MLServer's NumPy codec tags it, a 1-D result as [N, 1], and
    the request's parameters not echoed (MLServer's runtimes echo none)."""
    folder, model = iris_folder
    h = serve("SKLEARN_SERVER", folder)
    body = {**oip_request(ROWS, ["predict", "predict_proba"]), "parameters": {"team": "fraud"}}
    r = h.post("/v2/models/m/infer", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    proba = answer["outputs"][1].pop("data")
    np.testing.assert_allclose(proba, model.predict_proba(np.array(ROWS)).ravel())
    del answer["id"]
    assert answer == {
        "model_name": "m",
        "outputs": [
            {
                "name": "predict",
                "datatype": "INT64",
                "shape": [2, 1],
                "parameters": {"content_type": "np"},
                "data": model.predict(np.array(ROWS)).tolist(),
            },
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [2, 3],
                "parameters": {"content_type": "np"},
            },
        ],
    }
    request = {
        "model_name": "m",
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [2, 4],
             "contents": {"fp64_contents": np.ravel(ROWS).tolist()}}
        ],
    }  # fmt: skip
    by_grpc = h.call_v2("ModelInfer", request)
    assert not by_grpc.parameters
    [out] = by_grpc.outputs
    assert (out.name, list(out.shape)) == ("predict", [2, 1])
    assert out.parameters["content_type"].string_param == "np"
    # A plain Seldon class keeps its own answer: no tag, the shape it returned.
    assert "parameters" not in seldon_class_answer(h)


def seldon_class_answer(h: Harness) -> dict[str, Any]:
    class Plain:
        def predict(self, X: Any, names: Any) -> Any:
            return X[:, 0]

    plain = Harness(Plain(), flags={"model_name": "m"})
    r = plain.post("/v2/models/m/infer", json=oip_request(ROWS))
    assert r.status_code == 200, r.text
    [out] = r.json()["outputs"]
    assert out["shape"] == [2]
    found: dict[str, Any] = out
    return found


def test_sklearn_predict_fn_is_the_default_output(iris_folder: Any) -> None:
    """MLServer's setting of that name (``parameters.extra.predict_fn``)."""
    folder, _ = iris_folder
    h = serve("SKLEARN_SERVER", folder, predict_fn="predict_proba")
    (out,) = oip_rest(h, ROWS)
    assert out["name"] == "predict_proba" and out["shape"] == [2, 3]
    (out,) = oip_rest(h, ROWS, ["predict"])
    assert out["name"] == "predict"
    with pytest.raises(StartupError, match="predict_fn must be one of predict, predict_proba"):
        serve("SKLEARN_SERVER", folder, predict_fn="score")


def test_sklearn_table_result_is_one_output_a_column(tmp_path: Path) -> None:
    """A transformer set to answer pandas DataFrames: one output a column, untagged, as
    MLServer's pandas codec writes them; with another output asked for too, a 400."""
    import joblib
    from sklearn.preprocessing import StandardScaler

    X, _ = server_models.iris()
    scaler = StandardScaler().set_output(transform="pandas").fit(X)
    joblib.dump(scaler, tmp_path / "model.joblib")
    h = serve("SKLEARN_SERVER", tmp_path)
    r = h.post("/v2/models/m/infer", json=oip_request(ROWS, ["transform"]))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert "parameters" not in answer
    expected = scaler.transform(np.array(ROWS))
    assert [o["name"] for o in answer["outputs"]] == list(expected.columns)
    for out in answer["outputs"]:
        assert out["shape"] == [2, 1] and "parameters" not in out
        np.testing.assert_allclose(out["data"], expected[out["name"]].to_numpy())
    r = h.post("/v2/models/m/infer", json=oip_request(ROWS, ["transform", "predict"]))
    assert r.status_code == 400 and "returned a table" in r.text


def test_sklearn_reads_mlservers_file_names_and_a_single_file(tmp_path: Path) -> None:
    model = server_models.sklearn_classifier(tmp_path / "pkl", "model.pkl")
    h = serve("SKLEARN_SERVER", tmp_path / "pkl")
    np.testing.assert_allclose(
        seldon_rest(h, ROW)["data"]["ndarray"], model.predict_proba(np.array(ROW))
    )
    h = serve("SKLEARN_SERVER", tmp_path / "pkl" / "model.pkl")
    assert seldon_rest(h, ROW)["data"]["names"] == ["t:0", "t:1", "t:2"]


def test_metadata_yaml_beside_the_model_is_the_models_metadata(tmp_path: Path) -> None:
    server_models.sklearn_classifier(tmp_path)
    expected = server_models.write_metadata(tmp_path)
    h = serve("SKLEARN_SERVER", tmp_path)
    # What the model builds from init_metadata() after load().
    body = h.model.metadata
    assert body is not None
    assert body["name"] == expected["name"]
    assert body["versions"] == expected["versions"]
    assert body["inputs"][0]["schema"]["names"] == expected["inputs"][0]["schema"]["names"]


def test_metadata_yaml_that_is_not_yaml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "metadata.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match=r"metadata\.yaml is not valid YAML"):
        model_files.read_metadata(str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    assert model_files.read_metadata(str(tmp_path / "elsewhere")) == {}


def test_a_missing_model_file_is_one_line_naming_the_uri_and_the_names(tmp_path: Path) -> None:
    for name in IMPLEMENTATIONS:
        with pytest.raises(StartupError) as err:
            component.load_component(
                name, f'[{{"name": "model_uri", "value": "{tmp_path}", "type": "STRING"}}]'
            )
        message = str(err.value)
        assert "\n" not in message and str(tmp_path) in message
        assert "looked for" in message
    # a URI naming nothing at all: the URI and the names it would have looked for
    with pytest.raises(StartupError) as err:
        component.load_component(
            "SKLEARN_SERVER", f'[{{"name": "model_uri", "value": "{tmp_path}/nope"}}]'
        )
    message = str(err.value)
    assert message.startswith(f"SKLEARN_SERVER: no model at {tmp_path}/nope (looked for ")
    assert "model.joblib, model.pickle, model.pkl" in message and "no such file" in message
    assert "\n" not in message
    with pytest.raises(StartupError, match="needs model_uri"):
        component.load_component("SKLEARN_SERVER", "[]")


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if it were not installed
    with pytest.raises(
        StartupError, match=r"extra lightgbm \(in a clone: pip install -e '\.\[lightgbm\]'\)"
    ):
        model_files.require("LIGHTGBM_SERVER", "lightgbm")


@pytest.mark.parametrize("name", ["TENSORFLOW_SERVER", "TRITON_SERVER", "TEMPO_SERVER"])
def test_seldons_other_servers_are_named_not_looked_for_as_files(name: str, tmp_path: Path) -> None:
    with pytest.raises(StartupError) as caught:
        component.import_user_class(name, str(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"{name} is one of Seldon's prepackaged servers"), message
    assert "unitserve runs SKLEARN_SERVER, XGBOOST_SERVER" in message


def test_a_pickle_from_another_sklearn_version_logs_both_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sklearn

    # What a model saved by an old scikit-learn looks like to a new one: its estimator
    # records the old version, and names a module that no longer exists.
    old = pickle.dumps({"_sklearn_version": "0.22.1"}, protocol=4)
    assert sklearn_server.saved_sklearn_version_of(old) == "0.22.1"
    (tmp_path / "model.joblib").write_bytes(
        old[:-1] + b"\x8c\x19sklearn.svm._classes_gone\x94\x8c\x03SVC\x94\x93\x94."
    )
    user = component.construct(
        component.import_user_class("SKLEARN_SERVER"), {"model_uri": str(tmp_path)}
    )
    with (
        caplog.at_level(logging.ERROR, logger="unitserve.servers"),
        pytest.raises(ModuleNotFoundError),
    ):
        user.load()
    assert f"saved by scikit-learn 0.22.1; scikit-learn {sklearn.__version__}" in caplog.text


def test_a_model_from_another_sklearn_that_loads_is_served_with_a_warning_naming_both(
    iris_folder: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sklearn

    folder, model = iris_folder
    # The real model's file, as another scikit-learn would have saved it: each estimator
    # records the version that saved it (written here of the same length, so that the
    # pickle stays whole), and scikit-learn warns when it loads it.
    installed = sklearn.__version__
    other = "".join("0" if c.isdigit() else c for c in installed)
    data = (folder / "model.joblib").read_bytes()
    assert installed.encode() in data and other != installed
    (tmp_path / "model.joblib").write_bytes(data.replace(installed.encode(), other.encode()))
    user = component.construct(
        component.import_user_class("SKLEARN_SERVER"), {"model_uri": str(tmp_path)}
    )
    with caplog.at_level(logging.WARNING, logger="unitserve.servers"):
        user.load()
    assert f"saved by scikit-learn {other} and is loaded by scikit-learn {installed}" in caplog.text
    rows = np.array([[5.1, 3.5, 1.4, 0.2]])
    np.testing.assert_allclose(user.predict(rows), model.predict_proba(rows))


def test_the_saved_version_is_read_from_a_real_pickle(iris_folder: Any) -> None:
    import sklearn

    folder, _ = iris_folder
    data = (folder / "model.joblib").read_bytes()
    assert sklearn_server.saved_sklearn_version_of(data) == sklearn.__version__


def test_requested_outputs_of_a_batch_are_its_requests() -> None:
    meta = {
        "batch": [{"outputs": ["predict_proba"]}, {"outputs": ["predict_proba"]}],
        "rows": [1, 1],
    }
    assert model_files.requested_outputs(meta) == ["predict_proba"]
    assert model_files.requested_outputs({"puid": "x", "tags": {}}) is None
    assert model_files.requested_outputs({"batch": [None], "rows": [1]}) is None


def test_sklearn_with_adaptive_batching_answers_each_request(iris_folder: Any) -> None:
    """Concurrent requests asking for different outputs are each answered with theirs
    (batching stacks only requests that ask for the same outputs)."""
    folder, model = iris_folder
    user = component.construct(
        component.import_user_class("SKLEARN_SERVER"), {"model_uri": str(folder)}
    )
    user.load()
    h = Harness(user, flags={"model_name": "m", "max_batch_size": 8, "max_batch_time": 50.0})
    asked = [None, ["predict_proba"], None, ["predict_proba"], ["predict"], None]

    async def all_at_once() -> list[Any]:
        posts = [h.client.post("/v2/models/m/infer", json=oip_request(ROWS, o)) for o in asked]
        return list(await asyncio.gather(*posts))

    answers = h.loop.run_until_complete(all_at_once())
    X = np.array(ROWS)
    for outputs, answer in zip(asked, answers, strict=True):
        assert answer.status_code == 200, answer.text
        (out,) = answer.json()["outputs"]
        assert out["name"] == (outputs or ["predict"])[0]
        assert out["parameters"] == {"content_type": "np"}  # each part tagged as the whole
        assert out["shape"] == [2, 1] if out["name"] == "predict" else [2, 3]
        expected = model.predict_proba(X) if out["name"] == "predict_proba" else model.predict(X)
        np.testing.assert_allclose(
            np.array(out["data"]).reshape(out["shape"]), expected.reshape(out["shape"])
        )
    assert any(rows > 2 for _, rows, _ in h.batches.sent), h.batches.sent
    np.testing.assert_allclose(seldon_rest(h, ROWS)["data"]["ndarray"], model.predict_proba(X))


# ----------------------------------------------------------------------------- XGBoost


@pytest.mark.parametrize("file_name", ["model.json", "model.ubj", "model.bst"])
def test_xgboost_every_file_format_on_both_protocols(tmp_path: Path, file_name: str) -> None:
    model = server_models.xgboost_classifier(tmp_path, file_name)
    h = serve("XGBOOST_SERVER", tmp_path)
    X = np.array(ROWS)
    raw = model.get_booster().predict(__import__("xgboost").DMatrix(X))
    body = seldon_rest(h, ROWS)
    np.testing.assert_allclose(body["data"]["ndarray"], raw, rtol=1e-6)
    np.testing.assert_allclose(seldon_grpc(h, ROWS)["data"]["ndarray"], raw, rtol=1e-6)
    (out,) = oip_rest(h, ROWS)
    assert out["name"] == "predict" and out["shape"] == [2, 1]
    assert out["data"] == model.predict(X).tolist()
    proba = oip_grpc(h, ROWS, ["predict_proba"])["predict_proba"]
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-6)


def test_xgboost_booster_answers_as_seldons_iris_example(tmp_path: Path) -> None:
    booster = server_models.xgboost_booster(tmp_path)
    h = serve("XGBOOST_SERVER", tmp_path)
    body = seldon_rest(h, ROW)
    assert body["data"]["names"] == []
    assert (
        body["data"]["ndarray"]
        == booster.predict(__import__("xgboost").DMatrix(np.array(ROW))).tolist()
    )
    r = h.post("/v2/models/m/infer", json=oip_request(ROW, ["predict_proba"]))
    assert r.status_code == 400 and "XGBRegressor models do not support" in r.text


def test_xgboost_predict_proba_method_and_wrong_features(tmp_path: Path) -> None:
    booster = server_models.xgboost_booster(tmp_path, "multi:softprob")
    h = serve("XGBOOST_SERVER", tmp_path, method="predict_proba")
    body = seldon_rest(h, ROWS)
    assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
    np.testing.assert_allclose(
        body["data"]["ndarray"],
        booster.predict(__import__("xgboost").DMatrix(np.array(ROWS))),
        rtol=1e-6,
    )
    r = h.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0, 2.0]]}})
    assert r.status_code == 400 and "Expected 4 features, got 2" in r.text


# ----------------------------------------------------------------------------- LightGBM


@pytest.mark.parametrize("file_name", ["model.txt", "model.bst"])
def test_lightgbm_on_both_protocols(tmp_path: Path, file_name: str) -> None:
    booster = server_models.lightgbm_classifier(tmp_path, file_name)
    h = serve("LIGHTGBM_SERVER", tmp_path)
    expected = booster.predict(np.array(ROWS))
    body = seldon_rest(h, ROWS)
    np.testing.assert_allclose(body["data"]["ndarray"], expected)
    np.testing.assert_allclose(seldon_grpc(h, ROWS)["data"]["ndarray"], expected)
    (out,) = oip_rest(h, ROWS)
    assert out["name"] == "predict" and out["datatype"] == "FP64" and out["shape"] == [2, 3]
    np.testing.assert_allclose(oip_grpc(h, ROWS)["predict"], expected)
    r = h.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0, 2.0]]}})
    assert r.status_code == 400 and "number of features" in r.text


# ----------------------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("mlflow") / "model"
    return folder, server_models.mlflow_classifier(folder)


def test_mlflow_ndarray_and_dataframe_on_the_seldon_protocol(mlflow_folder: Any) -> None:
    folder, model = mlflow_folder
    expected = model.predict(np.array(ROWS)).tolist()
    h = serve("MLFLOW_SERVER", folder, xtype="dataframe")
    body = seldon_rest(h, ROWS, server_models.COLUMNS)
    assert body["data"]["ndarray"] == expected and body["data"]["names"] == []
    assert seldon_grpc(h, ROWS, server_models.COLUMNS)["data"]["ndarray"] == expected
    # Without names, the columns the model's signature names (Seldon's server fails there).
    assert seldon_rest(h, ROWS)["data"]["ndarray"] == expected
    # Other column names: the model's signature refuses them, the client's error.
    r = h.post("/api/v1.0/predictions", json={"data": {"names": list("abcd"), "ndarray": ROWS}})
    assert r.status_code == 400 and "missing inputs" in r.text
    h = serve("MLFLOW_SERVER", folder)  # xtype ndarray
    assert seldon_rest(h, ROWS)["data"]["ndarray"] == expected


def test_mlflow_on_the_open_inference_protocol(mlflow_folder: Any) -> None:
    folder, model = mlflow_folder
    h = serve("MLFLOW_SERVER", folder)
    (out,) = oip_rest(h, ROWS)
    assert out["name"] == "output-1" and out["shape"] == [2, 1]
    assert out["data"] == model.predict(np.array(ROWS)).tolist()
    r = h.post("/v2/models/m/infer", json=oip_request([[1.0, 2.0]]))
    assert r.status_code == 400


def test_mlflow_oip_answers_name_their_content_type(mlflow_folder: Any, tmp_path: Path) -> None:
    """As MLServer's MLflow runtime: an array is ``output-1`` in an answer tagged
    ``np``; a DataFrame one output a column in an answer tagged ``pd``, a text column
    tagged ``str``."""
    folder, _ = mlflow_folder
    r = serve("MLFLOW_SERVER", folder).post("/v2/models/m/infer", json=oip_request(ROWS))
    answer = r.json()
    assert answer["parameters"] == {"content_type": "np"}
    assert answer["outputs"][0]["parameters"] == {"content_type": "np"}
    server_models.mlflow_table(tmp_path / "table")
    h = serve("MLFLOW_SERVER", tmp_path / "table")
    columns = [
        {"name": name, "datatype": "FP64", "shape": [2, 1], "data": [row[i] for row in ROWS]}
        for i, name in enumerate(server_models.COLUMNS)
    ]
    r = h.post("/v2/models/m/infer", json={"inputs": columns})
    assert r.status_code == 200, r.text
    answer = r.json()
    del answer["id"]
    assert answer == {
        "model_name": "m",
        "parameters": {"content_type": "pd"},
        "outputs": [
            {"name": "total", "datatype": "FP64", "shape": [2, 1],
             "data": [sum(row) for row in ROWS]},
            {"name": "size", "datatype": "BYTES", "shape": [2, 1],
             "parameters": {"content_type": "str"}, "data": ["short", "long"]},
        ],
    }  # fmt: skip
