"""The request content types of the prepackaged servers on the Open Inference Protocol
(``parameters.content_type`` of the request: ``pd``, ``np``, ``str``, MLflow's ``dict``),
first the decoding on its own, then through the real codecs, engine and transports
(in-process) against the libraries' own predictions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import server_models
from tests.unit.engine_harness import Harness
from unitserve import component
from unitserve.errors import SeldonMicroserviceException, StartupError
from unitserve.proto import inference_pb2 as pb
from unitserve.protocol.v2 import json_codec, mapping
from unitserve.repository.model_settings import read_model_settings
from unitserve.runtime import repository_source
from unitserve.servers import request_content

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [6.0, 2.2, 4.0, 1.0]]


def table_inputs(rows: Any, gardens: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows as one input a column (FP64), and the text column ``garden`` as BYTES
    with the input content type ``str``, as MLServer's pandas codec writes a table."""
    arr = np.asarray(rows, dtype=np.float64)
    inputs: list[dict[str, Any]] = [
        {"name": name, "datatype": "FP64", "shape": [len(arr), 1], "data": arr[:, i].tolist()}
        for i, name in enumerate(server_models.COLUMNS)
    ]
    if gardens is None:
        gardens = [server_models.GARDENS[i % 3] for i in range(len(arr))]
    inputs.append(
        {
            "name": "garden",
            "datatype": "BYTES",
            "shape": [len(gardens), 1],
            "data": gardens,
            "parameters": {"content_type": "str"},
        }
    )
    return inputs


def serve(implementation: str, model_uri: Path, **flags: Any) -> Harness:
    user_class = component.import_user_class(implementation)
    user = component.construct(user_class, {"model_uri": str(model_uri)})
    user.load()
    return Harness(user, flags={"model_name": "m", **flags})


def infer(h: Harness, body: dict[str, Any]) -> Any:
    return h.post("/v2/models/m/infer", json=body)


# ----------------------------------------------------------------------------- decoding


def test_a_table_has_one_column_an_input_named_after_it() -> None:
    features = {
        "age": np.array([[30], [41]], dtype=np.int64),
        "name": np.array([b"ann", "bob"], dtype=object),
        "score": np.array([0.5, 1.5], dtype=np.float32),
    }
    table = request_content.decode(features, "pd")
    assert list(table.columns) == ["age", "name", "score"]
    assert table["age"].tolist() == [30, 41] and table["age"].dtype == np.int64
    assert table["name"].tolist() == ["ann", "bob"]  # BYTES become text
    assert table["score"].dtype == np.float32


def test_bytes_that_are_not_text_stay_bytes_in_a_table() -> None:
    table = request_content.decode({"raw": np.array([b"\xff", b"ok"], dtype=object)}, "pd")
    assert table["raw"].tolist() == [b"\xff", "ok"]


def test_columns_of_unequal_length_are_a_400_naming_each() -> None:
    features = {"a": np.zeros((3, 1)), "b": np.zeros((2, 1))}
    with pytest.raises(SeldonMicroserviceException) as caught:
        request_content.decode(features, "pd")
    assert caught.value.status_code == 400
    assert "'a' has 3, 'b' has 2 values" in caught.value.message


def test_an_unknown_content_type_is_a_400_naming_the_known_ones() -> None:
    with pytest.raises(SeldonMicroserviceException) as caught:
        request_content.decode(np.zeros((1, 4)), "parquet")
    assert caught.value.status_code == 400
    assert "'parquet' is not one this server decodes: send one of 'pd', 'np', 'str'" in (
        caught.value.message
    )
    with pytest.raises(SeldonMicroserviceException):
        request_content.decode({"a": np.zeros(1)}, "dict")  # MLflow's alone


def test_several_inputs_as_an_array_are_a_400_pointing_at_pd() -> None:
    features = {"a": np.zeros((2, 1)), "b": np.zeros((2, 1))}
    for content_type, said in [
        (None, "without parameters.content_type this server takes one input"),
        ("np", "parameters.content_type 'np' decodes one input"),
    ]:
        with pytest.raises(SeldonMicroserviceException) as caught:
            request_content.decode(features, content_type)
        assert caught.value.status_code == 400
        assert caught.value.message.startswith(said)
        assert "the request has 2 ('a', 'b')" in caught.value.message
        assert "'pd'" in caught.value.message


def test_one_input_is_its_array_and_str_makes_text() -> None:
    arr = np.ones((2, 4))
    assert request_content.decode(arr, None) is arr
    assert request_content.decode({"x": arr}, "np") is arr
    docs = np.array([[b"good day"], ["bad day"]], dtype=object)
    assert request_content.decode(docs, "str") == ["good day", "bad day"]
    assert request_content.decode({"x": arr}, None, default=None) == {"x": arr}


def test_the_content_type_is_the_requests_or_its_batchs_first() -> None:
    assert request_content.request_content_type({"tags": {"content_type": "pd"}}) == "pd"
    assert request_content.request_content_type({"tags": {}, "outputs": []}) is None
    assert request_content.request_content_type(None) is None
    batch = {"batch": [{"tags": {"content_type": "np"}}, {"tags": {"content_type": "np"}}]}
    assert request_content.request_content_type({**batch, "rows": [1, 1]}) == "np"


def test_a_pd_request_of_one_input_maps_to_a_dict_by_name() -> None:
    """A column is known by its input's name: a one-input ``pd`` request keeps it."""
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": [{"name": "age", "datatype": "INT64", "shape": [2], "data": [1, 2]}],
    }
    message = mapping.to_message(json_codec.parse_request(body))
    assert list(message.features) == ["age"]
    assert message.meta is not None and message.meta["tags"] == {"content_type": "pd"}
    del body["parameters"]
    assert isinstance(mapping.to_message(json_codec.parse_request(body)).features, np.ndarray)


# ----------------------------------------------------------------------------- served


@pytest.fixture(scope="module")
def table_pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    folder = tmp_path_factory.mktemp("table")
    return folder, server_models.sklearn_table_pipeline(folder)


def test_sklearn_pipeline_on_named_columns_answers_a_pd_request(table_pipeline: Any) -> None:
    folder, model = table_pipeline
    h = serve("SKLEARN_SERVER", folder)
    frame = server_models.table_frame(np.array(ROWS))
    body = {
        "parameters": {"content_type": "pd"},
        "inputs": table_inputs(ROWS),
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    r = infer(h, body)
    assert r.status_code == 200, r.text
    predict, proba = r.json()["outputs"]
    assert predict["name"] == "predict" and predict["shape"] == [3, 1]
    assert predict["data"] == model.predict(frame).tolist()
    np.testing.assert_allclose(
        np.reshape(proba["data"], proba["shape"]), model.predict_proba(frame), rtol=1e-12
    )
    # gRPC: the text column as bytes, without an input content type, becomes text too
    request = pb.ModelInferRequest(model_name="m")
    request.parameters["content_type"].string_param = "pd"
    for given in table_inputs(ROWS)[:4]:
        tensor = request.inputs.add(name=given["name"], datatype="FP64", shape=given["shape"])
        tensor.contents.fp64_contents.extend(given["data"])
    garden = request.inputs.add(name="garden", datatype="BYTES", shape=[3, 1])
    garden.contents.bytes_contents.extend(g.encode() for g in frame["garden"])
    answer = h.call_v2("ModelInfer", request)
    assert [o.name for o in answer.outputs] == ["predict"]
    # typed contents, as the request's were
    assert list(answer.outputs[0].contents.int64_contents) == model.predict(frame).tolist()


def test_a_pd_request_the_pipeline_cannot_use_is_a_400_with_sklearns_sentence(
    table_pipeline: Any,
) -> None:
    folder, _ = table_pipeline
    h = serve("SKLEARN_SERVER", folder)
    inputs = [i for i in table_inputs(ROWS) if i["name"] != "garden"]
    r = infer(h, {"parameters": {"content_type": "pd"}, "inputs": inputs})
    assert r.status_code == 400
    assert "garden" in r.json()["error"]  # the column it misses
    unequal = table_inputs(ROWS, gardens=["north", "south"])
    r = infer(h, {"parameters": {"content_type": "pd"}, "inputs": unequal})
    assert r.status_code == 400
    assert "'sepal_length' has 3" in r.json()["error"] and "'garden' has 2" in r.json()["error"]
    r = infer(h, {"parameters": {"content_type": "arrow"}, "inputs": inputs})
    assert r.status_code == 400 and "'arrow' is not one" in r.json()["error"]
    r = infer(h, {"inputs": inputs})
    assert r.status_code == 400 and "the request has 4" in r.json()["error"]


def test_pd_requests_are_each_answered_with_batching_on(table_pipeline: Any) -> None:
    folder, model = table_pipeline
    h = serve("SKLEARN_SERVER", folder, max_batch_size=8, max_batch_time=50.0)
    body = {"parameters": {"content_type": "pd"}, "inputs": table_inputs(ROWS)}

    async def all_at_once() -> list[Any]:
        posts = [h.client.post("/v2/models/m/infer", json=body) for _ in range(4)]
        return list(await asyncio.gather(*posts))

    expected = model.predict(server_models.table_frame(np.array(ROWS))).tolist()
    for answer in h.loop.run_until_complete(all_at_once()):
        assert answer.status_code == 200, answer.text
        assert answer.json()["outputs"][0]["data"] == expected


def test_xgboost_and_lightgbm_take_a_pd_request_of_their_columns(tmp_path: Path) -> None:
    X = np.array(ROWS)
    inputs = table_inputs(ROWS)[:4]
    xgb_model = server_models.xgboost_classifier(tmp_path / "xgb")
    h = serve("XGBOOST_SERVER", tmp_path / "xgb")
    r = infer(h, {"parameters": {"content_type": "pd"}, "inputs": inputs})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == xgb_model.predict(X).tolist()
    booster = server_models.lightgbm_classifier(tmp_path / "lgb")
    h = serve("LIGHTGBM_SERVER", tmp_path / "lgb")
    r = infer(h, {"parameters": {"content_type": "pd"}, "inputs": inputs})
    assert r.status_code == 200, r.text
    (out,) = r.json()["outputs"]
    np.testing.assert_allclose(np.reshape(out["data"], out["shape"]), booster.predict(X))


def test_mlflow_takes_pd_np_and_dict_requests(tmp_path: Path) -> None:
    model = server_models.mlflow_classifier(tmp_path / "model")
    h = serve("MLFLOW_SERVER", tmp_path / "model")
    X = np.array(ROWS)
    expected = model.predict(X).tolist()
    inputs = table_inputs(ROWS)[:4]
    r = infer(h, {"parameters": {"content_type": "pd"}, "inputs": inputs})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == expected
    one = {"name": "x", "datatype": "FP64", "shape": [3, 4], "data": X.ravel().tolist()}
    r = infer(h, {"parameters": {"content_type": "np"}, "inputs": [one]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == expected
    flat = [{**i, "shape": [3]} for i in inputs]  # a dict of arrays: one value a row
    r = infer(h, {"parameters": {"content_type": "dict"}, "inputs": flat})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == expected
    r = infer(h, {"parameters": {"content_type": "np"}, "inputs": inputs})
    assert r.status_code == 400 and "decodes one input" in r.json()["error"]


def test_requests_of_different_content_types_are_not_stacked_together(tmp_path: Path) -> None:
    """With adaptive batching, arrays of one shape sent with different content types
    are each read as their own request says: an unknown one is still a 400, alone."""
    model = server_models.sklearn_classifier(tmp_path)
    h = serve("SKLEARN_SERVER", tmp_path, max_batch_size=8, max_batch_time=50.0)
    one = {"name": "x", "datatype": "FP64", "shape": [3, 4], "data": np.ravel(ROWS).tolist()}
    asked = ["np", "arrow", None, "arrow", "np", None]

    async def all_at_once() -> list[Any]:
        posts = [
            h.client.post(
                "/v2/models/m/infer",
                json={"inputs": [one], **({"parameters": {"content_type": c}} if c else {})},
            )
            for c in asked
        ]
        return list(await asyncio.gather(*posts))

    expected = model.predict(np.array(ROWS)).tolist()
    for content_type, answer in zip(asked, h.loop.run_until_complete(all_at_once()), strict=True):
        if content_type == "arrow":
            assert answer.status_code == 400 and "'arrow' is not one" in answer.json()["error"]
        else:
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["data"] == expected
    assert any(rows > 3 for _, rows, _ in h.batches.sent), h.batches.sent


def test_model_settings_content_type_reads_requests_that_name_none(table_pipeline: Any) -> None:
    """In a repository (``unitserve start``), MLServer's ``parameters.content_type`` of
    the model settings is how a request that names none is read: ``pd`` here."""
    folder, model = table_pipeline
    settings = {
        "name": "table",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(folder / "model.joblib"), "content_type": "pd"},
    }
    (folder / "model-settings.json").write_text(json.dumps(settings))
    user = repository_source.build_user(read_model_settings(folder / "model-settings.json"))
    assert user.content_type == "pd"
    user.load()
    h = Harness(user, flags={"model_name": "m"})
    r = infer(h, {"inputs": table_inputs(ROWS)})
    assert r.status_code == 200, r.text
    expected = model.predict(server_models.table_frame(np.array(ROWS))).tolist()
    assert r.json()["outputs"][0]["data"] == expected
    with pytest.raises(StartupError, match="content_type must be one of 'pd', 'np', 'str'"):
        component.construct(
            component.import_user_class("LIGHTGBM_SERVER"),
            {"model_uri": str(folder / "model.joblib"), "content_type": "csv"},
        )
