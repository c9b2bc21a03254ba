"""Run by tests/e2e/test_v2_grpc.py with the kserve environment's Python: calls a
unitserve server serving the Identity fixture with KServe's own
``InferenceGRPCClient`` (typed contents and raw contents) and prints what it saw
as one JSON object.

Usage: python kserve_grpc_infer.py HOST:PORT MODEL_NAME
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest

target, model = sys.argv[1], sys.argv[2]


async def main() -> dict[str, Any]:
    results: dict[str, Any] = {}
    # 2 is the fewest attempts grpcio's retry policy accepts (the client sets one up).
    client = InferenceGRPCClient(target, timeout=30, retries=2)
    try:
        results["live"] = await client.is_server_live()
        results["ready"] = await client.is_server_ready()
        results["model_ready"] = await client.is_model_ready(model)
        typed = InferInput("x", [1, 3], "FP32", data=[1.5, -2.0, 3.25])
        answer = await client.infer(InferRequest(model, [typed], request_id="k-typed"))
        out = answer.outputs[0]
        results["typed"] = {
            "id": answer.id,
            "name": out.name,
            "datatype": out.datatype,
            "shape": list(out.shape),
            "values": out.as_numpy().reshape(-1).tolist(),
        }
        raw = InferInput("x", [2, 2], "INT64")
        raw.set_data_from_numpy(np.array([[1, 2], [3, 4]], dtype=np.int64), binary_data=True)
        answer = await client.infer(InferRequest(model, [raw], request_id="k-raw"))
        out = answer.outputs[0]
        results["raw"] = {
            "datatype": out.datatype,
            "shape": list(out.shape),
            "values": out.as_numpy().tolist(),
        }
        try:
            await client.infer(InferRequest("no-such-model", [typed]))
            results["unknown"] = "answered"
        except grpc.RpcError as exc:
            results["unknown"] = {"code": exc.code().name, "details": exc.details()}
    finally:
        await client.close()
    return results


print(json.dumps(asyncio.run(main())))
