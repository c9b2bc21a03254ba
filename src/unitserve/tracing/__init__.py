"""OpenTelemetry tracing, on with ``--tracing`` / ``TRACING=1`` and free when off.

When off (the default) nothing here imports OpenTelemetry and `ACTIVE` stays None:
the transports and the invoker are built exactly as without tracing, and the few
places that run per request test ``ACTIVE is not None`` and nothing else.

When on, `start` builds one `Tracing` per worker (after the fork: the exporter's
thread does not survive one) and the worker wraps what it builds:

- the REST app in `asgi` (one SERVER span per request, HTTP semantic conventions),
- each gRPC method handler in `grpc_handler` (one SERVER span per RPC, RPC
  conventions),
- the user methods in `traced_methods` (a child span per call: ``predict``, ...),
- the codec an operation is given in `TracedCodec` (``decode`` and ``encode``
  child spans), and the reading of the request's bytes in a ``parse`` span.

The W3C ``traceparent`` / ``tracestate`` of an HTTP request or of gRPC metadata
is the parent of the server span; one that does not parse (or is longer than any
valid one) is ignored, and the request starts a new trace.

The OpenTelemetry SDK configures itself from its standard environment variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, ...).
Spans leave through a batching processor with a bounded queue, on a thread of its
own: a slow or unreachable collector never makes a request wait, and spans that
find the queue full are dropped and counted (`Tracing.dropped`, logged at exit).

The package: `jaeger` maps Seldon's ``JAEGER_*`` variables, `sdk` checks for and sets
up the OpenTelemetry SDK (exporter, counting processor), `tracer` holds `Tracing`
(spans and trace context) and `wrappers` the spans around requests, RPCs and calls.
"""

from __future__ import annotations

import os

from unitserve.tracing.jaeger import jaeger_environment
from unitserve.tracing.sdk import check
from unitserve.tracing.tracer import Tracing
from unitserve.tracing.wrappers import TracedCodec, TracedRequest, http_route

__all__ = [
    "ACTIVE",
    "TracedCodec",
    "TracedRequest",
    "Tracing",
    "check",
    "current_trace_id",
    "http_route",
    "jaeger_environment",
    "start",
    "stop",
]

#: The worker's tracing when on; None when off (the only thing the hot path looks at).
ACTIVE: Tracing | None = None


def start(model_name: str) -> Tracing:
    """Turn tracing on in this process (a worker): `ACTIVE` is set and returned."""
    global ACTIVE
    # Seldon's Jaeger variables become the OTEL_* ones the SDK configures itself from.
    os.environ.update(jaeger_environment(os.environ)[0])
    ACTIVE = Tracing(model_name)
    return ACTIVE


def stop() -> None:
    """Send the spans still queued (within the exporter's timeout) and turn tracing off."""
    global ACTIVE
    tracing, ACTIVE = ACTIVE, None
    if tracing is not None:
        tracing.shutdown()


def current_trace_id() -> str | None:
    """The trace id of the request being answered (32 hex digits), for its log lines
    (an access line is written while the request's server span is current); None when
    tracing is off or no span is."""
    return None if ACTIVE is None else ACTIVE.trace_id()
