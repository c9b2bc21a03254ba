"""The Open Inference Protocol over gRPC against the real server, with clients no one
here wrote: NVIDIA's ``tritonclient.grpc`` and KServe's ``InferenceGRPCClient``, each
from a virtual environment of its own (their pins clash with ours), run as a
subprocess that prints what it saw as JSON. The contract in detail is tested
in-process (tests/unit/test_v2_grpc.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from unitserve.proto import inference_pb2 as pb

from ..client_venvs import client_python

CLIENTS = Path(__file__).parent / "clients"


def run_client(venv: str, script: str, *args: str) -> dict[str, Any]:
    python = client_python(venv)
    done = subprocess.run(
        [str(python), str(CLIENTS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_tritonclient_grpc(fresh_server):
    server = fresh_server("Identity")
    seen = run_client("tritonclient", "triton_grpc_calls.py", server.grpc_target, "Identity")
    assert seen["live"] == {"ok": True}
    assert seen["ready"] == {"ok": True}
    assert seen["model_ready"] == {"ok": True}
    meta = seen["server_metadata"]["ok"]
    assert meta["name"] == "unitserve"
    assert set(meta["extensions"]) == {"binary_tensor_data", "model_repository"}
    assert seen["model_metadata"]["ok"]["name"] == "Identity"
    for key, result in seen.items():
        if not key.startswith(("raw ", "typed ")):
            continue
        kind, datatype = key.split()
        assert "ok" in result, (key, result)
        out = result["ok"]
        assert (out["name"], out["datatype"], out["shape"]) == ("output-0", datatype, [1, 3]), key
        assert out["values"] == out["sent"], key
        # raw in, raw out (tritonclient reads numbers only from there); typed in, typed out
        assert out["raw"] == (1 if kind == "raw" else 0), key
    assert {k.split()[1] for k in seen if k.startswith("raw ")} >= {"FP16", "BYTES", "UINT64"}
    assert seen["raw FP32"]["ok"]["id"] == "raw-1"
    assert seen["requested output"] == {"ok": {"names": ["b"], "b": [0.5]}}
    unknown = seen["unknown model"]
    assert unknown["status"] == "StatusCode.NOT_FOUND"
    assert "unknown model 'no-such-model'" in unknown["message"]
    assert seen["unknown model ready"]["status"] == "StatusCode.NOT_FOUND"
    (entry,) = seen["index"]["ok"]["models"]
    assert (entry["name"], entry["state"]) == ("Identity", "READY")
    assert "ok" in seen["unload"]
    assert seen["ready after unload"] == {"ok": False}
    (entry,) = seen["index after unload"]["ok"]["models"]
    assert entry["state"] == "UNAVAILABLE"
    assert seen["infer after unload"]["status"] == "StatusCode.UNAVAILABLE"
    assert "unloaded" in seen["infer after unload"]["message"]
    assert "ok" in seen["load"]
    assert seen["ready after load"] == {"ok": True}
    assert seen["infer after load"] == {"ok": [2.5]}


def test_kserve_grpc_client(serve):
    server = serve("Identity")
    seen = run_client("kserve", "kserve_grpc_infer.py", server.grpc_target, "Identity")
    assert (seen["live"], seen["ready"], seen["model_ready"]) == (True, True, True)
    assert seen["typed"] == {
        "id": "k-typed",
        "name": "output-0",
        "datatype": "FP32",
        "shape": [1, 3],
        "values": [1.5, -2.0, 3.25],
    }
    assert seen["raw"] == {"datatype": "INT64", "shape": [2, 2], "values": [[1, 2], [3, 4]]}
    assert seen["unknown"]["code"] == "NOT_FOUND"


async def _infer(target: str, request: Any) -> tuple[grpc.StatusCode, str]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        try:
            await stub(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""


def test_too_large_and_bad_requests_on_the_wire(fresh_server):
    server = fresh_server("Identity", "--grpc-max-message-size", "64K")
    big = pb.ModelInferRequest(model_name="Identity")
    big.inputs.add(name="x", datatype="FP32", shape=[100_000])
    big.raw_input_contents.append(np.zeros(100_000, dtype=np.float32).tobytes())
    code, _ = asyncio.run(_infer(server.grpc_target, big))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    bad = pb.ModelInferRequest(model_name="Identity")
    bad.inputs.add(name="x", datatype="FP32", shape=[3]).contents.fp32_contents.append(1.0)
    code, details = asyncio.run(_infer(server.grpc_target, bad))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "needs 3" in details
    # the worker still answers
    bad.inputs[0].shape[0] = 1
    assert asyncio.run(_infer(server.grpc_target, bad))[0] == grpc.StatusCode.OK


@pytest.mark.parametrize("flags", [("--service-type", "ROUTER")])
def test_router_is_refused(fresh_server, flags):
    server = fresh_server("Router", *flags)
    request = pb.ModelInferRequest(model_name="Router")
    request.inputs.add(name="x", datatype="FP64", shape=[1]).contents.fp64_contents.append(1.0)
    code, details = asyncio.run(_infer(server.grpc_target, request))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "ROUTER" in details
