"""Per-request bookkeeping shared by both transports: request metrics, the access
log, and counting requests for ``--max-requests``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

access_log = logging.getLogger("unitserve.access")


class RequestMetrics(Protocol):
    def request_started(self, protocol: str) -> None: ...

    def request_finished(
        self, operation: str, protocol: str, code: str, seconds: float
    ) -> None: ...


class RequestAccounting:
    """Told when each request starts and finishes: records the request metrics, writes
    the access log line and, after ``--max-requests`` requests, calls `on_limit`."""

    def __init__(
        self,
        metrics: RequestMetrics,
        access_log_enabled: bool = False,
        max_requests: int = 0,
        on_limit: Callable[[], None] | None = None,
    ) -> None:
        self.metrics = metrics
        self.access_log_enabled = access_log_enabled
        self.remaining = max_requests or -1
        self.on_limit = on_limit
        self._lock = threading.Lock()  # requests finish on the loop and on gRPC threads

    def started(self, protocol: str) -> None:
        self.metrics.request_started(protocol)

    def finished(
        self,
        operation: str,
        protocol: str,
        code: str,
        seconds: float,
        what: str,
        peer: str | Callable[[], str],
    ) -> None:
        """Record a finished request; `peer` may be a callable, called only for the
        access log (finding it costs a little on every request otherwise)."""
        self.metrics.request_finished(operation, protocol, code, seconds)
        if self.access_log_enabled:
            client = peer() if callable(peer) else peer
            access_log.info("%s %s %s %.2fms", client, what, code, seconds * 1000)
        if self.remaining > 0:
            with self._lock:
                self.remaining -= 1
                reached = self.remaining == 0
            if reached and self.on_limit is not None:
                self.on_limit()
