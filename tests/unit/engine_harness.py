"""One user object served in-process, with no socket and no server process.

`Harness` wires a user object exactly as a worker does (engine, invoker, the REST
ASGI app, the gRPC handlers, the codecs) and drives it directly: REST requests
go through httpx's ASGI transport into the app, gRPC requests call the handler
of the RPC with a fake servicer context. Tests therefore check what a client of
a real server sees (status, body, headers, gRPC code and details) in
milliseconds.

This is the only module of the unit tests that knows how the engine, the invoker
and the transports are put together: when their constructors or signatures
change, this file is the one to adapt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import uvicorn
from google.protobuf import json_format
from uvicorn.server import ServerState

from unitserve import component
from unitserve.calls import Invoker
from unitserve.engine import Engine, MetricsRecorder
from unitserve.metrics.worker import NoRequestMetrics
from unitserve.models.dataplane import DataPlane
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.proto import inference_pb2 as v2pb
from unitserve.proto import prediction_pb2 as pb
from unitserve.runtime import wiring
from unitserve.runtime.control import LocalChannel
from unitserve.settings import resolve
from unitserve.transport.accounting import RequestAccounting
from unitserve.transport.grpc.handlers import PACKAGE, SeldonGrpc
from unitserve.transport.grpc.inference import SERVICE as V2_SERVICE
from unitserve.transport.grpc.inference import InferenceGrpc
from unitserve.transport.rest.http_protocol import LimitedHttpProtocol, protocol_class

FIXTURES = Path(__file__).parents[1] / "fixtures"
_BUILT: Any = object()  # the metadata argument's default: what load() builds

# The protobuf type of each RPC's request, by method name (SeldonMessage otherwise).
_REQUEST_TYPES = {
    "Aggregate": pb.SeldonMessageList,
    "SendFeedback": pb.Feedback,
    "ModelMetadata": pb.SeldonModelMetadataRequest,
}


def fixture_model(name: str, **parameters: Any) -> Any:
    """An instance of tests/fixtures/<name>.py's class, built as ``--parameters`` would."""
    return component.construct(component.import_user_class(name, str(FIXTURES)), parameters)


class RecordingMetrics(MetricsRecorder):
    """Keeps what the engine records, where a worker would write Prometheus series."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, list[dict[str, Any]]]] = []
        self.rewards: list[float] = []

    def record(self, metrics: list[dict[str, Any]], method: str) -> None:
        self.recorded.append((method, list(metrics)))

    def record_feedback(self, reward: float) -> None:
        self.rewards.append(reward)


class RecordingBatches:
    """Keeps the batches the invoker sends: (operation, rows, each request's wait)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, list[float]]] = []

    def batch_sent(self, operation: str, rows: int, waits: Any) -> None:
        self.sent.append((operation, rows, list(waits)))


class CountingRequestMetrics(NoRequestMetrics):
    """Keeps the request counts a worker would write, by (operation, protocol, code),
    and each request's model label."""

    def __init__(self) -> None:
        super().__init__()
        self.finished: list[tuple[str, str, str]] = []
        self.models: list[str] = []

    def request_finished(
        self, operation: str, protocol: str, code: str, seconds: float, model: str
    ) -> None:
        self.finished.append((operation, protocol, code))
        self.models.append(model)


class RpcError(Exception):
    """A gRPC handler aborted: its status code and details, as a client receives them."""

    def __init__(self, code: Any, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class _Context:
    """The part of grpc.ServicerContext the handlers use."""

    def abort(self, code: Any, details: str) -> None:
        raise RpcError(code, details)

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


class Harness:
    """A user object behind the REST app and the gRPC handlers of one worker."""

    def __init__(
        self,
        user: Any,
        env: dict[str, str] | None = None,
        *,
        passthrough: bool = False,
        max_body_size: int = 100 << 20,
        cors_origins: str = "*",
        threads: int = 1,
        metadata: Any = _BUILT,
        ready: bool = True,
        flags: dict[str, Any] | None = None,
        access_log: bool = False,
    ) -> None:
        self.user = user
        self.recorder = RecordingMetrics()
        settings = resolve(argparse.Namespace(**(flags or {})), env or {}, type(user).__name__)
        settings = dataclasses.replace(
            settings,
            payload_passthrough=passthrough or settings.payload_passthrough,
            max_body_size=max_body_size,
            cors_origins=cors_origins,
        )
        self.settings = settings
        self.batches = RecordingBatches()
        self.accounting_metrics = CountingRequestMetrics()
        self.registry = ModelRegistry(LocalChannel())
        accounting = RequestAccounting(
            self.accounting_metrics, access_log_enabled=access_log, registry=self.registry
        )
        self.accounting = accounting
        self.loop = asyncio.new_event_loop()
        self.model: ServedModel = self.loop.run_until_complete(self._model(threads))
        self.registry.add(self.model)
        assert self.model.engine is not None and self.model.invoker is not None
        self.engine: Engine = self.model.engine
        self.invoker: Invoker = self.model.invoker
        if ready:
            # The user object is the test's: its load() is not run, as with --preload.
            self.loop.run_until_complete(self.model.load())
            if metadata is not _BUILT:  # what load() would have built (None: invalid)
                self.model.metadata = metadata
        self.plane = DataPlane(self.registry)
        self.app = wiring.rest_app(settings, self.registry, accounting, self.plane)
        self.grpc_services = SeldonGrpc(self.registry, accounting).services()
        self.v2_grpc_services = InferenceGrpc(self.plane, accounting, self.loop).services()
        self._connections: list[Connection] = []
        self.client = httpx.AsyncClient(
            # RestApp types the ASGI scope and messages as dict, httpx as MutableMapping.
            transport=httpx.ASGITransport(
                app=self.app,  # type: ignore[arg-type]
                client=("127.0.0.1", 40000),
            ),
            base_url="http://127.0.0.1",
        )

    async def _model(self, threads: int) -> ServedModel:
        # Built on the harness's loop, as a worker builds it on its own.
        settings = self.settings
        return ServedModel(
            ModelSettings.of(settings),
            self.user,
            # What a repository load after an unload builds: another object of the class.
            factory=type(self.user),
            recorder=self.recorder,
            threads=threads,
            batch_observer=self.batches,
            in_flight=self.accounting.in_flight,
            loaded=True,
        )

    # ------------------------------------------------------------------ REST

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An HTTP request with httpx's arguments (json=, content=, data=, files=,
        params=, headers=), answered by the REST app."""
        return self.loop.run_until_complete(self.client.request(method, path, **kwargs))

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    # ------------------------------------------------------------------ gRPC

    def call_bytes(self, rpc: str, data: bytes) -> bytes:
        """Call ``Service/Method`` with serialised request bytes; raises RpcError as a
        client would see it."""
        service, method = rpc.split("/")
        handler = self.grpc_services[f"{PACKAGE}.{service}"][method]

        def run() -> bytes:
            answer = handler.unary_unary(handler.request_deserializer(data), _Context())
            return handler.response_serializer(answer)

        # On a thread of its own, as on the gRPC server: an async user method then
        # runs on the harness's loop, which turns meanwhile.
        return self.loop.run_until_complete(self.loop.run_in_executor(None, run))

    def call(self, rpc: str, request: Any) -> Any:
        """Call an RPC with a protobuf message or its JSON form; returns the answer message."""
        method = rpc.split("/")[1]
        if isinstance(request, dict):
            request = json_format.ParseDict(request, _REQUEST_TYPES.get(method, pb.SeldonMessage)())
        return pb.SeldonMessage.FromString(self.call_bytes(rpc, request.SerializeToString()))

    def call_json(self, rpc: str, request: Any) -> dict[str, Any]:
        return json_format.MessageToDict(self.call(rpc, request))

    def call_v2_bytes(self, method: str, data: bytes) -> bytes:
        """Call a method of ``inference.GRPCInferenceService`` with request bytes."""
        handler = self.v2_grpc_services[V2_SERVICE][method]

        def run() -> bytes:
            answer = handler.unary_unary(handler.request_deserializer(data), _Context())
            return handler.response_serializer(answer)

        return self.loop.run_until_complete(self.loop.run_in_executor(None, run))

    def call_v2(self, method: str, request: Any) -> Any:
        """Call a method of ``inference.GRPCInferenceService`` with a message (or its
        JSON form); returns the answer message. Raises RpcError as a client would see it."""
        if isinstance(request, dict):
            request = json_format.ParseDict(request, getattr(v2pb, f"{method}Request")())
        data = self.call_v2_bytes(method, request.SerializeToString())
        return getattr(v2pb, f"{method}Response").FromString(data)

    # ------------------------------------------------------------------ HTTP connection

    def connect(self, http_timeout: float = 30.0, keepalive: int = 5) -> Connection:
        """One HTTP connection to the REST app through the worker's HTTP protocol, over a
        fake transport: the test feeds bytes in and reads what would go on the wire."""
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            http=protocol_class(http_timeout),
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            timeout_keep_alive=keepalive,
        )
        config.load()
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=ServerState(), app_state={}, _loop=self.loop
        )
        assert isinstance(protocol, LimitedHttpProtocol)
        transport = FakeTransport()
        # FakeTransport has the methods the protocol calls, not the whole Transport class.
        protocol.connection_made(cast(asyncio.Transport, transport))
        connection = Connection(self.loop, protocol, transport)
        self._connections.append(connection)
        return connection

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        for connection in self._connections:
            connection.lose()
        self.loop.run_until_complete(self.client.aclose())
        self.registry.close()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


class FakeTransport:
    """The asyncio transport of one connection, keeping what is written."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    @property
    def output(self) -> bytes:
        return b"".join(self.writes)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 9000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:
        pass


class Connection:
    """A connection driven by the test: `send` bytes, `settle` until the app is done."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: LimitedHttpProtocol, transport: Any
    ) -> None:
        self.loop = loop
        self.protocol = protocol
        self.transport = transport

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def settle(self, responses: int | None = None, limit: float = 10.0) -> list[Response]:
        """Run the loop until `responses` complete answers were written (or, without a
        count, until no request is in progress); returns every answer so far."""

        def done() -> bool:
            if responses is not None:
                return len(parse_responses(self.transport.output)) >= responses
            cycle = self.protocol.cycle
            return cycle is None or cycle.response_complete

        async def wait() -> None:
            async with asyncio.timeout(limit):  # a safety net for a hang, not a measurement
                while not done():
                    await asyncio.sleep(0.001)
                for _ in range(3):  # let callbacks queued by the last write run
                    await asyncio.sleep(0)

        self.loop.run_until_complete(wait())
        return parse_responses(self.transport.output)

    def lose(self) -> None:
        if not getattr(self, "_lost", False):
            self._lost = True
            self.protocol.connection_lost(None)


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def parse_responses(data: bytes) -> list[Response]:
    """The complete HTTP/1.1 responses in `data` (every answer has a Content-Length)."""
    out = []
    while (end := data.find(b"\r\n\r\n")) >= 0:
        lines = data[:end].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(data) < end + 4 + length:
            break
        out.append(Response(int(lines[0].split()[1]), headers, data[end + 4 : end + 4 + length]))
        data = data[end + 4 + length :]
    return out


@contextlib.contextmanager
def serving(user: Any, env: dict[str, str] | None = None, **options: Any) -> Iterator[Harness]:
    harness = Harness(user, env, **options)
    try:
        yield harness
    finally:
        harness.close()
