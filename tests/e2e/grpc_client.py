"""A small grpc.aio client for the tests: call any Seldon RPC by path."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from unitserve.proto import prediction_pb2 as pb

RESPONSE_TYPES: dict[str, type[Message]] = {
    "Metadata": pb.SeldonModelMetadata,
    "ModelMetadata": pb.SeldonModelMetadata,
    "GraphMetadata": pb.SeldonGraphMetadata,
}


class RpcError(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


async def _call(target: str, path: str, data: bytes, timeout: float) -> bytes:
    async with grpc.aio.insecure_channel(target) as channel:
        method = channel.unary_unary(
            path, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        try:
            return await method(data, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise RpcError(exc.code(), exc.details() or "") from None


def call_bytes(target: str, rpc: str, data: bytes, timeout: float = 30) -> bytes:
    service, method = rpc.split("/")
    return asyncio.run(_call(target, f"/seldon.protos.{service}/{method}", data, timeout))


def call(target: str, rpc: str, request: Any, timeout: float = 30) -> Any:
    """Call `rpc` ("Service/Method") with a message or its JSON form; returns the message."""
    method = rpc.split("/")[1]
    if isinstance(request, dict):
        kind = {
            "Aggregate": pb.SeldonMessageList,
            "SendFeedback": pb.Feedback,
            "ModelMetadata": pb.SeldonModelMetadataRequest,
        }.get(method, pb.SeldonMessage)
        request = json_format.ParseDict(request, kind())
    answer = call_bytes(target, rpc, request.SerializeToString(), timeout)
    return RESPONSE_TYPES.get(method, pb.SeldonMessage).FromString(answer)


def call_json(target: str, rpc: str, request: Any, timeout: float = 30) -> dict[str, Any]:
    return json_format.MessageToDict(call(target, rpc, request, timeout))
