"""Differential tests: MLServer 1.7 (the Open Inference Protocol's reference server for
Python models, in a virtual environment of its own) and unitserve are sent the same
inference requests, and must give the same answers once MLServer's known habits are
normalised away:

- its NumPy codec writes a 1-D output as ``[N, 1]`` and tags every output with
  ``parameters.content_type``;
- it answers a request its schema refuses with FastAPI's 422 ``{"detail": [...]}``
  (unitserve: 400 ``{"error": "..."}``): both must be a 4xx;
- JSON cannot carry NaN: MLServer refuses the bare ``NaN`` token, so NaN is compared
  through gRPC only.

MLServer serves `tests/e2e/mlserver_model/echo_runtime.py`, a runtime written here to
behave as the V2Model fixture does (one input comes back as ``output-0``, several under
their own names). The requests include MLServer's own test data (tests/data/mlserver).
Every difference that remains is a line of docs/compatibility.md and is asserted below
as a difference, so that a change on either side is noticed.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from unitserve.proto import inference_pb2 as pb

from ..conftest import wait_until
from .mlserver_process import MLServer

HERE = Path(__file__).parent
DATA = HERE.parent / "data" / "mlserver"
MODEL = "V2Model"


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    folder = tmp_path_factory.mktemp("mlserver")
    for name in ("echo_runtime.py", "model-settings.json"):
        shutil.copy(HERE / "mlserver_model" / name, folder / name)
    server = MLServer(folder, "mlserver", [MODEL])
    try:
        wait_until(server.ready, timeout=90, every=0.2)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def both(mlserver: MLServer, serve: Any) -> tuple[str, str]:
    return mlserver.url, serve(MODEL).url


# ----------------------------------------------------------------------------- REST


def post(url: str, body: Any, path: str = f"/v2/models/{MODEL}/infer") -> httpx.Response:
    # MLServer reads only JSON it is told is JSON; unitserve reads JSON whatever the type.
    return httpx.post(
        url + path, content=json.dumps(body), headers={"content-type": "application/json"}
    )


def flat(data: Any) -> list[Any]:
    if isinstance(data, list):
        return [x for item in data for x in flat(item)]
    return [data]


def normal(answer: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """An answer with MLServer's habits (and unitserve's static tags) taken out."""
    shapes = {i["name"]: i["shape"] for i in request["inputs"]}
    lone = next(iter(shapes.values())) if len(shapes) == 1 else None
    outputs = []
    for out in answer["outputs"]:
        shape = out["shape"]
        asked = shapes.get(out["name"], lone)
        if asked is not None and len(asked) == 1 and shape == [*asked, 1]:
            shape = asked  # MLServer's NumPy codec adds a dimension to 1-D outputs
        params = {k: v for k, v in (out.get("parameters") or {}).items() if k != "content_type"}
        outputs.append(
            {
                "name": out["name"],
                "datatype": out["datatype"],
                "shape": shape,
                "data": flat(out["data"]),
                **({"parameters": params} if params else {}),
            }
        )
    # The V2Model fixture's own tags() are merged into unitserve's answers.
    params = {k: v for k, v in (answer.get("parameters") or {}).items() if k != "model"}
    return {
        "model_name": answer["model_name"],
        "id": answer.get("id") if "id" in request else "generated",
        "parameters": params,
        "outputs": outputs,
    }


def same_answer(urls: tuple[str, str], request: dict[str, Any]) -> dict[str, Any]:
    theirs, ours = (post(url, request) for url in urls)
    assert theirs.status_code == ours.status_code == 200, (theirs.text, ours.text)
    expected = normal(theirs.json(), request)
    assert normal(ours.json(), request) == expected
    return expected


def both_refuse(urls: tuple[str, str], request: Any, path: str | None = None) -> tuple[Any, Any]:
    args = (path,) if path else ()
    theirs, ours = (post(url, request, *args) for url in urls)
    assert 400 <= ours.status_code < 500 and list(ours.json()) == ["error"], ours.text
    return theirs, ours


def test_mlservers_own_inference_request(both: tuple[str, str]) -> None:
    request = json.loads((DATA / "inference-request.json").read_text())
    answer = same_answer(both, request)
    assert answer["outputs"] == [
        {"name": "output-0", "datatype": "INT32", "shape": [1, 3], "data": [1, 2, 3]}
    ]
    assert same_answer(both, {**request, "id": "r-1"})["id"] == "r-1"


def test_mlservers_own_request_with_an_output_no_model_has(both: tuple[str, str]) -> None:
    request = json.loads((DATA / "inference-request-with-output.json").read_text())
    theirs, ours = both_refuse(both, request)
    # MLServer leaves requested outputs to the runtime, and its answer is whatever the
    # runtime returns (here: none of them); unitserve refuses a name the model lacks.
    assert theirs.status_code == 200 and theirs.json()["outputs"] == []
    assert ours.status_code == 400 and "requested-output-0" in ours.json()["error"]


def test_mlservers_own_invalid_datatype_request(both: tuple[str, str]) -> None:
    request = json.loads((DATA / "inference-request-invalid-datatype.json").read_text())
    theirs, ours = both_refuse(both, request)
    assert theirs.status_code == 422 and "detail" in theirs.json()
    assert ours.status_code == 400 and "INT322" in ours.json()["error"]


def test_mlservers_own_grpc_request_as_rest(both: tuple[str, str]) -> None:
    """MLServer's gRPC test request, its typed contents written as REST `data`."""
    grpc_request = json.loads((DATA / "grpc" / "model-infer-request.json").read_text())
    request = {
        "inputs": [
            {
                "name": i["name"],
                "datatype": i["datatype"],
                "shape": i["shape"],
                "data": i["contents"]["int_contents"],
            }
            for i in grpc_request["inputs"]
        ]
    }
    answer = same_answer(both, request)
    assert [(o["name"], o["data"]) for o in answer["outputs"]] == [
        ("input-0", [1, 2, 3]),
        ("input-1", [4]),
        ("input-2", [5, 6]),
    ]


CASES = {
    "BOOL": ([2, 2], [True, False, False, True]),
    "UINT8": ([3], [0, 7, 255]),
    "UINT16": ([3], [0, 7, 65535]),
    "UINT32": ([3], [0, 7, 4294967295]),
    "UINT64": ([3], [0, 7, 18446744073709551615]),
    "INT8": ([1, 3], [-128, 0, 127]),
    "INT16": ([3], [-32768, 0, 32767]),
    "INT32": ([3, 1], [-2147483648, 0, 2147483647]),
    "INT64": ([3], [-9223372036854775808, 0, 9223372036854775807]),
    "FP16": ([2], [0.5, -2.0]),
    "FP32": ([2, 2], [0.5, -2.0, 3.25, 1e10]),
    "FP64": ([3], [0.1, -2.0, 1e300]),
    "BYTES": ([2], ["a", "hello world"]),
}


@pytest.mark.parametrize("datatype", list(CASES))
def test_every_datatype(both: tuple[str, str], datatype: str) -> None:
    shape, data = CASES[datatype]
    request = {
        "id": "t",
        "inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}],
    }
    answer = same_answer(both, request)
    assert answer["outputs"][0]["data"] == data


def test_nested_data_parameters_and_several_inputs(both: tuple[str, str]) -> None:
    request = {
        "id": "n",
        "parameters": {"user": "ann", "n": 3},
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP64", "data": [[1.5, 2], [3, 4]]},
            {"name": "b", "shape": [1], "datatype": "BYTES", "data": ["x"]},
        ],
    }
    answer = same_answer(both, request)
    assert answer["parameters"] == {"user": "ann", "n": 3}
    assert [o["name"] for o in answer["outputs"]] == ["a", "b"]


def test_unknown_model(both: tuple[str, str]) -> None:
    request = json.loads((DATA / "inference-request.json").read_text())
    theirs, ours = both_refuse(both, request, "/v2/models/nope/infer")
    assert theirs.status_code == ours.status_code == 404
    assert "nope" in theirs.json()["error"] and "nope" in ours.json()["error"]


def test_values_that_do_not_fill_the_shape(both: tuple[str, str]) -> None:
    request = {"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2]}]}
    theirs, ours = both_refuse(both, request)
    # MLServer fails inside its NumPy codec: a 500 with no JSON body.
    assert theirs.status_code == 500
    assert ours.status_code == 400 and "shape [3] needs 3" in ours.json()["error"]


def test_missing_inputs(both: tuple[str, str]) -> None:
    theirs, ours = both_refuse(both, {"id": "x"})
    assert theirs.status_code == 422 and ours.status_code == 400


# ----------------------------------------------------------------------------- gRPC


def model_infer(target: str, request: pb.ModelInferRequest) -> pb.ModelInferResponse:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        return call(request, timeout=30)


def grpc_outputs(answer: pb.ModelInferResponse) -> list[tuple[str, str, list[int], list[Any]]]:
    found = []
    for out in answer.outputs:
        contents = [
            list(getattr(out.contents, field.name)) for field, _ in out.contents.ListFields()
        ]
        shape = list(out.shape)
        if len(shape) == 2 and shape[1] == 1:
            shape = shape[:1]  # MLServer's 1-D habit, as over REST
        found.append((out.name, out.datatype, shape, contents[0] if contents else []))
    return found


def grpc_request(*extra: tuple[str, str, list[int], str, list[Any]]) -> pb.ModelInferRequest:
    """MLServer's own gRPC test request (for our model), with `extra` inputs."""
    data = json.loads((DATA / "grpc" / "model-infer-request.json").read_text())
    request = pb.ModelInferRequest(model_name=MODEL)
    for i in data["inputs"]:
        tensor = request.inputs.add(name=i["name"], datatype=i["datatype"], shape=i["shape"])
        tensor.contents.int_contents.extend(i["contents"]["int_contents"])
    for name, datatype, shape, field, values in extra:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        getattr(tensor.contents, field).extend(values)
    return request


def test_grpc_mlservers_own_request(mlserver: MLServer, serve: Any) -> None:
    request = grpc_request(
        ("f", "FP32", [2], "fp32_contents", [1.5, -2.0]),
        ("s", "BYTES", [1], "bytes_contents", [b"hi"]),
        ("u", "UINT64", [1], "uint64_contents", [2**64 - 1]),
    )
    theirs = grpc_outputs(model_infer(mlserver.grpc_target, request))
    found = grpc_outputs(model_infer(serve(MODEL).grpc_target, request))
    assert found == theirs
    assert found[0] == ("input-0", "INT32", [3], [1, 2, 3])
    assert found[4] == ("s", "BYTES", [1], [b"hi"])


def test_grpc_nan(mlserver: MLServer, serve: Any) -> None:
    request = grpc_request(("x", "FP64", [3], "fp64_contents", [1.5, math.nan, -math.inf]))
    found = grpc_outputs(model_infer(serve(MODEL).grpc_target, request))
    assert [str(v) for v in found[3][3]] == ["1.5", "nan", "-inf"]
    # MLServer's NumPy codec turns NaN into None for JSON, and then fails to write it
    # into fp64_contents.
    with pytest.raises(grpc.RpcError) as failed:
        model_infer(mlserver.grpc_target, request)
    assert failed.value.code() == grpc.StatusCode.INTERNAL


def test_json_without_a_content_type(both: tuple[str, str]) -> None:
    body = (DATA / "inference-request.json").read_bytes()
    theirs, ours = (httpx.post(f"{url}/v2/models/{MODEL}/infer", content=body) for url in both)
    # tritonclient.http sends JSON with no Content-Type: both read it as JSON.
    request = json.loads(body)
    assert theirs.status_code == ours.status_code == 200
    assert normal(ours.json(), request) == normal(theirs.json(), request)


def test_nan_tokens_in_json(both: tuple[str, str]) -> None:
    body = b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [NaN, 1]}]}'
    theirs, ours = (
        httpx.post(
            f"{url}/v2/models/{MODEL}/infer",
            content=body,
            headers={"content-type": "application/json"},
        )
        for url in both
    )
    assert theirs.status_code == 422
    assert ours.status_code == 200 and ours.json()["outputs"][0]["data"] == ["NaN", 1.0]
