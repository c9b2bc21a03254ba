"""gRPC echo servers for `/seldon.protos.Model/Predict` (any method path is answered).

--server aio   grpc.aio on the default asyncio loop
--server sync  grpc.server with a 1-thread pool (Seldon's default gRPC shape)
--work raw     echo the request bytes (no protobuf at all)
--work proto   parse the SeldonMessage and serialise it again
No message size limits, so the large payload goes through.
"""

import argparse
import asyncio
from concurrent import futures
from typing import Any

import grpc
from unitbench.protos import message_class

OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def method_handler(server: str, work: str) -> grpc.RpcMethodHandler:
    if server == "aio":

        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return request
    else:

        def handle(request: Any, context: grpc.ServicerContext) -> Any:  # type: ignore[misc]
            return request

    if work == "proto":
        seldon_message = message_class("seldon.protos.SeldonMessage")
        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=seldon_message.FromString,
            response_serializer=seldon_message.SerializeToString)  # fmt: skip
    return grpc.unary_unary_rpc_method_handler(handle)


class AnyMethod(grpc.GenericRpcHandler):
    def __init__(self, handler: grpc.RpcMethodHandler) -> None:
        self.handler = handler

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return self.handler


async def serve_aio(port: int, work: str) -> None:
    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((AnyMethod(method_handler("aio", work)),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def serve_sync(port: int, work: str) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=OPTIONS)
    server.add_generic_rpc_handlers((AnyMethod(method_handler("sync", work)),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=("aio", "sync"), default="aio")
    parser.add_argument("--work", choices=("raw", "proto"), default="raw")
    args = parser.parse_args()
    if args.server == "aio":
        asyncio.run(serve_aio(args.port, args.work))
    else:
        serve_sync(args.port, args.work)


if __name__ == "__main__":
    main()
