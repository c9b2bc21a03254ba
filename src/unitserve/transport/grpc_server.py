"""The worker's grpc.aio server: the Seldon services, reflection and the standard
health service (which says SERVING only once the model is loaded)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from grpc_reflection.v1alpha._async import ReflectionServicer

from ..errors import StartupError
from ..invoke import Invoker
from ..proto import POOL, SERVICE_NAMES
from .grpc import SeldonGrpc
from .observe import RequestObserver

log = logging.getLogger("unitserve")

DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024  # grpcio's own default


class _Reflection(ReflectionServicer):
    """Server reflection answering as Seldon's grpcio-reflection did: without echoing
    the request in each answer (newer grpcio-reflection adds `original_request`)."""

    async def ServerReflectionInfo(self, request_iterator: Any, context: Any) -> Any:
        async for response in super().ServerReflectionInfo(request_iterator, context):
            response.ClearField("original_request")
            yield response


class GrpcServer:
    def __init__(
        self,
        invoker: Invoker,
        metadata: Callable[[], dict[str, Any] | None],
        host: str,
        port: int,
        max_message_size: int | None,
        observer: RequestObserver,
    ) -> None:
        receive = max_message_size or DEFAULT_MAX_RECEIVE
        send = max_message_size or -1
        options = [
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", receive),
            ("grpc.max_send_message_length", send),
        ]
        self.server = grpc.aio.server(options=options)
        self.server.add_generic_rpc_handlers(SeldonGrpc(invoker, metadata, observer).handlers())
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        # Reflection lists what Seldon's lists (clients and the conformance suite compare
        # it); the health service is standard and needs no discovery.
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            _Reflection((*SERVICE_NAMES, reflection.SERVICE_NAME), pool=POOL), self.server
        )
        bracketed = f"[{host}]" if ":" in host else host
        self.address = f"{bracketed}:{port}"
        self.max_receive = receive

    async def start(self) -> None:
        try:
            bound = self.server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise StartupError(
                f"cannot listen for gRPC on {self.address} (--grpc-port): {exc}"
            ) from None
        if not bound:
            raise StartupError(f"cannot listen for gRPC on {self.address} (--grpc-port)")
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def mark_serving(self) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
