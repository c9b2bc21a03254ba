"""Adaptive batching's metrics: ``unitserve_batch_size{operation,model,worker_id}`` (rows
of each batched call) and ``unitserve_batch_wait_seconds{operation,model,worker_id}``
(how long each request waited for its batch). A server that never batches shows none."""

from __future__ import annotations

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
    """Where a worker's batchers record their batches: `batches_of` gives each
    served model's batcher its observer (a `BatchObserver`), which labels the model."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        # No series until a first batch: a family with labels writes nothing before.
        self._batch_size = Histogram(
            "unitserve_batch_size",
            "Rows of each batched user call (adaptive batching).",
            ["operation", "model", "worker_id"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=None,
        )
        self._batch_wait = Histogram(
            "unitserve_batch_wait_seconds",
            "Time a request waited for its batch to be sent, in seconds.",
            ["operation", "model", "worker_id"],
            buckets=BATCH_WAIT_BUCKETS,
            registry=None,
        )

    def batches_of(self, name: str) -> ModelBatches:
        """The observer of one served model's batches."""
        return ModelBatches(self, name)

    def batch_sent(self, operation: str, rows: int, waits: Sequence[float]) -> None:
        """A batch of no particular model (the model label empty)."""
        self._record("", operation, rows, waits)

    def _record(self, model: str, operation: str, rows: int, waits: Sequence[float]) -> None:
        self._batch_size.labels(operation, model, self.worker_id).observe(rows)
        child: Any = self._batch_wait.labels(operation, model, self.worker_id)
        for seconds in waits:
            child.observe(seconds)


class ModelBatches:
    """One served model's batches (a `BatchObserver`), recorded under its name."""

    __slots__ = ("_metrics", "model")

    def __init__(self, metrics: BatchMetrics, model: str) -> None:
        self._metrics = metrics
        self.model = model

    def batch_sent(self, operation: str, rows: int, waits: Sequence[float]) -> None:
        """One batched call (adaptive batching): its rows, and each request's wait."""
        self._metrics._record(self.model, operation, rows, waits)
