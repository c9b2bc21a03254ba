"""One worker: an event loop (uvloop) serving REST (uvicorn + our ASGI app) and
gRPC (grpc.aio) with one copy of the user object, its thread pool, ``load()``
and a graceful stop.

The worker answers ``/live`` and ``/health/ping`` from the first moment; data
requests wait until ``load()`` has finished (``/ready`` says when).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
import uvloop

from . import annotations
from . import metadata as metadata_mod
from .codec.seldon_json import JsonCodec, PassthroughCodec
from .engine import Engine, EngineConfig, MetricsRecorder
from .errors import is_not_implemented
from .invoke import Invoker
from .openapi import document as openapi_document
from .settings import Settings
from .transport.flask_errors import error_handlers_of
from .transport.rest import RestApp

if TYPE_CHECKING:
    from .transport.grpc_server import GrpcServer

log = logging.getLogger("unitserve")

EXIT_OK = 0
EXIT_LOAD_FAILED = 3


class _UvicornServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: the worker owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Worker:
    settings: Settings
    user: Any
    http_socket: socket.socket
    loaded: bool = False  # load() already ran (--preload)
    recorder: MetricsRecorder = field(default_factory=MetricsRecorder)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the process exit status."""
        return uvloop.run(self.serve())

    async def serve(self) -> int:
        settings = self.settings
        env = dict(settings.env)
        engine = Engine(self.user, EngineConfig.from_env(env), self.recorder)
        invoker = Invoker(engine, settings.user_threads, settings.request_timeout)
        self._metadata: dict[str, Any] | None = None
        passthrough = env.get("PAYLOAD_PASSTHROUGH", "false").strip().lower() in ("1", "true", "t")
        app = RestApp(
            invoker,
            {"json": JsonCodec(), "passthrough": PassthroughCodec(), "feedback": _feedback_codec()},
            metadata=lambda: self._metadata,
            openapi=orjson.dumps(openapi_document(), option=orjson.OPT_SORT_KEYS) + b"\n",
            cors_origins=settings.cors_origins,
            max_body_size=settings.max_body_size,
            passthrough=passthrough,
            error_handlers=error_handlers_of(self.user),
            access_log_enabled=settings.access_log,
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            http="httptools",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=settings.keepalive,
            timeout_graceful_shutdown=int(settings.graceful_timeout) or None,
        )
        http = _UvicornServer(config)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        http_task = asyncio.create_task(http.serve(sockets=[self.http_socket]))
        grpc_server = await self._start_grpc(invoker) if settings.grpc_enabled else None
        try:
            if not await self._load(invoker, engine, env):
                http.should_exit = True
                await http_task
                return EXIT_LOAD_FAILED
            invoker.ready.set()
            if grpc_server is not None:
                await grpc_server.mark_serving()
            log.info(
                "worker %d ready: REST on %s%s",
                os.getpid(),
                _address(self.http_socket),
                f", gRPC on {grpc_server.address}" if grpc_server else "",
            )
            stop_task = asyncio.create_task(stop.wait())
            await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            log.info("worker %d stopping: finishing in-flight requests", os.getpid())
            http.should_exit = True
            stops = [http_task]
            if grpc_server is not None:
                stops.append(asyncio.create_task(grpc_server.stop(settings.graceful_timeout)))
            await asyncio.gather(*stops)
            return EXIT_OK
        finally:
            invoker.close()

    async def _start_grpc(self, invoker: Invoker) -> GrpcServer:
        from .transport.grpc_server import GrpcServer

        settings = self.settings
        size = settings.grpc_max_message_size or annotations.grpc_max_message_size(settings.env)
        server = GrpcServer(
            invoker, lambda: self._metadata, settings.host, settings.grpc_port, size
        )
        await server.start()
        return server

    async def _load(self, invoker: Invoker, engine: Engine, env: dict[str, str]) -> bool:
        """Run the user's load() (unless preloaded), then build the metadata."""
        loop = asyncio.get_running_loop()
        if not self.loaded:
            try:
                await loop.run_in_executor(invoker.pool, call_load, self.user)
            except Exception:
                log.exception(
                    "load() of %s failed; this worker will not serve", type(self.user).__name__
                )
                invoker.not_ready_reason = "load() failed"
                return False
        user_metadata = None
        if engine.m.init_metadata is not None:
            try:
                user_metadata = await loop.run_in_executor(invoker.pool, engine.m.init_metadata.fn)
            except Exception as exc:
                if not is_not_implemented(exc):
                    log.exception("init_metadata() failed; using the default metadata")
        self._metadata = metadata_mod.build(
            user_metadata, env.get("MODEL_METADATA"), env.get("PREDICTIVE_UNIT_IMAGE")
        )
        return True


def call_load(user: Any) -> None:
    """The user's load(), if it has one (SeldonComponent's empty default is fine)."""
    load = getattr(user, "load", None)
    if load is None or not callable(load):
        return
    try:
        load()
    except NotImplementedError:
        pass
    except Exception as exc:
        if not is_not_implemented(exc):
            raise


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def _feedback_codec() -> Any:
    try:
        from .codec.seldon_proto import FeedbackJsonCodec
    except ImportError:  # the protobuf codec is not there yet
        return JsonCodec()
    return FeedbackJsonCodec()
