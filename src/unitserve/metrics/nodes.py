"""A graph's per-node metrics: ``unitserve_graph_node_duration_seconds{node,operation,
worker_id}`` and ``unitserve_graph_node_errors_total{node,operation,code,worker_id}``."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict, deque
from typing import Any

from prometheus_client import Counter, Histogram

from unitserve.metrics.requests import REQUEST_BUCKETS, add_observations


class NodeMetrics:
    """One worker's record of its graph's node calls."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._node_lock = threading.Lock()
        self._node_families: tuple[Any, Any] | None = None
        # A graph's per-node calls (node, operation, code, seconds), waiting for `flush`
        # (see `node_call`).
        self._node_pending: deque[tuple[str, str, str, float]] = deque()

    def node_call(self, node: str, operation: str, code: str, seconds: float) -> None:
        """One call of a graph's node: ``unitserve_graph_node_duration_seconds`` and, for
        an error, ``unitserve_graph_node_errors_total``, written by `flush`. A chain
        makes a few of these per request, so a call only queues its observation: a
        deque's append is safe from any thread without a lock, which would cost more
        here than the tally itself."""
        self._node_pending.append((node, operation, code, seconds))

    def flush_nodes(self) -> None:
        # A node's recorder (`for_unit`) shares the queue: one flush writes every node's.
        pending = self._node_pending
        latencies: dict[tuple[str, str], list[float]] = {}
        errors: dict[tuple[str, str, str], int] = defaultdict(int)
        # What was queued when the flush began; later calls wait for the next flush.
        for _ in range(len(pending)):
            try:
                node, operation, code, seconds = pending.popleft()
            except IndexError:  # another flush took them
                break
            tally = latencies.get((node, operation))
            if tally is None:
                tally = [0.0] * (len(REQUEST_BUCKETS) + 2)
                latencies[(node, operation)] = tally
            tally[bisect.bisect_left(REQUEST_BUCKETS, seconds)] += 1
            tally[-1] += seconds
            if code != "200":
                errors[(node, operation, code)] += 1
        if not latencies:
            return
        duration, counter = self._node_metric_families()
        for (node, operation), tally in latencies.items():
            add_observations(duration.labels(node, operation, self.worker_id), tally)
        for (node, operation, code), n in errors.items():
            counter.labels(node, operation, code, self.worker_id).inc(n)

    def _node_metric_families(self) -> tuple[Any, Any]:
        with self._node_lock:
            if self._node_families is None:
                self._node_families = (
                    Histogram(
                        "unitserve_graph_node_duration_seconds",
                        "Time a graph's node took to answer, in seconds.",
                        ["node", "operation", "worker_id"],
                        buckets=REQUEST_BUCKETS,
                        registry=None,
                    ),
                    Counter(
                        "unitserve_graph_node_errors",
                        "Calls of a graph's node that answered an error, by status.",
                        ["node", "operation", "code", "worker_id"],
                        registry=None,
                    ),
                )
            return self._node_families
