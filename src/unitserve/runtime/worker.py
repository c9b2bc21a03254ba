"""One worker: an event loop (uvloop) serving REST (uvicorn + our ASGI app) and
gRPC (grpcio's threaded server) with a registry of its models (one copy of each user
object, with its thread pool and ``load()``) and a graceful stop.

The worker answers ``/live`` and ``/health/ping`` from its first moment; data
requests wait until ``load()`` has finished (``/ready`` says when). gRPC starts
listening only once the model is loaded, so that gRPC connections go to
workers that can answer them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import random
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
import uvloop

from unitserve import component, tracing
from unitserve.batching import BatchObserver
from unitserve.engine import MetricsRecorder
from unitserve.metrics import worker as worker_metrics
from unitserve.models.dataplane import DataPlane
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.models.served_model import call_load as call_load  # the supervisor's --preload
from unitserve.runtime import pod_info, wiring
from unitserve.runtime.control import ControlChannel, LocalChannel, SupervisedChannel
from unitserve.settings import Settings
from unitserve.transport.accounting import RequestAccounting
from unitserve.transport.rest.http_protocol import protocol_class

if TYPE_CHECKING:
    from unitserve.transport.grpc.server import GrpcServer

log = logging.getLogger("unitserve")

EXIT_OK = 0
EXIT_LOAD_FAILED = 3
# How often request metrics tallied on the loop reach the shared metric files.
_FLUSH_SECONDS = 0.2


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
    slot: int = 0
    notes_fd: int | None = None  # where to tell the supervisor "ready" / "recycle"
    loaded: bool = False  # load() already ran (--preload)
    metrics_dir: str | None = None
    # The supervisor's control channel (None: no supervisor, operations stay in-process).
    control_socket: socket.socket | None = None

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or --max-requests); returns the exit status."""
        return uvloop.run(self.serve())

    async def serve(self) -> int:
        settings = self.settings
        self.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        # Model loads and unloads that must reach every worker (see runtime/control.py).
        self.control: ControlChannel = (
            LocalChannel()
            if self.control_socket is None
            else SupervisedChannel(self.control_socket, f"worker {self.slot}")
        )
        await self.control.start()
        recorder: MetricsRecorder
        request_metrics: Any
        self._metrics: worker_metrics.WorkerMetrics | None = None
        if self.metrics_dir is not None:
            self._metrics = worker_metrics.WorkerMetrics(settings, str(self.slot))
            recorder = request_metrics = self._metrics
        else:
            recorder, request_metrics = MetricsRecorder(), worker_metrics.NoRequestMetrics()
        # The metrics are the registry's hooks: each model's ready gauge.
        self.registry = ModelRegistry(self.control, self._metrics)
        max_requests = settings.max_requests
        if max_requests:
            max_requests += random.randint(0, settings.max_requests_jitter)
        self.accounting = RequestAccounting(
            request_metrics, settings.access_log, max_requests, self._recycle, self.registry
        )
        if settings.tracing:  # here, after the fork: the exporter's thread is this worker's
            tracing.start(settings.served_model_name)
        self._add_models(recorder)
        http = self._http_server()
        http_task = asyncio.create_task(http.serve(sockets=[self.http_socket]))
        flusher = asyncio.create_task(_flush_every(request_metrics, _FLUSH_SECONDS))
        grpc_server: GrpcServer | None = None
        try:
            if not await self._start_models():
                log.error("worker %d will not serve: a model failed to load", self.slot)
                http.should_exit = True
                await http_task
                return EXIT_LOAD_FAILED
            await self.control.replay()  # what earlier operations left in place, before ready
            if settings.grpc_enabled and not self.stop.is_set():
                grpc_server = await self._start_grpc()
            self._note("ready")
            log.info(
                "worker %d ready (pid %d): REST on %s%s",
                self.slot,
                os.getpid(),
                _address(self.http_socket),
                f", gRPC on {grpc_server.listening}" if grpc_server else "",
            )
            stop_task = asyncio.create_task(self.stop.wait())
            await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            stop_task.cancel()
            log.info("worker %d stopping: finishing in-flight requests", self.slot)
            self.registry.flush_batches()  # queued requests are answered now, not later
            await self._drain(http, http_task, grpc_server)
            log.info("worker %d stopped", self.slot)
            return EXIT_OK
        finally:
            await self.control.close()
            flusher.cancel()
            request_metrics.flush()
            self.registry.close()
            tracing.stop()

    async def _start_models(self) -> bool:
        """Load the models served from the start: False stops the worker."""
        return await self.registry.start()

    def _add_models(self, recorder: MetricsRecorder) -> None:
        """The models this worker serves (a graph worker serves its graph)."""
        settings = self.settings
        model_settings = ModelSettings.of(settings, component.parse_parameters(settings.parameters))
        self.registry.add(
            ServedModel(
                model_settings,
                self.user,
                factory=functools.partial(
                    component.load_component, settings.interface_name, settings.parameters
                ),
                recorder=recorder,
                threads=settings.user_threads,
                request_timeout=settings.request_timeout,
                batch_observer=self._batches_of(model_settings.served_name),
                in_flight=self.accounting.in_flight,
                loaded=self.loaded,
            )
        )

    def _batches_of(self, model: str) -> BatchObserver | None:
        """Where the batcher of the served model `model` records its batches."""
        return None if self._metrics is None else self._metrics.batches_of(model)

    def _data_plane(self) -> DataPlane | None:
        """The Open Inference Protocol over this worker's models (a graph has none)."""
        return DataPlane(self.registry)

    async def _drain(
        self, http: _UvicornServer, http_task: asyncio.Task[None], grpc_server: GrpcServer | None
    ) -> None:
        """Stop accepting, serve what the kernel had already accepted, then let uvicorn
        and gRPC finish every request in flight within the grace period."""
        spare = socket.socket(fileno=os.dup(self.http_socket.fileno()))  # uvicorn closes its own
        for listener in getattr(http, "servers", []):
            listener.close()
        taken = _serve_backlog(spare, http)
        spare.close()  # at once: nothing more may queue between the last accept and this
        await asyncio.gather(*taken, return_exceptions=True)
        stops = [http_task]
        if grpc_server is not None:
            # gRPC reads a grace of 0 (or None) as "cancel every call now"; ours means no
            # limit, which is the longest wait a thread can be given.
            grace = self.settings.graceful_timeout or threading.TIMEOUT_MAX
            stops.append(asyncio.create_task(grpc_server.stop(grace)))
        http.should_exit = True  # idle connections get a short grace (http_protocol.py)
        await asyncio.gather(*stops)

    def _http_server(self) -> _UvicornServer:
        settings = self.settings
        self.plane = self._data_plane()
        app = wiring.rest_app(settings, self.registry, self.accounting, self.plane)
        served: Any = app if tracing.ACTIVE is None else tracing.ACTIVE.asgi(app)
        config = uvicorn.Config(
            served,
            lifespan="off",
            http=protocol_class(settings.http_timeout),
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            proxy_headers=False,  # clients' addresses are only logged, never trusted
            timeout_keep_alive=settings.keepalive,
            # uvicorn takes whole seconds; None is no limit.
            timeout_graceful_shutdown=math.ceil(settings.graceful_timeout) or None,
        )
        return _UvicornServer(config)

    async def _start_grpc(self) -> GrpcServer:
        from unitserve.transport.grpc.server import GrpcServer

        settings = self.settings
        size = settings.grpc_max_message_size or pod_info.grpc_max_message_size(
            settings.annotations_path
        )
        server = GrpcServer(
            self.registry,
            settings.host,
            settings.grpc_port,
            size,
            self.accounting,
            max(1, settings.grpc_threads),
            self.plane,
        )
        await server.start()
        return server

    def _recycle(self) -> None:
        """--max-requests reached: ask the supervisor for a replacement; it stops this
        worker (SIGTERM, then a graceful drain) once the replacement is ready."""
        log.info("worker %d served its --max-requests: asking for a replacement", self.slot)
        self._note("recycle")

    def _note(self, what: str) -> None:
        if self.notes_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.notes_fd, f"{what} {os.getpid()}\n".encode())


async def _flush_every(metrics: Any, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        metrics.flush()


def _serve_backlog(listening: socket.socket, http: _UvicornServer) -> list[asyncio.Task[Any]]:
    """Connections the kernel has queued on the (shared) listening socket would be reset
    when its last copy closes: a worker that stops accepting takes them over first."""
    loop = asyncio.get_running_loop()
    config = http.config

    def protocol() -> asyncio.Protocol:
        return config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=http.server_state, app_state=http.lifespan.state
        )

    tasks: list[asyncio.Task[Any]] = []
    while True:
        try:
            connection, _ = listening.accept()
        except OSError:  # BlockingIOError: the queue is empty
            return tasks
        connection.setblocking(False)
        tasks.append(loop.create_task(loop.connect_accepted_socket(protocol, connection)))


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"
