"""The walk of one request through the graph, as Seldon's orchestrator walks it.

Prediction, per node N with message m: transform-input (MODEL → predict, TRANSFORMER
or ``methods: [TRANSFORM_INPUT]`` → transform_input), then the route (a ROUTER's
answer, RANDOM_ABTEST's draw, otherwise -1: every child), the children (concurrently
for -1), the aggregate (a COMBINER's, otherwise child 0's answer), then
transform-output (OUTPUT_TRANSFORMER or ``methods: [TRANSFORM_OUTPUT]``). Feedback
goes children first, then the node, to the children the prediction was routed to
(``meta.routing`` of the answer the feedback is about).

Where we deliberately differ from the orchestrator: a route out of range is answered
500 with a sentence (it crashes there), and ``meta.routing`` is in every answer
unless SELDON_ENABLE_ROUTING_INJECTION is explicitly false (there: only when set).
"""

from __future__ import annotations

import functools
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from unitserve import tracing
from unitserve.errors import ServingError, describe
from unitserve.graph.families import Family, NodeFailed
from unitserve.graph.nodes import AnyNode, BuiltinNode
from unitserve.graph.spec import GraphSpec, NodeSpec, ratio_a
from unitserve.message import Message, Reply


class RouteOutOfRange(ServingError):
    """A router chose a child it does not have: answered, not a dropped connection."""


class NodeCallMetrics(Protocol):
    def node_call(self, node: str, operation: str, code: str, seconds: float) -> None: ...


@dataclass
class _Plan:
    """What a node does, decided once from its type and ``methods``."""

    input_op: str | None
    routes: bool
    abtest: float | None  # RANDOM_ABTEST's ratioA
    aggregates: bool
    output_op: bool
    feedback: bool


def _plan(node: NodeSpec, impl: AnyNode) -> _Plan:
    methods, kind = node.methods, node.type
    if isinstance(impl, BuiltinNode):
        abtest = ratio_a(node) if node.implementation == "RANDOM_ABTEST" else None
        return _Plan(None, False, abtest, False, False, False)
    input_op = None
    if kind == "TRANSFORMER" or "TRANSFORM_INPUT" in methods:
        input_op = "transform_input"
    elif kind == "MODEL":
        input_op = "predict"
    return _Plan(
        input_op=input_op,
        routes=kind == "ROUTER" or "ROUTE" in methods,
        abtest=None,
        aggregates=kind == "COMBINER" or "AGGREGATE" in methods,
        output_op=kind == "OUTPUT_TRANSFORMER" or "TRANSFORM_OUTPUT" in methods,
        feedback=kind in ("MODEL", "ROUTER") or "SEND_FEEDBACK" in methods,
    )


class Graph:
    """A predictor's graph with each node's implementation, walked per request."""

    def __init__(
        self,
        spec: GraphSpec,
        nodes: dict[str, AnyNode],
        routing_injection: bool = True,
        metrics: NodeCallMetrics | None = None,
        fanout_threads: int = 16,
    ) -> None:
        self.spec = spec
        self.root = spec.root
        self.nodes = nodes
        self.routing_injection = routing_injection
        self.metrics = metrics
        self.plans = {n.name: _plan(n, nodes[n.name]) for n in spec.root.walk()}
        if tracing.ACTIVE is not None:  # each node's call in a span of its own
            self._call = self._call_traced  # type: ignore[method-assign]
        fans_out = any(len(n.children) > 1 for n in spec.root.walk())
        self.fanout = (
            ThreadPoolExecutor(fanout_threads, thread_name_prefix="graph-fanout")
            if fans_out
            else None
        )

    # ------------------------------------------------------------------ predictions

    def predict(self, msg: Message, family: Family, puid: str) -> Reply:
        meta = dict(msg.meta or {})
        meta["puid"] = puid
        routing: dict[str, int] = {}
        out = self._predict(
            self.root, Reply(str(msg.kind), msg.features, msg.names, meta), family, routing
        )
        meta_out = dict(out.meta or {})
        meta_out.setdefault("puid", puid)
        if self.routing_injection:
            meta_out["routing"] = routing
        return Reply(out.kind, out.value, out.names, meta_out)

    def _predict(self, node: NodeSpec, m: Reply, family: Family, routing: dict[str, int]) -> Reply:
        plan = self.plans[node.name]
        if plan.input_op is not None:
            m = self._call(node, plan.input_op, m, family)
            routing[node.name] = -1
        children = node.children
        if children:
            route = self._route(node, plan, m, family)
            routing[node.name] = route
            if route != -2:
                if route == -1 and len(children) == 1:  # a chain: no fan-out to set up
                    outputs = [self._predict(children[0], m, family, routing)]
                elif route == -1:
                    outputs = self._all(children, m, family, routing)
                elif 0 <= route < len(children):
                    outputs = [self._predict(children[route], m, family, routing)]
                else:
                    raise RouteOutOfRange(
                        f"router {node.name!r} returned route {route}, but it has "
                        f"{len(children)} children (valid routes: -2, -1, 0 to "
                        f"{len(children) - 1})"
                    )
                if plan.aggregates:
                    m = self._call(node, "aggregate", outputs, family)
                else:
                    m = outputs[0]
        if plan.output_op:
            m = self._call(node, "transform_output", m, family)
        return m

    def _route(self, node: NodeSpec, plan: _Plan, m: Reply, family: Family) -> int:
        if plan.abtest is not None:
            return 0 if random.random() < plan.abtest else 1
        if not plan.routes:
            return -1
        answer = self._call(node, "route", m, family)
        try:
            value = np.asarray(answer.value).ravel()[0]
            return int(value)
        except (IndexError, TypeError, ValueError):
            raise RouteOutOfRange(
                f"router {node.name!r} answered {answer.value!r}, which is not a route"
            ) from None

    def _all(
        self, children: list[NodeSpec], m: Reply, family: Family, routing: dict[str, int]
    ) -> list[Reply]:
        """Every child on the same message, concurrently; on failures the child with the
        lowest index gives the error, as in the orchestrator."""
        if len(children) == 1 or self.fanout is None:
            return [self._predict(c, m, family, routing) for c in children]
        submit: Any = self.fanout.submit
        if tracing.ACTIVE is not None:  # each child's spans under this request's
            bind = tracing.ACTIVE.bind
            futures: list[Future[Reply]] = [
                submit(bind(functools.partial(self._predict, c, m, family, routing)))
                for c in children[1:]
            ]
        else:
            futures = [submit(self._predict, c, m, family, routing) for c in children[1:]]
        results: list[Any] = []
        try:
            results.append(self._predict(children[0], m, family, routing))
        except Exception as exc:
            results.append(exc)
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:
                results.append(exc)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def _call(self, node: NodeSpec, op: str, payload: Any, family: Family) -> Reply:
        """One operation of one node, timed for the node's metrics. With tracing on,
        `_call_traced` takes its place (decided once: tracing starts before a worker
        builds its graph), so that a hop without it pays no test and no extra call."""
        impl: Any = self.nodes[node.name]
        metrics = self.metrics
        if metrics is None:
            return impl.call(op, payload, family)
        started = time.perf_counter()
        try:
            answer = impl.call(op, payload, family)
        except NodeFailed as exc:
            metrics.node_call(node.name, op, str(exc.status), time.perf_counter() - started)
            raise
        except Exception as exc:
            code = str(describe(exc).http_status)
            metrics.node_call(node.name, op, code, time.perf_counter() - started)
            raise
        metrics.node_call(node.name, op, "200", time.perf_counter() - started)
        return answer

    def _call_traced(self, node: NodeSpec, op: str, payload: Any, family: Family) -> Reply:
        assert tracing.ACTIVE is not None
        with tracing.ACTIVE.node_span(node.name, op, self.nodes[node.name]):
            return Graph._call(self, node, op, payload, family)

    # ------------------------------------------------------------------ feedback

    def feedback(self, feedback: Any, family: Family) -> Reply | None:
        """Send `feedback` (a protobuf Feedback) down the routes its response took; the
        root's answer, or None when the root itself takes no feedback."""
        routing = dict(feedback.response.meta.routing)
        return self._feedback(self.root, feedback, family, routing)

    def _feedback(
        self, node: NodeSpec, feedback: Any, family: Family, routing: dict[str, int]
    ) -> Reply | None:
        children = node.children
        if children:
            route = routing.get(node.name, -1)
            if route == -1:
                chosen = children
            elif 0 <= route < len(children):
                chosen = [children[route]]
            elif route == -2:
                chosen = []
            else:
                raise RouteOutOfRange(
                    f"feedback routes node {node.name!r} to child {route}, but it has "
                    f"{len(children)} children"
                )
            for child in chosen:
                self._feedback(child, feedback, family, routing)
        if self.plans[node.name].feedback:
            return self._call(node, "send_feedback", feedback, family)
        return None

    # ------------------------------------------------------------------ metadata

    def metadata(self) -> dict[str, Any]:
        """The graph's metadata: every node's, and the graph's inputs and outputs."""
        inputs, outputs = self._io(self.root)
        return {
            "name": self.spec.name,
            "models": {name: _in_graph(node.metadata) for name, node in self.nodes.items()},
            "graphinputs": inputs,
            "graphoutputs": outputs,
        }

    def _io(self, node: NodeSpec) -> tuple[Any, Any]:
        own = self.nodes[node.name].metadata or {}
        own_in, own_out = own.get("inputs", []), own.get("outputs", [])
        if not node.children:
            return own_in, own_out
        child_in, child_out = self._io(node.children[0])
        if node.type in ("MODEL", "TRANSFORMER"):
            return own_in, child_out
        if node.type in ("OUTPUT_TRANSFORMER", "COMBINER"):
            return child_in, own_out
        return child_in, child_out

    def close(self) -> None:
        if self.fanout is not None:
            self.fanout.shutdown(wait=False, cancel_futures=True)
        for node in self.nodes.values():
            node.close()


def _in_graph(meta: dict[str, Any] | None) -> dict[str, Any]:
    """A node's metadata as the graph's metadata lists it: the orchestrator leaves out an
    empty name, platform, versions list or custom map (a node's own metadata keeps
    them), while empty inputs and outputs stay."""
    out = dict(meta or {})
    for key in ("name", "platform", "versions", "custom"):
        if key in out and not out[key]:
            del out[key]
    return out
