"""A graph as one served model (`GraphModel`), which the runtime serves with the
lifecycle of `unitserve serve` (``unitserve.runtime.graph_server``): the graph's walk
where one model's engine would be.

Each worker holds its own copy of every local node (``load()`` runs per worker, as for
one model) and walks a request on one of its graph threads: local nodes are called on
that thread (each behind its own ``--threads`` gate), ``async def`` methods on the
worker's loop, and remote nodes through their client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, replace
from typing import Any

from google.protobuf import json_format

from unitserve import tracing
from unitserve.calls import WIRE_GRPC, Invoker, Offloader, Readiness, Request
from unitserve.engine import EngineConfig, MetricsRecorder, Outcome
from unitserve.errors import ServingError, UnknownModel
from unitserve.graph.families import GRPC_FAMILY, REST_FAMILY, NodeFailed
from unitserve.graph.nodes import AnyNode, BuiltinNode, GrpcNode, LocalNode, RestNode
from unitserve.graph.sources import LocalSource, load_user
from unitserve.graph.spec import GraphSpec
from unitserve.graph.walk import Graph
from unitserve.message import new_request_id
from unitserve.models.model_settings import ModelSettings
from unitserve.models.served_model import DEPLOYMENT_API, ServedModel, call_load
from unitserve.models.state import ModelState
from unitserve.protocol import jsonio
from unitserve.settings import Settings

log = logging.getLogger("unitserve")


class NotAGraphOperation(ServingError):
    http_status = 404
    reason = "MICROSERVICE_NOT_FOUND"


class PassedThrough(ServingError):
    """A node's gRPC error, given to the client with the node's code and details."""

    def __init__(self, failed: NodeFailed) -> None:
        super().__init__(failed.details)
        self.grpc_code = failed.code
        self.http_status = failed.status


@dataclass
class GraphPlan:
    """Everything known before forking: the graph, each node's class and user object."""

    spec: GraphSpec
    sources: dict[str, LocalSource | None]
    users: dict[str, Any]
    routing_injection: bool = True

    def load(self) -> None:
        """--preload: every local node's load(), once, before the workers fork."""
        for user in self.users.values():
            call_load(user)


def build_plan(
    spec: GraphSpec, sources: dict[str, LocalSource | None], routing_injection: bool
) -> GraphPlan:
    users = {}
    for node in spec.root.walk():
        source = sources.get(node.name)
        if source is not None:
            users[node.name] = load_user(node, source)
    return GraphPlan(spec, sources, users, routing_injection)


def make_nodes(
    plan: GraphPlan, settings: Settings, recorder: MetricsRecorder, loaded: bool = False
) -> dict[str, AnyNode]:
    """Every node of the plan, a local one as a served model of its own (built on the
    worker's event loop); `loaded`: the local nodes' load() already ran (--preload)."""
    nodes: dict[str, AnyNode] = {}
    timeout = settings.request_timeout or None
    for node in plan.spec.root.walk():
        user = plan.users.get(node.name)
        if user is not None:
            config = replace(EngineConfig.of(settings), unit_id=node.name, unit_image=node.image)
            for_unit = getattr(recorder, "for_unit", None)
            node_recorder = for_unit(node.name, node.image) if for_unit else recorder
            model = ServedModel(
                ModelSettings(
                    implementation=type(user).__name__,
                    name=node.name,
                    metadata=node.model_metadata,
                    image=node.image,
                    service_type=node.type,
                    engine=config,
                ),
                user,
                recorder=node_recorder,
                threads=settings.user_threads,
                # its health status, asked by name, is answered within the request timeout
                request_timeout=settings.request_timeout,
                loaded=loaded,
                label=f"node {node.name!r}",
            )
            nodes[node.name] = LocalNode(node, model)
        elif node.endpoint is not None:
            if node.endpoint.kind == "GRPC":
                nodes[node.name] = GrpcNode(node, timeout)
            else:
                nodes[node.name] = RestNode(node, timeout)
        else:
            nodes[node.name] = BuiltinNode(node)
    return nodes


class GraphInvoker(Invoker):
    """The invoker of a graph's worker: predictions and feedback walk the graph on the
    graph threads; nothing else is an operation of a graph."""

    def __init__(
        self,
        graph: Graph,
        threads: int,
        request_timeout: float = 0.0,
        state: Readiness | None = None,
    ) -> None:
        self.graph = graph
        loop = asyncio.get_running_loop()
        local = sum(isinstance(n, LocalNode) for n in graph.nodes.values())
        # Enough walking threads for each local node to use its own --threads at once,
        # started as concurrent requests need them.
        walkers = Offloader(loop, min(64, threads * max(1, local)), "graph", start=threads)
        super().__init__(None, threads, request_timeout, state=state, offloader=walkers)
        self.node_offloader = Offloader(self.loop, threads, "user")
        from unitserve.graph.nodes import Runner

        runner = Runner(self.loop, self._node_offload)
        for node in graph.nodes.values():
            if isinstance(node, LocalNode):
                node.runner = runner

    def _trace(self, active: tracing.Tracing) -> None:
        """With tracing on: the walk and the user calls keep the request's span (the
        nodes trace their own steps; the request is not wrapped)."""
        offload = self.offload
        self.offload = lambda fn: offload(active.bind(fn))  # type: ignore[method-assign]

    async def _node_offload(self, fn: Any) -> Any:
        if tracing.ACTIVE is not None:
            fn = tracing.ACTIVE.bind(fn)
        return await self.node_offloader.submit(fn)

    def wants_message(self, op: str) -> bool:
        return False

    async def call(self, op: str, request: Request) -> Outcome:
        if not self.state.is_ready:
            await self.wait_ready()
        return await self.offload(functools.partial(self._walk, op, request))

    def call_blocking(self, op: str, request: Request) -> Outcome:
        if self.request_timeout is not None:
            future = asyncio.run_coroutine_threadsafe(self.call(op, request), self.loop)
            return future.result()
        if not self.state.is_ready:
            asyncio.run_coroutine_threadsafe(self.wait_ready(), self.loop).result()
        return self._walk(op, request)

    def _walk(self, op: str, request: Any) -> Outcome:
        on_grpc = request.wire == WIRE_GRPC
        family = GRPC_FAMILY if on_grpc else REST_FAMILY
        codec = request.codec
        try:
            if op == "predict":
                msg = codec.decode(request.read())
                puid = request.puid or (msg.meta or {}).get("puid") or new_request_id()
                request.puid = str(puid)
                return 200, codec.encode(self.graph.predict(msg, family, str(puid)))
            if op == "send_feedback":
                feedback = request.read()
                answer = self.graph.feedback(feedback, family)
                if answer is not None:
                    return 200, codec.encode(answer)
                # No node took the feedback: echo it (gRPC answers an empty message).
                if on_grpc:
                    return 200, b""
                return 200, jsonio.dumps(json_format.MessageToDict(feedback))
        except NodeFailed as failed:
            if on_grpc:
                raise PassedThrough(failed) from None
            return failed.status, failed.body
        raise NotAGraphOperation(f"a graph answers predictions and feedback, not {op}")

    def close(self) -> None:
        super().close()
        self.node_offloader.close()
        self.graph.close()


class GraphModel(ServedModel):
    """A graph served as one model, a Seldon deployment whose members are its nodes: the
    Seldon routes walk it, its metadata is the graph's, and a node's metadata and status
    are asked by name. Its local nodes are served models of their own, loaded with it."""

    carries_puid = True  # the orchestrator's Seldon-Puid, read and answered
    seldon_api = DEPLOYMENT_API

    def __init__(self, graph: Graph, settings: Settings) -> None:
        super().__init__(ModelSettings(implementation="graph"), label="the graph")
        self.state = ModelState("the graph")
        self.graph = graph
        self.invoker = GraphInvoker(
            graph, settings.user_threads, settings.request_timeout, state=self.state
        )

    @property
    def title(self) -> str:
        """The SeldonDeployment's name (the graph's file may serve one of several)."""
        return self.graph.spec.deployment

    async def load(self) -> bool:
        """Every local node's load() (unless preloaded) and metadata; remote nodes'
        metadata is asked for once."""
        invoker = self.invoker
        assert invoker is not None
        for node in self.graph.nodes.values():
            if isinstance(node, LocalNode):
                if not await node.model.load():
                    self.state.mark_failed(node.model.state.reason)
                    return False
                node.metadata = node.model.metadata
            elif isinstance(node, RestNode):
                status, body = await invoker.offloader.submit(
                    functools.partial(node.get_json, "/metadata")
                )
                if status == 200:
                    with contextlib.suppress(ValueError):
                        node.metadata = jsonio.loads(body)
            elif isinstance(node, GrpcNode):
                node.metadata = await invoker.offloader.submit(node.get_metadata)
        self.metadata = self.graph.metadata()
        self.state.mark_ready()
        return True

    async def not_ready(self) -> str | None:
        """A graph is ready when every node is: its remote nodes are asked each time."""
        own = await super().not_ready()
        if own is not None:
            return own
        remote = [n for n in self.graph.nodes.values() if isinstance(n, RestNode | GrpcNode)]
        if not remote:
            return None
        # On threads of their own: a probe must not wait behind requests for the walk's.
        answers = await asyncio.gather(*(asyncio.to_thread(n.not_ready) for n in remote))
        return next((a for a in answers if a is not None), None)

    def _node(self, name: str) -> AnyNode:
        node = self.graph.nodes.get(name)
        if node is None:
            raise UnknownModel(f"the graph has no node {name!r}")
        return node

    def member_metadata(self, name: str) -> dict[str, Any]:
        """The node's metadata (what it said at load; empty if it said nothing)."""
        return self._node(name).metadata or {}

    async def member_status(self, name: str, probe: Request) -> Outcome:
        """A local node's own health status; a REST node's ``/health/status``; other
        nodes (gRPC, built in) are ready."""
        node = self._node(name)
        if isinstance(node, LocalNode):
            return await node.model.call("health_status", probe)
        if isinstance(node, RestNode):
            invoker = self.invoker
            assert invoker is not None  # a graph is never unloaded
            return await invoker.offload(functools.partial(node.get_json, "/health/status"))
        return 200, jsonio.dumps({"status": "ready", "node": name})

    async def unload(self) -> None:
        raise NotAGraphOperation("a graph is not unloaded: stop its server instead")

    def close(self) -> None:
        super().close()
        for node in self.graph.nodes.values():
            if isinstance(node, LocalNode):
                node.model.close()


def graph_model(
    plan: GraphPlan, settings: Settings, recorder: MetricsRecorder, loaded: bool = False
) -> GraphModel:
    """The plan's graph as one served model, with its nodes (built on the worker's event
    loop); `loaded`: the local nodes' load() already ran (--preload)."""
    nodes = make_nodes(plan, settings, recorder, loaded)
    metrics = recorder if hasattr(recorder, "node_call") else None
    graph = Graph(plan.spec, nodes, routing_injection=plan.routing_injection, metrics=metrics)
    return GraphModel(graph, settings)
