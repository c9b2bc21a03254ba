"""Adaptive batching's metrics: ``unitserve_batch_size{operation,worker_id}`` (rows of
each batched call) and ``unitserve_batch_wait_seconds{operation,worker_id}`` (how long
each request waited for its batch). Created on the first batch: a server that never
batches shows none."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import Histogram

# Rows of one batched call: powers of two up to the largest sensible --max-batch-size.
BATCH_SIZE_BUCKETS = tuple(float(1 << i) for i in range(11))
# How long a request waited in a batch before its call was sent.
BATCH_WAIT_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


class BatchMetrics:
    """Where a worker's batcher records its batches (a `BatchObserver`)."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._batch_lock = threading.Lock()
        self._batch_families: tuple[Any, Any] | None = None

    def batch_sent(self, operation: str, rows: int, waits: Sequence[float]) -> None:
        """One batched call (adaptive batching): its rows, and each request's wait."""
        families = self._batch_families
        if families is None:
            with self._batch_lock:
                if self._batch_families is None:
                    self._batch_families = (
                        Histogram(
                            "unitserve_batch_size",
                            "Rows of each batched user call (adaptive batching).",
                            ["operation", "worker_id"],
                            buckets=BATCH_SIZE_BUCKETS,
                            registry=None,
                        ),
                        Histogram(
                            "unitserve_batch_wait_seconds",
                            "Time a request waited for its batch to be sent, in seconds.",
                            ["operation", "worker_id"],
                            buckets=BATCH_WAIT_BUCKETS,
                            registry=None,
                        ),
                    )
                families = self._batch_families
        size, wait = families
        size.labels(operation, self.worker_id).observe(rows)
        child = wait.labels(operation, self.worker_id)
        for seconds in waits:
            child.observe(seconds)
