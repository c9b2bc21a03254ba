"""Run by tests/e2e/test_v2_clients.py with the kserve environment's Python: drives a
unitserve server with KServe's `InferenceRESTClient` (protocol v2) and prints one JSON
object of what it saw. Usage: kserve_rest.py URL MODEL."""

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

URL, MODEL = sys.argv[1], sys.argv[2]


async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    out = {
        "live": await client.is_server_live(URL),
        "ready": await client.is_server_ready(URL),
        "model_ready": await client.is_model_ready(URL, MODEL),
    }
    results = {}
    for datatype, arr in (
        ("FP32", np.array([[1.5, 2.5]], dtype=np.float32)),
        ("INT64", np.array([[1, -2]], dtype=np.int64)),
        ("BOOL", np.array([[True, False]])),
        ("BYTES", np.array([[b"ab", b"c"]], dtype=object)),
    ):
        for binary in (False, True):
            tensor = InferInput("x", list(arr.shape), datatype)
            tensor.set_data_from_numpy(arr, binary_data=binary)
            request = InferRequest(MODEL, infer_inputs=[tensor], request_id="k1")
            response = await client.infer(URL, request, model_name=MODEL)
            got = response.outputs[0].as_numpy()
            if got.dtype == object:
                got = np.array(
                    [x.encode() if isinstance(x, str) else x for x in got.ravel()], dtype=object
                ).reshape(got.shape)
            results[f"{datatype}/{'bin' if binary else 'json'}"] = {
                "same": got.shape == arr.shape and got.tolist() == arr.tolist(),
                "id": response.id,
                "name": response.outputs[0].name,
            }
    out["infer"] = results
    await client.close()
    print(json.dumps(out))


asyncio.run(main())
