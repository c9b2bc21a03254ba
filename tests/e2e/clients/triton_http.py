"""Run by tests/e2e/test_v2_clients.py with the tritonclient environment's Python:
drives a unitserve server with NVIDIA's `tritonclient.http` and prints one JSON object
of what it saw. Usage: triton_http.py URL MODEL."""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

URL, MODEL = sys.argv[1], sys.argv[2]
client = httpclient.InferenceServerClient(URL.removeprefix("http://"))
out = {}

out["live"] = client.is_server_live()
out["ready"] = client.is_server_ready()
out["model_ready"] = client.is_model_ready(MODEL)
out["server_metadata"] = client.get_server_metadata()
out["model_metadata"] = client.get_model_metadata(MODEL)

TYPES = {
    "BOOL": np.array([[True, False, True]]),
    "UINT8": np.array([[0, 1, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 1, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 1, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 1, 2**64 - 1]], dtype=np.uint64),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-32768, 0, 32767]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 0, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 0, 2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[0.5, -2.0, 1024.0]], dtype=np.float16),
    "FP32": np.array([[0.5, -2.0, 3.25]], dtype=np.float32),
    "FP64": np.array([[0.1, -2.0, 1e300]], dtype=np.float64),
    "BYTES": np.array([[b"a", b"\xc3\xa9", b""]], dtype=object),
}


def round_trip(datatype, arr, binary_in, binary_out):
    tensor = httpclient.InferInput("x", list(arr.shape), datatype)
    tensor.set_data_from_numpy(arr, binary_data=binary_in)
    wanted = httpclient.InferRequestedOutput("output-0", binary_data=binary_out)
    result = client.infer(MODEL, [tensor], outputs=[wanted])
    got = result.as_numpy("output-0")
    if got.dtype == object:
        # tritonclient gives BYTES read from JSON as str, from binary data as bytes.
        got = np.array(
            [x.encode() if isinstance(x, str) else x for x in got.ravel()], dtype=object
        ).reshape(got.shape)
    same = got.shape == arr.shape and got.tolist() == arr.tolist()
    return {"same": bool(same), "dtype": str(got.dtype), "shape": list(got.shape)}


out["datatypes"] = {
    f"{name}/{'bin' if b_in else 'json'}-{'bin' if b_out else 'json'}": round_trip(
        name, arr, b_in, b_out
    )
    for name, arr in TYPES.items()
    for b_in, b_out in ((False, False), (True, True), (True, False), (False, True))
    # FP16 has no JSON form in tritonclient: only binary.
    if name != "FP16" or (b_in and b_out)
}

# Requested outputs: two inputs echoed as two outputs, one asked for.
a = httpclient.InferInput("a", [2], "INT32")
a.set_data_from_numpy(np.array([1, 2], dtype=np.int32))
b = httpclient.InferInput("b", [2], "FP64")
b.set_data_from_numpy(np.array([0.5, 1.5]))
result = client.infer(MODEL, [a, b], outputs=[httpclient.InferRequestedOutput("b")])
out["requested"] = {
    "names": [o["name"] for o in result.get_response()["outputs"]],
    "b": result.as_numpy("b").tolist(),
}
# Default outputs (none requested): tritonclient asks for binary data by default.
result = client.infer(MODEL, [a, b], request_id="abc")
out["all_outputs"] = {
    "names": [o["name"] for o in result.get_response()["outputs"]],
    "id": result.get_response()["id"],
}

# Errors: another model, a requested output the model lacks.
errors = {}
try:
    client.infer("nope", [a])
except InferenceServerException as exc:
    errors["unknown_model"] = [exc.status(), exc.message()]
try:
    client.infer(MODEL, [a], outputs=[httpclient.InferRequestedOutput("zzz")])
except InferenceServerException as exc:
    errors["unknown_output"] = [exc.status(), exc.message()]
out["errors"] = errors

# The repository extension.
out["index"] = client.get_model_repository_index()
client.unload_model(MODEL)
out["after_unload"] = {
    "model_ready": client.is_model_ready(MODEL),
    "index": client.get_model_repository_index(),
}
try:
    client.infer(MODEL, [a])
except InferenceServerException as exc:
    out["after_unload"]["infer"] = [exc.status(), exc.message()]
client.load_model(MODEL)
out["after_load"] = {
    "model_ready": client.is_model_ready(MODEL),
    "infer": client.infer(MODEL, [a]).as_numpy("output-0").tolist(),
}
client.close()
print(json.dumps(out))
