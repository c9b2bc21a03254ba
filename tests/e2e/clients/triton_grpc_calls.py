"""Run by tests/e2e/test_v2_grpc.py with the tritonclient environment's Python (its
protobuf pin clashes with ours): calls a unitserve server serving the Identity
fixture over ``inference.GRPCInferenceService`` with NVIDIA's own client and prints
what it saw as one JSON object.

Usage: python triton_grpc_calls.py HOST:PORT MODEL_NAME

``InferenceServerClient`` always sends raw contents; typed contents go through the
client package's own generated stub (its own copy of the protocol's messages), so
both forms are checked against code this repository did not write.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as tg
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

target, model = sys.argv[1], sys.argv[2]
client = tg.InferenceServerClient(target)
stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
results: dict[str, Any] = {}

ARRAYS = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 7, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 7, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 7, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-32768, 0, 32767]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[1.5, -2.0, 65504.0]], dtype=np.float16),
    "FP32": np.array([[1.5, -2.25, 3e38]], dtype=np.float32),
    "FP64": np.array([[1.5, -2.25, 1e300]], dtype=np.float64),
    "BYTES": np.array([[b"one", b"", b"\xff\x00"]], dtype=np.object_),
}
TYPED_FIELDS = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def shown(arr: np.ndarray) -> Any:
    if arr.dtype == np.object_:
        return [bytes(x).decode("latin-1") for x in arr.reshape(-1).tolist()]
    return [str(x) for x in arr.reshape(-1).tolist()]  # as text: uint64 and NaN survive JSON


def record(name: str, fn: Any) -> None:
    try:
        results[name] = {"ok": fn()}
    except InferenceServerException as exc:
        results[name] = {"status": exc.status(), "message": exc.message()}
    except grpc.RpcError as exc:
        results[name] = {"status": str(exc.code()), "message": exc.details()}


def infer_raw(datatype: str) -> Any:
    arr = ARRAYS[datatype]
    inp = tg.InferInput("x", list(arr.shape), datatype)
    inp.set_data_from_numpy(arr)
    result = client.infer(model, [inp], request_id="raw-1")
    response = result.get_response()
    out = response.outputs[0]
    got = result.as_numpy(out.name)
    return {
        "id": response.id,
        "name": out.name,
        "datatype": out.datatype,
        "shape": list(out.shape),
        "raw": len(response.raw_output_contents),
        "values": shown(got),
        "sent": shown(arr),
    }


def infer_typed(datatype: str) -> Any:
    arr = ARRAYS[datatype]
    request = service_pb2.ModelInferRequest(model_name=model, id="typed-1")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=list(arr.shape))
    getattr(tensor.contents, TYPED_FIELDS[datatype]).extend(arr.reshape(-1).tolist())
    response = stub.ModelInfer(request)
    out = response.outputs[0]
    values = list(getattr(out.contents, TYPED_FIELDS[datatype]))
    got = np.array(values, dtype=arr.dtype)
    return {
        "name": out.name,
        "datatype": out.datatype,
        "shape": list(out.shape),
        "raw": len(response.raw_output_contents),
        "values": shown(got),
        "sent": shown(arr),
    }


def requested_output() -> Any:
    a = tg.InferInput("a", [2], "INT32")
    a.set_data_from_numpy(np.array([1, 2], dtype=np.int32))
    b = tg.InferInput("b", [1], "FP64")
    b.set_data_from_numpy(np.array([0.5]))
    result = client.infer(model, [a, b], outputs=[tg.InferRequestedOutput("b")])
    names = [o.name for o in result.get_response().outputs]
    return {"names": names, "b": result.as_numpy("b").tolist()}


def infer_one() -> Any:
    inp = tg.InferInput("x", [1], "FP32")
    inp.set_data_from_numpy(np.array([2.5], dtype=np.float32))
    return client.infer(model, [inp]).as_numpy("output-0").tolist()


def unknown_model() -> Any:
    inp = tg.InferInput("x", [1], "FP32")
    inp.set_data_from_numpy(np.array([2.5], dtype=np.float32))
    return client.infer("no-such-model", [inp]).as_numpy("output-0").tolist()


record("live", client.is_server_live)
record("ready", client.is_server_ready)
record("model_ready", lambda: client.is_model_ready(model))
record("server_metadata", lambda: client.get_server_metadata(as_json=True))
record("model_metadata", lambda: client.get_model_metadata(model, as_json=True))
for datatype in ARRAYS:
    record(f"raw {datatype}", lambda d=datatype: infer_raw(d))
    if datatype in TYPED_FIELDS:
        record(f"typed {datatype}", lambda d=datatype: infer_typed(d))
record("requested output", requested_output)
record("unknown model", unknown_model)
record("unknown model ready", lambda: client.is_model_ready("no-such-model"))
record("index", lambda: client.get_model_repository_index(as_json=True))
record("unload", lambda: client.unload_model(model))
record("ready after unload", lambda: client.is_model_ready(model))
record("index after unload", lambda: client.get_model_repository_index(as_json=True))
record("infer after unload", infer_one)
record("load", lambda: client.load_model(model))
record("ready after load", lambda: client.is_model_ready(model))
record("infer after load", infer_one)
client.close()
print(json.dumps(results))
