"""MLFLOW_SERVER's model metadata on the Open Inference Protocol: the model's signature
as tensors with their content types, as MLServer's mlflow runtime answers (the whole
answer is compared with MLServer's in tests/e2e/test_servers_mlserver.py); and how a
user's metadata, and the served class's own, make that answer."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format

from tests import server_models
from tests.unit.engine_harness import Harness
from unitserve import component, metadata
from unitserve.client._oip_wire import model_metadata_proto
from unitserve.protocol.v2.model_metadata import model_metadata
from unitserve.servers import mlflow_signature

COLUMN_INPUTS = [
    {
        "name": name,
        "datatype": "FP64",
        "shape": [-1, 1],
        "parameters": {"content_type": "np"},
    }
    for name in server_models.COLUMNS
]


def serve(folder: Path, env: dict[str, str] | None = None) -> Harness:
    user_class = component.import_user_class("MLFLOW_SERVER")
    user = component.construct(user_class, {"model_uri": str(folder)})
    user.load()
    return Harness(user, env, flags={"model_name": "m"})


@pytest.fixture(scope="module")
def by_column(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mlflow") / "model"
    server_models.mlflow_classifier(folder)
    return folder


def test_a_column_signature_is_one_input_a_column(by_column: Path) -> None:
    h = serve(by_column)
    r = h.get("/v2/models/m")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "name": "m",
        "platform": "",
        "inputs": COLUMN_INPUTS,
        "outputs": [
            {
                "name": "output-0",
                "datatype": "INT64",
                "shape": [-1],
                "parameters": {"content_type": "np"},
            }
        ],
        "parameters": {"content_type": "pd"},
    }
    # The same over gRPC, the parameters as InferParameters.
    answer = h.call_v2("ModelMetadata", {"name": "m"})
    assert answer.inputs[0].parameters["content_type"].string_param == "np"
    assert answer.parameters["content_type"].string_param == "pd"
    assert model_metadata_proto(answer) == r.json()


def test_the_seldon_metadata_stays_as_it_was(by_column: Path) -> None:
    r = serve(by_column).get("/metadata")
    assert r.status_code == 200
    assert r.json()["inputs"] == [] and "parameters" not in r.json()


def test_a_tensor_signature_is_its_tensors(tmp_path: Path) -> None:
    server_models.mlflow_classifier(tmp_path / "m", columns=False)
    body = serve(tmp_path / "m").get("/v2/models/m").json()
    assert body["inputs"] == [
        {
            "name": "input-0",
            "datatype": "FP64",
            "shape": [-1, 4],
            "parameters": {"content_type": "np"},
        }
    ]
    assert body["parameters"] == {"content_type": "np"}


def test_metadata_yaml_wins_where_it_says_something(by_column: Path) -> None:
    """A user's OIP-shaped inputs replace the signature's; the outputs and the model's
    parameters it does not give still come from the signature."""
    given = "inputs: [{name: features, datatype: FP32, shape: [-1, 4]}]"
    body = serve(by_column, {"MODEL_METADATA": given}).get("/v2/models/m").json()
    assert body["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert body["outputs"][0]["name"] == "output-0"
    assert body["parameters"] == {"content_type": "pd"}
    given = "parameters: {content_type: np}"
    body = serve(by_column, {"MODEL_METADATA": given}).get("/v2/models/m").json()
    assert body["parameters"] == {"content_type": "np"} and body["inputs"] == COLUMN_INPUTS


def test_a_users_tensor_parameters_are_served_and_checked() -> None:
    tensor = {
        "name": "x",
        "datatype": "BYTES",
        "shape": [-1],
        "parameters": {"content_type": "str"},
    }
    built = metadata.build({"inputs": [tensor]}, None, None)
    assert built is not None
    assert model_metadata(built, "m", None)["inputs"] == [tensor]
    wrong = {**tensor, "parameters": {"content_type": ["str"]}}  # not a scalar
    assert metadata.build({"inputs": [wrong]}, None, None) is None
    assert metadata.build({"parameters": {"content_type": {"a": 1}}}, None, None) is None


def test_an_invalid_class_description_is_ignored_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Described:
        oip_model_metadata = {"inputs": [{"name": "x", "datatype": "FLOAT"}]}

    with caplog.at_level(logging.ERROR, "unitserve"):
        assert metadata.supplied_oip(Described()) == {}
    assert "oip_model_metadata of Described is invalid" in caplog.text
    assert metadata.supplied_oip(object()) == {}


def test_column_types_and_unnamed_tensors() -> None:
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema, TensorSpec

    columns = Schema(
        [
            ColSpec(DataType.string, "text"),
            ColSpec(DataType.binary, "image"),
            ColSpec(DataType.datetime, "when"),
            ColSpec(DataType.integer, "count"),
            ColSpec(DataType.boolean, "flag"),
            ColSpec(Array(DataType.double), "values"),
        ]
    )
    named = Schema([TensorSpec(np.dtype("float32"), (-1, 2), "a")])
    found = mlflow_signature.oip_metadata(ModelSignature(columns, named))
    assert found is not None
    assert [(t["datatype"], t["parameters"]["content_type"]) for t in found["inputs"]] == [
        ("BYTES", "str"),
        ("BYTES", "base64"),
        ("BYTES", "datetime"),
        ("INT32", "np"),
        ("BOOL", "np"),
        ("BYTES", "pd_json"),
    ]
    assert found["outputs"] == [
        {"name": "a", "datatype": "FP32", "shape": [-1, 2], "parameters": {"content_type": "np"}}
    ]
    assert mlflow_signature.model_content_type(named) == "dict"
    unnamed = Schema([TensorSpec(np.dtype("U"), (-1,))])
    found = mlflow_signature.oip_metadata(ModelSignature(unnamed))
    assert found is not None
    assert found["inputs"][0]["name"] == "input-0" and found["inputs"][0]["datatype"] == "BYTES"
    assert found["outputs"] == [] and found["parameters"] == {"content_type": "np"}
    assert mlflow_signature.oip_metadata(None) is None


def test_protobuf_metadata_parameters_read_back_as_values() -> None:
    from unitserve.proto import inference_pb2 as pb

    answer = pb.ModelMetadataResponse(name="m", platform="")
    answer.parameters["content_type"].string_param = "pd"
    tensor = answer.inputs.add(name="x", datatype="FP64", shape=[-1, 1])
    tensor.parameters["content_type"].string_param = "np"
    assert model_metadata_proto(answer) == {
        "name": "m",
        "platform": "",
        "parameters": {"content_type": "pd"},
        "inputs": [
            {
                "name": "x",
                "datatype": "FP64",
                "shape": [-1, 1],
                "parameters": {"content_type": "np"},
            }
        ],
        "outputs": [],
    }
    assert json_format.MessageToDict(answer)["inputs"][0]["parameters"]  # carried on the wire
