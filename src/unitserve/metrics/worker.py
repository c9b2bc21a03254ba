"""Prometheus metrics across worker processes.

Workers record into prometheus_client's multiprocess files (an mmap per
process: no inter-process round trip on the request path); the supervisor
reads every file when scraped and answers one exposition with each metric
family once.

Series stay bounded however often workers are replaced: the ``worker_id``
label is the worker's *slot* (0..N-1), not its pid, and when a worker dies the
supervisor folds its counters and histograms into an archive file (so totals
keep growing, never counted twice) and drops its live gauges.

Metric names and labels:

* the user's metrics (spec §11.2): COUNTER → ``<key>_total``, GAUGE → ``<key>``,
  TIMER → a histogram ``<key>`` in seconds with Seldon's 50 log-spaced buckets;
  labels: the user's tags, ``method``, the deployment labels of
  `deployment_labels` and ``worker_id``;
* feedback: ``seldon_api_model_feedback_total`` and
  ``seldon_api_model_feedback_reward_total`` (Seldon's);
* ours: ``unitserve_requests_total{operation,protocol,code,worker_id}``,
  ``unitserve_request_duration_seconds{operation,protocol,worker_id}``,
  ``unitserve_requests_in_flight{protocol,worker_id}``,
  ``unitserve_batch_size{operation,worker_id}`` and
  ``unitserve_batch_wait_seconds{operation,worker_id}`` (adaptive batching),
  ``unitserve_worker_info{worker_id,pid,<deployment labels>}`` and, from the supervisor,
  ``unitserve_worker_restarts_total{reason}``.
"""

from __future__ import annotations

import bisect
import copy
import os
import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram, values

from unitserve.engine import MetricsRecorder
from unitserve.errors import BadMetric
from unitserve.metadata import split_image
from unitserve.operations import SEND_FEEDBACK, V2_PROTOCOL
from unitserve.settings import Settings
from unitserve.user_metrics import COUNTER, GAUGE, TIMER

# Seldon's value for a deployment label whose environment variable is unset.
UNSET_LABEL = "NOT_IMPLEMENTED"
# Seldon's TIMER buckets: 50 log-spaced upper bounds from 1 ms to 30 s (+Inf added).
SELDON_BUCKETS = tuple(float(b) for b in np.logspace(-3, np.log10(30), 50))
REQUEST_BUCKETS = (
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
    2.5,
    5.0,
    10.0,
)
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
RESERVED_PREFIXES = ("unitserve_", "seldon_api_")


def deployment_labels(settings: Settings) -> dict[str, str]:
    """The labels Seldon puts on every custom metric, from the operator's env vars."""
    image, version = split_image(settings.unit_image or f"{UNSET_LABEL}:{UNSET_LABEL}")
    deployment = settings.deployment_id
    predictor_version = settings.predictor_labels.get("version") or UNSET_LABEL
    return {
        "deployment_name": deployment,
        "seldon_deployment_name": deployment,
        "model_name": settings.unit_id or UNSET_LABEL,
        "model_image": image or UNSET_LABEL,
        "image_name": image or UNSET_LABEL,
        "model_version": version or UNSET_LABEL,
        "image_version": version or UNSET_LABEL,
        "predictor_name": settings.predictor_id,
        "predictor_version": str(predictor_version),
    }


def use_directory(directory: str) -> None:
    """Make this process record into `directory` (call in each worker after fork)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.MultiProcessValue()


class WorkerMetrics(MetricsRecorder):
    """Everything one worker records: user metrics, feedback, and request metrics."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.worker_id = worker_id
        self.base = {**deployment_labels(settings), "worker_id": worker_id}
        self._families: dict[tuple[str, str, tuple[str, ...]], Any] = {}
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reward: Any = None
        self._node_families: tuple[Any, Any] | None = None
        self._batch_families: tuple[Any, Any] | None = None
        self._requests = Counter(
            "unitserve_requests",
            "Requests answered, by operation, protocol and status code.",
            ["operation", "protocol", "code", "worker_id"],
            registry=None,
        )
        self._duration = Histogram(
            "unitserve_request_duration_seconds",
            "Time to answer a request, in seconds.",
            ["operation", "protocol", "worker_id"],
            buckets=REQUEST_BUCKETS,
            registry=None,
        )
        self._in_flight = Gauge(
            "unitserve_requests_in_flight",
            "Requests being answered.",
            ["protocol", "worker_id"],
            multiprocess_mode="livesum",
            registry=None,
        )
        # Request metrics are tallied in plain Python on the event loop and written to
        # the shared files by `flush` (a few times a second): a request then costs a
        # couple of dict updates instead of five locked mmap writes.
        self._counts: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latencies: dict[tuple[str, str], list[float]] = {}
        # "v2": the Open Inference Protocol, REST and gRPC alike.
        self._in_flight_now = {"rest": 0, "grpc": 0, V2_PROTOCOL: 0}
        self._tally_lock = threading.Lock()
        self._in_flight_written: dict[str, int] = {}
        # A graph's per-node calls (node, operation, code, seconds), waiting for `flush`
        # (see `node_call`).
        self._node_pending: deque[tuple[str, str, str, float]] = deque()
        for protocol in self._in_flight_now:
            self._in_flight.labels(protocol, worker_id).set(0)
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

    def for_unit(self, unit_id: str, image: str | None) -> WorkerMetrics:
        """The same worker's recorder for one node of a graph: its user metrics and
        rewards carry the node's name (``model_name``) and image, as each node's own
        pod would label them."""
        clone = copy.copy(self)
        name, version = split_image(image or f"{UNSET_LABEL}:{UNSET_LABEL}")
        clone.base = {
            **self.base,
            "model_name": unit_id,
            "model_image": name or UNSET_LABEL,
            "image_name": name or UNSET_LABEL,
            "model_version": version or UNSET_LABEL,
            "image_version": version or UNSET_LABEL,
        }
        clone._reward = None
        return clone

    def batch_sent(self, operation: str, rows: int, waits: Sequence[float]) -> None:
        """One batched call (adaptive batching): its rows, and each request's wait."""
        families = self._batch_families
        if families is None:
            with self._lock:
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

    def node_call(self, node: str, operation: str, code: str, seconds: float) -> None:
        """One call of a graph's node: ``unitserve_graph_node_duration_seconds`` and, for
        an error, ``unitserve_graph_node_errors_total``, written by `flush`. A chain
        makes a few of these per request, so a call only queues its observation: a
        deque's append is safe from any thread without a lock, which would cost more
        here than the tally itself."""
        self._node_pending.append((node, operation, code, seconds))

    def _flush_nodes(self) -> None:
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
            _add_observations(duration.labels(node, operation, self.worker_id), tally)
        for (node, operation, code), n in errors.items():
            counter.labels(node, operation, code, self.worker_id).inc(n)

    def _node_metric_families(self) -> tuple[Any, Any]:
        with self._lock:
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

    # ------------------------------------------------------------------ user metrics

    def record(self, metrics: list[dict[str, Any]], method: str) -> None:
        prepared = [self._prepare(m, method) for m in metrics]  # all valid, or none recorded
        for kind, child, value in prepared:
            if kind == COUNTER:
                child.inc(value)
            elif kind == GAUGE:
                child.set(value)
            else:
                child.observe(value / 1000.0)  # TIMER values are milliseconds

    def record_feedback(self, reward: float) -> None:
        labels = {"method": SEND_FEEDBACK.label, **self.base}
        self._family(COUNTER, "seldon_api_model_feedback", tuple(sorted(labels))).labels(
            **labels
        ).inc(1)
        with self._lock:
            if self._reward is None:
                # Rewards may be negative, which a Counter refuses: a Gauge summed over
                # the workers (dead ones included), under Seldon's counter name.
                self._reward = Gauge(
                    "seldon_api_model_feedback_reward_total",
                    "",
                    sorted(labels),
                    registry=None,
                    multiprocess_mode="sum",
                ).labels(**labels)
        self._reward.inc(reward)

    def _prepare(self, metric: dict[str, Any], method: str) -> tuple[str, Any, float]:
        kind, key, value = metric["type"], metric["key"], float(metric["value"])
        if key.startswith(RESERVED_PREFIXES):
            raise BadMetric(
                f"Bad metric created during request: key {key!r} uses a reserved "
                f"prefix ({', '.join(RESERVED_PREFIXES)})"
            )
        if kind == COUNTER and value < 0:
            raise BadMetric(
                f"Bad metric created during request: COUNTER {key!r} cannot "
                f"decrease (value {value})"
            )
        known = self._kinds.setdefault(key, kind)
        if known != kind:
            raise BadMetric(
                f"Bad metric created during request: {key!r} is a {known}, not a {kind}"
            )
        tags = metric.get("tags") or {}
        labels = {**{str(k): str(v) for k, v in tags.items()}, "method": method, **self.base}
        child = self._family(kind, key, tuple(sorted(labels))).labels(**labels)
        return kind, child, value

    def _family(self, kind: str, key: str, labelnames: tuple[str, ...]) -> Any:
        index = (kind, key, labelnames)
        family = self._families.get(index)
        if family is None:
            with self._lock:
                family = self._families.get(index)
                if family is None:
                    if kind == COUNTER:
                        family = Counter(key, "", labelnames, registry=None)
                    elif kind == GAUGE:
                        family = Gauge(
                            key, "", labelnames, registry=None, multiprocess_mode="livemostrecent"
                        )
                    elif kind == TIMER:
                        family = Histogram(
                            key, "", labelnames, registry=None, buckets=SELDON_BUCKETS
                        )
                    else:
                        raise BadMetric(f"Bad metric created during request: type {kind!r}")
                    self._families[index] = family
        return family

    # ------------------------------------------------------------------ request metrics

    # The tallies are updated from the event loop (REST) and the gRPC threads.

    def request_started(self, protocol: str) -> None:
        with self._tally_lock:
            self._in_flight_now[protocol] += 1

    def request_finished(self, operation: str, protocol: str, code: str, seconds: float) -> None:
        bucket = bisect.bisect_left(REQUEST_BUCKETS, seconds)  # len(REQUEST_BUCKETS): +Inf
        with self._tally_lock:
            self._in_flight_now[protocol] -= 1
            self._counts[(operation, protocol, code)] += 1
            tally = self._latencies.get((operation, protocol))
            if tally is None:
                tally = [0.0] * (len(REQUEST_BUCKETS) + 2)
                self._latencies[(operation, protocol)] = tally
            tally[bucket] += 1
            tally[-1] += seconds  # the sum

    def flush(self) -> None:
        """Write the tallies since the last flush to this worker's metric files."""
        worker = self.worker_id
        with self._tally_lock:
            counts, self._counts = self._counts, defaultdict(int)
            latencies, self._latencies = self._latencies, {}
            in_flight = dict(self._in_flight_now)
        for (operation, protocol, code), n in counts.items():
            self._requests.labels(operation, protocol, code, worker).inc(n)
        for (operation, protocol), tally in latencies.items():
            _add_observations(self._duration.labels(operation, protocol, worker), tally)
        for protocol, value in in_flight.items():
            if self._in_flight_written.get(protocol) != value:
                self._in_flight.labels(protocol, worker).set(value)
                self._in_flight_written[protocol] = value
        self._flush_nodes()


def _add_observations(child: Any, tally: list[float]) -> None:
    """Add a tally (a count per bucket of REQUEST_BUCKETS and +Inf, then the sum) to a
    histogram's child: prometheus_client has no "add n observations", so its buckets
    are fed directly."""
    for i, seen in enumerate(tally[:-1]):
        if seen:
            child._buckets[i].inc(seen)
    child._sum.inc(tally[-1])


class NoRequestMetrics:
    """For a server without a metrics directory (tests of single pieces)."""

    def flush(self) -> None:
        pass

    def request_started(self, protocol: str) -> None:
        pass

    def request_finished(self, operation: str, protocol: str, code: str, seconds: float) -> None:
        pass
