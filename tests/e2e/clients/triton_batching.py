"""Run by tests/e2e/test_batching.py with the tritonclient environment's Python: 32
concurrent inference requests with distinct inputs through NVIDIA's `tritonclient.http`
(binary and JSON tensors alternating); prints one JSON object saying, for each, whether
it got its own input doubled back. Usage: triton_batching.py URL MODEL."""

import json
import sys

import numpy as np
import tritonclient.http as httpclient

URL, MODEL = sys.argv[1], sys.argv[2]
N = 32
client = httpclient.InferenceServerClient(URL.removeprefix("http://"), concurrency=N)
pending = []
for i in range(N):
    x = np.array([[i, i + 0.5, -i]], dtype=np.float32)
    tensor = httpclient.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=bool(i % 2))
    wanted = [httpclient.InferRequestedOutput("output-0", binary_data=bool(i % 3))]
    pending.append((x, client.async_infer(MODEL, [tensor], request_id=f"r{i}", outputs=wanted)))
same = []
for x, request in pending:
    result = request.get_result()
    got = result.as_numpy("output-0")
    same.append(bool(got is not None and got.shape == x.shape and np.array_equal(got, 2 * x)))
print(json.dumps({"same": same}))
