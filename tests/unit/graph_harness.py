"""A SeldonDeployment's graph served in-process, with no socket and no server process.

`GraphHarness` wires a graph as a graph worker does (nodes, walk, invoker, the graph
model in a registry, the REST app and the gRPC handlers over it) and drives it as
`engine_harness` drives one model: REST through httpx's ASGI transport, gRPC by calling
the handlers.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import json_format
from google.protobuf.message import Message

from unitserve import metadata
from unitserve.graph import spec as graph_spec
from unitserve.graph.nodes import LocalNode
from unitserve.graph.serving import GraphInvoker, GraphModel, GraphPlan, build_plan, make_nodes
from unitserve.graph.sources import LocalSource
from unitserve.graph.walk import Graph
from unitserve.metrics.worker import NoRequestMetrics
from unitserve.models.registry import ModelRegistry
from unitserve.proto import prediction_pb2 as pb
from unitserve.runtime import wiring
from unitserve.runtime.control import LocalChannel
from unitserve.settings import Settings, resolve
from unitserve.transport.accounting import RequestAccounting
from unitserve.transport.grpc.handlers import PACKAGE, SeldonGrpc

from .engine_harness import RecordingMetrics, RpcError

GRAPHS = Path(__file__).parents[1] / "fixtures" / "graphs"
NODES = GRAPHS / "nodes"


class _Context:
    def __init__(self, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self.metadata = metadata
        self.sent: tuple[tuple[str, str], ...] = ()

    def abort(self, code: Any, details: str) -> None:
        raise RpcError(code, details)

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def send_initial_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.sent = metadata


class NodeCalls:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def node_call(self, node: str, operation: str, code: str, seconds: float) -> None:
        self.calls.append((node, operation, code))


class GraphHarness:
    """`document`: a SeldonDeployment (YAML text); `classes`: node name → class in
    tests/fixtures/graphs/nodes/GraphNodes.py, or ``Module.Class`` of another module
    of that folder (nodes not listed must be remote or built in)."""

    def __init__(
        self,
        document: str,
        classes: dict[str, str],
        tmp_path: Path,
        *,
        routing_injection: bool = True,
        env: dict[str, str] | None = None,
        access_log: bool = False,
    ) -> None:
        path = tmp_path / "graph.yaml"
        path.write_text(document)
        self.spec = graph_spec.load(path)
        sources: dict[str, LocalSource | None] = {
            name: LocalSource(NODES, cls if "." in cls else f"GraphNodes.{cls}")
            for name, cls in classes.items()
        }
        plan = build_plan(self.spec, sources, routing_injection)
        settings = resolve(argparse.Namespace(), env or {}, "graph")
        self.recorder = RecordingMetrics()
        self.node_calls = NodeCalls()
        self.loop = asyncio.new_event_loop()
        self.model = self.loop.run_until_complete(self._model(plan, settings, routing_injection))
        self.graph = self.model.graph
        # Ready without the nodes' load(): the metadata each node would have built.
        for node in self.graph.nodes.values():
            if isinstance(node, LocalNode):
                node.metadata = metadata.build(None, node.spec.model_metadata, node.spec.image)
                node.model.state.mark_ready()
        self.model.metadata = self.graph.metadata()
        self.model.state.mark_ready()
        assert isinstance(self.model.invoker, GraphInvoker)
        self.invoker: GraphInvoker = self.model.invoker
        self.registry = ModelRegistry(LocalChannel())
        self.registry.add(self.model)
        accounting = RequestAccounting(NoRequestMetrics(), access_log_enabled=access_log)
        self.app = wiring.rest_app(settings, self.registry, accounting, None)
        self.grpc_services = SeldonGrpc(self.registry, accounting).services()
        self.client = httpx.AsyncClient(
            # RestApp types the ASGI scope and messages as dict, httpx as MutableMapping.
            transport=httpx.ASGITransport(
                app=self.app,  # type: ignore[arg-type]
                client=("127.0.0.1", 40000),
            ),
            base_url="http://127.0.0.1",
        )

    async def _model(
        self, plan: GraphPlan, settings: Settings, routing_injection: bool
    ) -> GraphModel:
        # Built on the harness's loop, as a graph worker builds it on its own.
        nodes = make_nodes(plan, settings, self.recorder, loaded=True)
        graph = Graph(
            self.spec, nodes, routing_injection=routing_injection, metrics=self.node_calls
        )
        return GraphModel(graph, settings)

    def user(self, node: str) -> Any:
        impl = self.graph.nodes[node]
        assert isinstance(impl, LocalNode)
        return impl.user

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(path, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.get(path, **kwargs))

    def predict(self, body: dict[str, Any]) -> httpx.Response:
        return self.post("/api/v1.0/predictions", json=body)

    def call(
        self, rpc: str, request: Any, metadata: tuple[tuple[str, str], ...] = ()
    ) -> tuple[dict[str, Any], _Context]:
        """A gRPC call (``Service/Method``) with a message or its JSON form: the answer's
        JSON form and the context (initial metadata sent)."""
        service, method = rpc.split("/")
        handler = self.grpc_services[f"{PACKAGE}.{service}"][method]
        types = {
            "SendFeedback": pb.Feedback,
            "ModelMetadata": pb.SeldonModelMetadataRequest,
        }
        if isinstance(request, dict):
            request = json_format.ParseDict(request, types.get(method, pb.SeldonMessage)())
        context = _Context(metadata)
        data = request.SerializeToString()

        def run() -> bytes:
            return handler.response_serializer(handler.unary_unary(data, context))

        raw = self.loop.run_until_complete(self.loop.run_in_executor(None, run))
        answer_type: dict[str, type[Message]] = {
            "GraphMetadata": pb.SeldonGraphMetadata,
            "ModelMetadata": pb.SeldonModelMetadata,
        }
        message = answer_type.get(method, pb.SeldonMessage).FromString(raw)
        return json_format.MessageToDict(message), context

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.registry.close()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()
