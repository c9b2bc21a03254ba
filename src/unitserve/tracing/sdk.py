"""The OpenTelemetry SDK's side of tracing: whether its packages are there, the OTLP
exporter the environment asks for, and the batching processor that counts the spans it
drops. Everything from OpenTelemetry is imported inside the functions, so that nothing
of it loads with tracing off."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from unitserve.tracing.jaeger import jaeger_environment, otlp_protocol

log = logging.getLogger("unitserve")

PACKAGES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.grpc",
)


def check() -> str | None:
    """Before the workers start (once, in the supervisor): what stops tracing from
    working (the optional packages missing), or None; Seldon's variables that mean
    nothing here are logged once."""
    import importlib.util

    for name in PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return (
                f"--tracing needs the OpenTelemetry packages ({name} is not installed): "
                "pip install -e '.[tracing]' in a clone of unitserve "
                "(from a package index: 'unitserve[tracing]')"
            )
    for line in jaeger_environment(os.environ)[1]:
        log.warning("tracing: %s", line)
    return None


def counting_processor(exporter: Any) -> Any:
    """The SDK's batching span processor, counting (in ``dropped``) the spans it drops
    when its queue is full: the SDK drops them with a log line per span and keeps no
    count of its own. A span that would be dropped is not handed on at all, which also
    spares the request a log line. (A subclass made here, so that the SDK is imported
    only with tracing on.)"""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    class CountingBatchProcessor(BatchSpanProcessor):
        def __init__(self) -> None:
            super().__init__(exporter)
            self.dropped = 0
            self._lock = threading.Lock()
            self._queue_limit, self._queue_length = queue_probe(self)

        def on_end(self, span: Any) -> None:
            if (
                self._queue_length is not None
                and span.context.trace_flags.sampled
                and self._queue_length() >= self._queue_limit
            ):
                with self._lock:
                    self.dropped += 1
                return
            super().on_end(span)

    return CountingBatchProcessor()


def queue_probe(batch: Any) -> tuple[int, Callable[[], int] | None]:
    """The batch processor's queue limit and length, read from its internals (bounded
    in pyproject.toml, see docs/architecture.md); (0, None) if they are not there, and
    then spans are handed on uncounted."""
    inner = getattr(batch, "_batch_processor", None)
    queue = getattr(inner, "_queue", None)
    limit = getattr(inner, "_max_queue_size", None)
    if queue is None or not isinstance(limit, int):
        return 0, None
    return limit, queue.__len__


def exporter() -> Any:
    """The OTLP span exporter of OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: ``grpc``, or
    ``http/protobuf`` (the default); each reads its own endpoint and headers."""
    protocol = otlp_protocol(os.environ) or "http/protobuf"
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol != "http/protobuf":
        log.warning(
            "tracing: OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported; using http/protobuf",
            protocol,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter()
