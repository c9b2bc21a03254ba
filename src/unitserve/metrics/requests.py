"""Request metrics: ``unitserve_requests_total{operation,protocol,code,model,worker_id}``,
``unitserve_request_duration_seconds{operation,protocol,model,worker_id}`` and
``unitserve_requests_in_flight{protocol,worker_id}``.

``model`` is the name of the served model that answered, or "" for a request that
reached none (health, server metadata, a name the server does not serve): the
transports decide, so that a client cannot make series up by naming models.

They are tallied in plain Python on the event loop (and the gRPC threads) and written
to the shared files by `flush`, a few times a second: a request then costs a couple of
dict updates instead of five locked mmap writes.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from unitserve.operations import V2_PROTOCOL

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


class RequestMetrics:
    """One worker's request counts, latencies and requests in flight."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        self._requests = Counter(
            "unitserve_requests",
            "Requests answered, by operation, protocol, status code and model.",
            ["operation", "protocol", "code", "model", "worker_id"],
            registry=None,
        )
        self._duration = Histogram(
            "unitserve_request_duration_seconds",
            "Time to answer a request, in seconds.",
            ["operation", "protocol", "model", "worker_id"],
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
        self._counts: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self._latencies: dict[tuple[str, str, str], list[float]] = {}
        # "v2": the Open Inference Protocol, REST and gRPC alike.
        self._in_flight_now = {"rest": 0, "grpc": 0, V2_PROTOCOL: 0}
        self._tally_lock = threading.Lock()
        self._in_flight_written: dict[str, int] = {}
        for protocol in self._in_flight_now:
            self._in_flight.labels(protocol, worker_id).set(0)

    # The tallies are updated from the event loop (REST) and the gRPC threads.

    def request_started(self, protocol: str) -> None:
        with self._tally_lock:
            self._in_flight_now[protocol] += 1

    def request_finished(
        self, operation: str, protocol: str, code: str, seconds: float, model: str
    ) -> None:
        bucket = bisect.bisect_left(REQUEST_BUCKETS, seconds)  # len(REQUEST_BUCKETS): +Inf
        with self._tally_lock:
            self._in_flight_now[protocol] -= 1
            self._counts[(operation, protocol, code, model)] += 1
            tally = self._latencies.get((operation, protocol, model))
            if tally is None:
                tally = [0.0] * (len(REQUEST_BUCKETS) + 2)
                self._latencies[(operation, protocol, model)] = tally
            tally[bucket] += 1
            tally[-1] += seconds  # the sum

    def flush(self) -> None:
        """Write the tallies since the last flush to this worker's metric files."""
        worker = self.worker_id
        with self._tally_lock:
            counts, self._counts = self._counts, defaultdict(int)
            latencies, self._latencies = self._latencies, {}
            in_flight = dict(self._in_flight_now)
        for (operation, protocol, code, model), n in counts.items():
            self._requests.labels(operation, protocol, code, model, worker).inc(n)
        for (operation, protocol, model), tally in latencies.items():
            add_observations(self._duration.labels(operation, protocol, model, worker), tally)
        for protocol, value in in_flight.items():
            if self._in_flight_written.get(protocol) != value:
                self._in_flight.labels(protocol, worker).set(value)
                self._in_flight_written[protocol] = value


def add_observations(child: Any, tally: list[float]) -> None:
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

    def request_finished(
        self, operation: str, protocol: str, code: str, seconds: float, model: str
    ) -> None:
        pass
