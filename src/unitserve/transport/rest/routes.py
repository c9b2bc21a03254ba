"""The REST routes: what a path is (its kind, the methods it takes, the model it
names) for the Seldon routes (a component's and a deployment's), the Open Inference
Protocol's and the docs.

A route's kind is an operation name (`unitserve.operations`) or one of the server's
own (ping, live, ready, metadata, openapi, docs, node_metadata, node_status): it is
also the requests' metric label.
"""

from __future__ import annotations

from dataclasses import dataclass

from unitserve.operations import OPERATIONS

GET = frozenset({"GET"})
POST = frozenset({"POST"})


@dataclass(frozen=True, slots=True)
class Route:
    kind: str
    methods: frozenset[str]
    model: str | None = None  # the Open Inference Protocol's model name and version
    version: str | None = None
    preflight: bool = True  # answers OPTIONS (CORS preflight); the docs page does not

    @property
    def allow(self) -> bytes:
        """The ``Allow`` header: the methods, HEAD with GET, OPTIONS when answered."""
        names = set(self.methods) | ({"OPTIONS"} if self.preflight else set())
        if "GET" in names:
            names.add("HEAD")
        return ", ".join(sorted(names)).encode()

    def accepts(self, method: str) -> bool:
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)


ROUTES: dict[str, Route] = {
    path: Route(op.name, methods) for op in OPERATIONS.values() for path, methods in op.rest
}
# A deployment (a graph) answers the orchestrator's external API only (the component
# paths such as /predict belong to its members, the graph's nodes), plus one member's
# metadata or status by name.
DEPLOYMENT_PATHS = (
    "/api/v1.0/predictions",
    "/api/v0.1/predictions",
    "/api/v1.0/feedback",
    "/api/v0.1/feedback",
    "/api/v1.0/metadata",
    "/live",
    "/ready",
    "/seldon.json",
)
DEPLOYMENT_ROUTES: dict[str, Route] = {path: ROUTES[path] for path in DEPLOYMENT_PATHS}
# The kinds keep the names of the graph's nodes: they are the requests' metric labels.
MEMBER_PREFIXES = {
    "/api/v1.0/metadata/": Route("node_metadata", GET),
    "/api/v1.0/status/": Route("node_status", GET),
}
DOCS_ROUTE = Route("docs", GET, preflight=False)


def member_route(path: str) -> Route | None:
    """A deployment's ``/api/v1.0/metadata/<member>`` or ``/api/v1.0/status/<member>``."""
    for prefix, route in MEMBER_PREFIXES.items():
        if path.startswith(prefix) and "/" not in path[len(prefix) :] and len(path) > len(prefix):
            return route
    return None
