"""Run by tests/e2e/test_examples.py with the tritonclient environment's Python: calls
the examples/v2_numeric or examples/v2_text model with NVIDIA's `tritonclient`, over
HTTP (JSON and binary data) and gRPC, and prints the answers as one JSON object.

Usage: triton_examples.py HOST:HTTP_PORT HOST:GRPC_PORT numeric|text
"""

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

http_target, grpc_target, which = sys.argv[1], sys.argv[2], sys.argv[3]
http = httpclient.InferenceServerClient(http_target)
grpc = grpcclient.InferenceServerClient(grpc_target)

if which == "numeric":
    MODEL, INPUT, DATATYPE = "HousePrices", "features", "FP32"
    data = np.array([[80, 3, 20], [120, 4, 5]], dtype=np.float32)
    OUTPUTS = ["output-0"]
else:
    MODEL, INPUT, DATATYPE = "TextStats", "text", "BYTES"
    data = np.array(["Hello  World", "Über Straße", ""], dtype=object)
    OUTPUTS = ["normalized", "word_count"]


def plain(arr):
    """An output as JSON: BYTES elements as text, whichever form the client gave."""
    items = [x.decode("utf-8") if isinstance(x, bytes) else x for x in arr.reshape(-1).tolist()]
    return {"dtype": str(arr.dtype), "shape": list(arr.shape), "data": items}


def over_http(binary):
    tensor = httpclient.InferInput(INPUT, list(data.shape), DATATYPE)
    tensor.set_data_from_numpy(data, binary_data=binary)
    wanted = [httpclient.InferRequestedOutput(n, binary_data=binary) for n in OUTPUTS]
    result = http.infer(MODEL, [tensor], outputs=wanted, request_id="ex-1")
    return {
        "id": result.get_response()["id"],
        "outputs": {n: plain(result.as_numpy(n)) for n in OUTPUTS},
    }


def over_grpc():
    tensor = grpcclient.InferInput(INPUT, list(data.shape), DATATYPE)
    tensor.set_data_from_numpy(data)
    result = grpc.infer(MODEL, [tensor], request_id="ex-2")
    return {
        "id": result.get_response().id,
        "outputs": {n: plain(result.as_numpy(n)) for n in OUTPUTS},
    }


out = {
    "ready": http.is_model_ready(MODEL) and grpc.is_model_ready(MODEL),
    "metadata": http.get_model_metadata(MODEL),
    "grpc_metadata_inputs": [
        {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
        for t in grpc.get_model_metadata(MODEL).inputs
    ],
    "http_json": over_http(False),
    "http_binary": over_http(True),
    "grpc": over_grpc(),
}
http.close()
grpc.close()
print(json.dumps(out))
