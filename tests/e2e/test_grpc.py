"""The Seldon protocol over gRPC, with a real grpc.aio client against the real server:
metadata RPCs, undecodable bytes, message size limits, reflection and health. The
services' answers and errors over both transports are in
tests/e2e/test_seldon_payloads.py; payload kinds and numbers are tested in-process
(tests/unit/test_seldon_payloads.py)."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from .grpc_client import RpcError, call, call_bytes, call_json

ONE = {"data": {"ndarray": [[1]]}}


def test_metadata_rpcs(fresh_server):
    server = fresh_server("Metadata")
    out = call_json(server.grpc_target, "Model/Metadata", {})
    assert out["name"] == "my-model" and out["inputs"][0]["shape"] == ["1", "4"]
    assert call_json(server.grpc_target, "Seldon/ModelMetadata", {"name": "x"}) == out
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Seldon/GraphMetadata", {})
    assert err.value.code == grpc.StatusCode.UNIMPLEMENTED


def test_malformed_bytes(serve):
    with pytest.raises(RpcError) as err:
        call_bytes(serve("Identity").grpc_target, "Model/Predict", b"\xff\xff\xff")
    assert err.value.code == grpc.StatusCode.INTERNAL


def test_reflection_lists_the_seven_services_and_the_inference_service(serve):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async def list_services(target):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for response in stub.ServerReflectionInfo(iter([request])):
                return sorted(s.name for s in response.list_services_response.service)

    names = asyncio.run(list_services(serve("Identity").grpc_target))
    assert names == sorted(
        [
            "grpc.reflection.v1alpha.ServerReflection",
            "inference.GRPCInferenceService",
            *[
                f"seldon.protos.{s}"
                for s in (
                    "Generic",
                    "Model",
                    "Router",
                    "Transformer",
                    "OutputTransformer",
                    "Combiner",
                    "Seldon",
                )
            ],
        ]
    )


def test_health_service_says_serving(serve):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def check(target):
        async with grpc.aio.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return (await stub.Check(health_pb2.HealthCheckRequest(service=""))).status

    assert (
        asyncio.run(check(serve("Identity").grpc_target)) == health_pb2.HealthCheckResponse.SERVING
    )


def test_message_size_limit_flag(fresh_server):
    server = fresh_server("Identity", "--grpc-max-message-size", "1K")
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Model/Predict", {"strData": "x" * 5000})
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "1024" in err.value.details
    assert call_json(server.grpc_target, "Model/Predict", {"strData": "ok"})["strData"] == "ok"


def test_message_size_limit_annotation(fresh_server, tmp_path):
    path = tmp_path / "annotations"
    path.write_text('seldon.io/grpc-max-message-size="2048"\nother="x"\nnot-a-pair\n')
    server = fresh_server("Identity", env={"UNITSERVE_ANNOTATIONS_PATH": str(path)})
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Model/Predict", {"strData": "x" * 5000})
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "2048" in err.value.details


def test_default_receive_limit_is_4mib(serve):
    with pytest.raises(RpcError) as err:
        call(serve("Identity").grpc_target, "Model/Predict", {"strData": "x" * (5 << 20)})
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_rest_and_grpc_share_one_user_object(fresh_server):
    server = fresh_server("Counter")
    seen = []
    for i in range(6):
        if i % 2:
            seen.append(server.post("/predict", json={"strData": ""}).json()["jsonData"])
        else:
            seen.append(
                json.loads(
                    json.dumps(
                        call_json(server.grpc_target, "Model/Predict", {"strData": ""})["jsonData"]
                    )
                )
            )
    assert [int(s["count"]) for s in seen] == [1, 2, 3, 4, 5, 6]
    assert len({int(s["id"]) for s in seen}) == 1
    assert {int(s["loads"]) for s in seen} == {1}


def test_grpc_off_with_zero_workers(fresh_server):
    server = fresh_server("Identity", grpc=False)
    with pytest.raises(RpcError) as err:
        call(server.grpc_target, "Model/Predict", ONE, timeout=2)
    assert err.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_async_model_over_grpc(serve):
    out = call_json(serve("Asyncy").grpc_target, "Model/Predict", {"data": {"ndarray": [[1]]}})
    assert out["data"]["ndarray"] == [[10.0]]
