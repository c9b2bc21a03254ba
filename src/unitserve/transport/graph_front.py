"""What the transports answer for a graph beyond its operations (`unitserve graph`).

A graph's worker answers the orchestrator's API: predictions and feedback go through
the invoker as for one model; the graph's metadata, one node's metadata and one node's
health status come from here. A plain worker has none (None where it is asked for).
"""

from __future__ import annotations

from typing import Any, Protocol


class GraphFront(Protocol):
    def graph_metadata(self) -> dict[str, Any]: ...

    def node_metadata(self, name: str) -> dict[str, Any] | None:
        """The node's metadata; None if the graph has no node of that name."""
        ...

    async def node_status(self, name: str) -> tuple[int, bytes]:
        """The node's health status answer (status, JSON body)."""
        ...

    async def not_ready(self) -> str | None:
        """Why a node of the graph is not ready (a remote node that does not answer its
        readiness probe), or None when every node is."""
        ...
