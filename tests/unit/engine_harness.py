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

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from google.protobuf import json_format

from unitserve import component
from unitserve.calls import Invoker
from unitserve.engine import Engine, EngineConfig, MetricsRecorder
from unitserve.metrics.worker import NoRequestMetrics
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.seldon.json_codec import JsonCodec, PassthroughCodec
from unitserve.protocol.seldon.proto_codec import FeedbackJsonCodec
from unitserve.transport.accounting import RequestObserver
from unitserve.transport.grpc.handlers import PACKAGE, SeldonGrpc
from unitserve.transport.rest.app import RestApp
from unitserve.transport.rest.flask_errors import error_handlers_of
from unitserve.transport.rest.openapi import document as openapi_document

FIXTURES = Path(__file__).parents[1] / "fixtures"

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
    ) -> None:
        self.user = user
        self.recorder = RecordingMetrics()
        self.engine = Engine(user, EngineConfig.from_env(env or {}), self.recorder)
        self.loop = asyncio.new_event_loop()
        self.invoker: Invoker = self.loop.run_until_complete(self._invoker(threads))
        self.invoker.mark_ready()
        observer = RequestObserver(NoRequestMetrics())
        self.app = RestApp(
            self.invoker,
            {
                "json": JsonCodec(),
                "passthrough": PassthroughCodec(),
                "feedback": FeedbackJsonCodec(),
            },
            metadata=lambda: None,
            openapi=orjson.dumps(openapi_document(), option=orjson.OPT_SORT_KEYS) + b"\n",
            cors_origins=cors_origins,
            max_body_size=max_body_size,
            passthrough=passthrough,
            error_handlers=error_handlers_of(user),
            observer=observer,
        )
        self.grpc_services = SeldonGrpc(self.invoker, lambda: None, observer).services()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("127.0.0.1", 40000)),
            base_url="http://127.0.0.1",
        )

    async def _invoker(self, threads: int) -> Invoker:
        return Invoker(self.engine, threads)  # needs the running loop

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

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.invoker.close()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


@contextlib.contextmanager
def serving(user: Any, env: dict[str, str] | None = None, **options: Any) -> Iterator[Harness]:
    harness = Harness(user, env, **options)
    try:
        yield harness
    finally:
        harness.close()
