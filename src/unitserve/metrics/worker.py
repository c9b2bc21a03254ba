"""Prometheus metrics across worker processes: what one worker records.

Workers record into prometheus_client's multiprocess files (an mmap per
process: no inter-process round trip on the request path); the supervisor
reads every file when scraped and answers one exposition with each metric
family once.

Series stay bounded however often workers are replaced: the ``worker_id``
label is the worker's *slot* (0..N-1), not its pid, and when a worker dies the
supervisor folds its counters and histograms into an archive file (so totals
keep growing, never counted twice) and drops its live gauges.

Series also stay bounded however many models come and go: the supervisor's exposition
leaves out the series of models no live worker holds (see ``supervisor``).

Metric names and labels (each role in a module of its own: ``user``, ``requests``,
``batches``, ``nodes``, ``models``):

* the user's metrics (spec §11.2): COUNTER → ``<key>_total``, GAUGE → ``<key>``,
  TIMER → a histogram ``<key>`` in seconds with Seldon's 50 log-spaced buckets;
  labels: the user's tags, ``method``, the deployment labels of
  `deployment_labels` and ``worker_id``;
* feedback: ``seldon_api_model_feedback_total`` and
  ``seldon_api_model_feedback_reward_total`` (Seldon's);
* ours: ``unitserve_requests_total{operation,protocol,code,model,worker_id}``,
  ``unitserve_request_duration_seconds{operation,protocol,model,worker_id}``,
  ``unitserve_requests_in_flight{protocol,worker_id}``,
  ``unitserve_batch_size{operation,model,worker_id}`` and
  ``unitserve_batch_wait_seconds{operation,model,worker_id}`` (adaptive batching),
  ``unitserve_model_ready{model,version,worker_id}``,
  ``unitserve_worker_info{worker_id,pid,<deployment labels>}`` and, from the supervisor,
  ``unitserve_worker_restarts_total{reason}``.
"""

from __future__ import annotations

import os

from prometheus_client import Gauge, values

from unitserve.metrics.batches import BatchMetrics
from unitserve.metrics.models import ModelMetrics
from unitserve.metrics.nodes import NodeMetrics
from unitserve.metrics.requests import REQUEST_BUCKETS, NoRequestMetrics, RequestMetrics
from unitserve.metrics.user import (
    SELDON_BUCKETS,
    UNSET_LABEL,
    UserMetrics,
    deployment_labels,
)
from unitserve.settings import Settings

__all__ = [
    "REQUEST_BUCKETS",
    "SELDON_BUCKETS",
    "UNSET_LABEL",
    "NoRequestMetrics",
    "WorkerMetrics",
    "deployment_labels",
    "use_directory",
]


def use_directory(directory: str) -> None:
    """Make this process record into `directory` (call in each worker after fork)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()


class WorkerMetrics(UserMetrics, RequestMetrics, BatchMetrics, NodeMetrics, ModelMetrics):
    """Everything one worker records, in its five roles: the engine's recorder of user
    metrics, the transports' request metrics, the batchers' observer, a graph's node
    metrics and the registry's hooks (which models serve). One object, so that a node's
    or a model's recorder (`for_unit`, `for_model`) shares the rest."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        UserMetrics.__init__(self, settings, worker_id)
        RequestMetrics.__init__(self, worker_id)
        BatchMetrics.__init__(self, worker_id)
        NodeMetrics.__init__(self, worker_id)
        ModelMetrics.__init__(self, worker_id)
        # 'liveall' keeps prometheus_client's own `pid` label: which process serves the slot.
        # The deployment labels ride along so that a dashboard can pick a deployment or a
        # model and find its scrape targets, although the request metrics do not carry them.
        info = Gauge(
            "unitserve_worker_info",
            "The process serving each worker slot (pid label) and its deployment labels.",
            list(self.base),
            multiprocess_mode="liveall",
            registry=None,
        )
        info.labels(**self.base).set(1)

    def flush(self) -> None:
        """Write what was tallied since the last flush to this worker's metric files."""
        RequestMetrics.flush(self)
        self.flush_nodes()
