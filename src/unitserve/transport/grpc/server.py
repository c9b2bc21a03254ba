"""The worker's gRPC server: the Seldon services, the Open Inference Protocol's
service, reflection and the standard health service, on grpcio's threaded server
in the worker process.

It starts once the model is loaded, so its health service answers SERVING from
the start and NOT_SERVING while the worker drains.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from unitserve import tracing
from unitserve.errors import StartupError
from unitserve.models.dataplane import DataPlane
from unitserve.models.registry import ModelRegistry
from unitserve.proto import INFERENCE_SERVICE_NAME, POOL, SERVICE_NAMES
from unitserve.transport.accounting import RequestAccounting
from unitserve.transport.grpc.handlers import SeldonGrpc
from unitserve.transport.grpc.inference import InferenceGrpc

log = logging.getLogger("unitserve")

DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024  # grpcio's own default
# The shortest interval between a client's keepalive pings that is accepted.
KEEPALIVE_PINGS_EVERY_MS = 10_000


class _Reflection(reflection.ReflectionServicer):
    """Server reflection answering as Seldon's grpcio-reflection did: without echoing
    the request in each answer (newer grpcio-reflection adds `original_request`)."""

    def ServerReflectionInfo(self, request_iterator: Any, context: Any) -> Any:
        for response in super().ServerReflectionInfo(request_iterator, context):
            response.ClearField("original_request")
            yield response


class GrpcServer:
    def __init__(
        self,
        registry: ModelRegistry,
        host: str,
        port: int,
        max_message_size: int | None,
        accounting: RequestAccounting,
        threads: int,
        plane: DataPlane | None = None,
    ) -> None:
        """`plane` None: no Open Inference Protocol service (a graph's server)."""
        receive = max_message_size or DEFAULT_MAX_RECEIVE
        send = max_message_size or -1
        options = [
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", receive),
            ("grpc.max_send_message_length", send),
            # Clients that keep a channel open with keepalive pings (Seldon Core 2's agent
            # pings every 60 s, with or without a call under way, as during a long
            # model load): grpcio's server would count pings more often than every 5
            # minutes as abuse and close the connection ("too_many_pings").
            ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_PINGS_EVERY_MS),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
        # Reflection and health get a thread of their own so that they answer while
        # every request thread runs user code.
        self.server = grpc.server(
            ThreadPoolExecutor(threads + 1, thread_name_prefix="grpc"), options=options
        )
        # The Seldon services answer with the default model: a model repository, which
        # serves models by name only, has none and offers the Open Inference service alone.
        services = (
            SeldonGrpc(registry, accounting).services() if registry.default is not None else {}
        )
        if plane is not None:
            loop = asyncio.get_running_loop()
            services.update(InferenceGrpc(plane, accounting, loop).services())
        if tracing.ACTIVE is not None:  # one server span per RPC; nothing added when off
            services = {
                service: {
                    name: tracing.ACTIVE.grpc_handler(f"/{service}/{name}", handler)
                    for name, handler in methods.items()
                }
                for service, methods in services.items()
            }
        for service, methods in services.items():
            if hasattr(self.server, "add_registered_method_handlers"):  # grpcio >= 1.64
                # Registered with the C core: no per-call lookup through Python handlers.
                self.server.add_registered_method_handlers(service, methods)
            else:
                self.server.add_generic_rpc_handlers(
                    [grpc.method_handlers_generic_handler(service, methods)]
                )
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        # Reflection lists what Seldon's lists (clients and the conformance suite compare
        # it) and the Open Inference Protocol's service; the health service is standard
        # and needs no discovery. Only what is registered: a deployment (a graph) serves
        # seldon.protos.Seldon alone, and a client that discovers services must not be
        # offered one that answers UNIMPLEMENTED.
        self.served = [n for n in (*SERVICE_NAMES, INFERENCE_SERVICE_NAME) if n in services]
        reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
            _Reflection((*self.served, reflection.SERVICE_NAME), pool=POOL),
            self.server,
        )
        bracketed = f"[{host}]" if ":" in host else host
        self.address = f"{bracketed}:{port}"
        # grpcio binds a wildcard host, 0.0.0.0 as well as ::, as one IPv6 socket that
        # takes IPv4 too (where the machine has IPv6): the log line says so.
        wildcard = host in ("0.0.0.0", "::") and socket.has_ipv6
        self.listening = f"[::]:{port} (IPv4 and IPv6)" if wildcard else self.address

    async def start(self) -> None:
        try:
            bound = self.server.add_insecure_port(self.address)
        except RuntimeError as exc:
            raise StartupError(
                f"cannot listen for gRPC on {self.address} (--grpc-port): {exc}"
            ) from None
        if not bound:
            raise StartupError(f"cannot listen for gRPC on {self.address} (--grpc-port)")
        for name in ("", *self.served):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.server.start()

    async def stop(self, grace: float) -> None:
        """Refuse new RPCs at once, let running ones finish within `grace` seconds."""
        self.health.enter_graceful_shutdown()
        stopped = self.server.stop(grace)
        await asyncio.get_running_loop().run_in_executor(None, stopped.wait)
