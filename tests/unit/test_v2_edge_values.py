"""Values at the edges of the Open Inference Protocol's datatypes, REST and gRPC:

* non-finite floats: the server writes them in JSON as "NaN", "Infinity", "-Infinity",
  and reads those same strings back, so an answer can be sent again as a request
  (gRPC carries them as the floats themselves);
* a number its datatype cannot hold is a 400 (gRPC INVALID_ARGUMENT) saying the value,
  that it is out of range, the datatype and its range: an integer that would wrap
  around, an integer past 64 bits, a finite number that FP16 or FP32 would make
  infinite. gRPC's typed fields cannot hold such values for INT64 or the float types
  (and FP16 travels only as raw bytes), so there only the 32-bit fields shared by
  the narrow integer types can go out of range.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from unitserve.proto import inference_pb2 as pb

from .engine_harness import Harness, RpcError, fixture_model, serving

NAME = "V2Model"  # answers its input as it got it
INFER = f"/v2/models/{NAME}/infer"


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with serving(fixture_model(NAME)) as harness:
        yield harness


def infer(h: Harness, datatype: str, data: list[Any]) -> Any:
    # json, not orjson: some cases hold integers past 64 bits, which orjson refuses.
    tensor = {"name": "x", "shape": [len(data)], "datatype": datatype, "data": data}
    return h.post(INFER, content=json.dumps({"inputs": [tensor]}).encode())


def refused(h: Harness, datatype: str, data: list[Any], *words: str) -> str:
    r = infer(h, datatype, data)
    assert r.status_code == 400, (r.status_code, r.text)
    error = r.json()["error"]
    for word in words:
        assert word in error, error
    # The model keeps answering.
    assert infer(h, "FP32", [1.0]).status_code == 200
    return str(error)


# ----------------------------------------------------------------------------- NaN, ±Infinity


@pytest.mark.parametrize("datatype", ["FP16", "FP32", "FP64"])
def test_rest_reads_back_the_non_finite_values_it_writes(h: Harness, datatype: str) -> None:
    sent = ["NaN", "Infinity", "-Infinity", 1.5]
    r = infer(h, datatype, sent)
    assert r.status_code == 200, r.text
    answer = r.json()["outputs"][0]
    assert answer["datatype"] == datatype and answer["data"] == sent
    # ... and its answer, sent again, gives the same answer.
    again = infer(h, datatype, answer["data"])
    assert again.status_code == 200 and again.json()["outputs"][0]["data"] == sent


def test_rest_non_finite_names_in_nested_data(h: Harness) -> None:
    tensor = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, "NaN"], [2, 3]]}
    r = h.post(INFER, content=json.dumps({"inputs": [tensor]}).encode())
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1.0, "NaN", 2.0, 3.0]


def test_rest_bare_non_finite_tokens_still_read(h: Harness) -> None:
    content = b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [NaN, Infinity, -Infinity]}]}'  # noqa: E501
    r = h.post(INFER, content=content)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == ["NaN", "Infinity", "-Infinity"]


@pytest.mark.parametrize(
    ("datatype", "data", "words"),
    [
        # Only the three names this server writes; numbers as strings stay refused.
        ("FP32", ["nan", 1.0], ("needs numbers; got strings", '"NaN", "Infinity", "-Infinity"')),
        ("FP32", ["1.5", "NaN"], ("needs numbers; got strings",)),
        ("FP32", ["NaN", True], ("needs numbers",)),
        ("FP32", ["NaN", None], ("needs numbers",)),
        # Integers and booleans have no NaN.
        ("INT32", ["NaN", 1], ("needs integers; got strings",)),
        ("BOOL", ["NaN", True], ("needs true or false",)),
    ],
)
def test_rest_other_strings_are_still_refused(
    h: Harness, datatype: str, data: list[Any], words: tuple[str, ...]
) -> None:
    refused(h, datatype, data, "input 'x'", f"datatype {datatype}", *words)


def grpc_request(datatype: str, **contents: Any) -> Any:
    request = pb.ModelInferRequest(model_name=NAME)
    tensor = request.inputs.add(name="x", datatype=datatype, shape=[len(*contents.values())])
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return request


@pytest.mark.parametrize(
    ("datatype", "field"), [("FP32", "fp32_contents"), ("FP64", "fp64_contents")]
)
def test_grpc_carries_non_finite_values(h: Harness, datatype: str, field: str) -> None:
    sent = [math.nan, math.inf, -math.inf, 1.5]
    answer = h.call_v2("ModelInfer", grpc_request(datatype, **{field: sent}))
    got = list(getattr(answer.outputs[0].contents, field))
    assert math.isnan(got[0]) and got[1:] == sent[1:]


def test_grpc_carries_non_finite_fp16_raw(h: Harness) -> None:
    arr = np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float16)
    request = pb.ModelInferRequest(model_name=NAME)
    request.inputs.add(name="x", datatype="FP16", shape=[4])
    request.raw_input_contents.append(arr.astype("<f2").tobytes())
    answer = h.call_v2("ModelInfer", request)
    got = np.frombuffer(answer.raw_output_contents[0], dtype="<f2")
    assert np.isnan(got[0]) and got[1:].tolist() == arr[1:].tolist()


# ----------------------------------------------------------------------------- out of range


@pytest.mark.parametrize(
    ("datatype", "data", "value", "bounds"),
    [
        ("UINT8", [1, 300], "300", "(0 to 255)"),
        ("INT8", [-129, 1], "-129", "(-128 to 127)"),
        ("UINT64", [-1, 1], "-1", "(0 to 18446744073709551615)"),
        # FP16's largest finite value is 65504: 70000 would become infinity.
        ("FP16", [1.0, 70000], "70000.0", "(-65504.0 to 65504.0)"),
        ("FP16", [1.0, -1e5], "-100000.0", "(-65504.0 to 65504.0)"),
        ("FP32", [1.0, 1e39], "1e+39", "3.4028234663852886e+38)"),
        ("FP32", [-1e39], "-1e+39", "(-3.4028234663852886e+38 to"),
    ],
)
def test_rest_value_past_the_datatype(
    h: Harness, datatype: str, data: list[Any], value: str, bounds: str
) -> None:
    error = refused(h, datatype, data)
    assert error.startswith(f"input 'x' value {value} is out of range for datatype {datatype} (")
    assert bounds in error, error


INT64_RANGE = "(-9223372036854775808 to 9223372036854775807)"


@pytest.mark.parametrize(
    ("data", "value"),
    [
        ([2**63], "9223372036854775808"),
        # With a smaller value beside it numpy reads the list as doubles; the sentence
        # still names the value that does not fit.
        ([1, 2**63], "9223372036854775808"),
        ([-1, 2**63], "9223372036854775808"),
        # Past 64 bits the JSON reader has only a double for it.
        ([2**64], "1.8446744073709552e+19"),
        ([1, -(2**63) - 1], "-9.223372036854776e+18"),
        ([10**30], "1e+30"),
    ],
)
def test_rest_int64_out_of_range(h: Harness, data: list[Any], value: str) -> None:
    error = refused(h, "INT64", data)
    assert error == f"input 'x' value {value} is out of range for datatype INT64 {INT64_RANGE}"


def test_rest_int64_bounds_are_accepted(h: Harness) -> None:
    data = [-(2**63), 2**63 - 1]
    r = infer(h, "INT64", data)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == data


def test_rest_fp16_largest_is_accepted(h: Harness) -> None:
    # 65519 still rounds to FP16's largest finite value rather than to infinity.
    r = infer(h, "FP16", [65504, -65504, 65519, "Infinity"])
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [65504.0, -65504.0, 65504.0, "Infinity"]


@pytest.mark.parametrize(
    ("datatype", "field", "values", "value", "bounds"),
    [
        ("UINT8", "uint_contents", [1, 300], "300", "(0 to 255)"),
        ("INT16", "int_contents", [-40000, 1], "-40000", "(-32768 to 32767)"),
    ],
)
def test_grpc_value_past_the_datatype_says_the_same(
    h: Harness, datatype: str, field: str, values: list[int], value: str, bounds: str
) -> None:
    with pytest.raises(RpcError) as err:
        h.call_v2("ModelInfer", grpc_request(datatype, **{field: values}))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details == (
        f"input 'x' value {value} is out of range for datatype {datatype} {bounds}"
    )
    # The REST sentence for the same values is the same.
    assert refused(h, datatype, values) == err.value.details
