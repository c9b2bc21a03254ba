"""`Tracing`: one worker's tracer provider, the spans and the trace context the layers
use, and the wrappers that put a span around a request, an RPC or a user call."""

from __future__ import annotations

import contextvars
import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from unitserve.tracing import wrappers
from unitserve.tracing.sdk import counting_processor, exporter

log = logging.getLogger("unitserve")

# A valid traceparent is 55 characters; tracestate is at most 32 members of at most
# 256 characters. Anything much longer is not parsed at all, only ignored.
_MAX_TRACEPARENT = 128
_MAX_TRACESTATE = 8192


class Tracing:
    """The tracer provider of one worker and the helpers the layers use."""

    def __init__(self, model_name: str) -> None:
        # Imported here only: with tracing off these modules are never loaded.
        from opentelemetry import context, propagate, trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.model_name = model_name
        self.otel_context: Any = context
        self.otel_trace: Any = trace
        self._propagator = propagate.get_global_textmap()
        self.SERVER, self.CLIENT, self.INTERNAL = (
            SpanKind.SERVER,
            SpanKind.CLIENT,
            SpanKind.INTERNAL,
        )
        self.error = Status(StatusCode.ERROR)
        self.status = Status
        self.error_code = StatusCode.ERROR
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: model_name}
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        self.provider = TracerProvider(resource=Resource.create(attributes))
        self.processor = counting_processor(exporter())
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("unitserve")

    @property
    def dropped(self) -> int:
        """Spans dropped because the export queue was full."""
        return self.processor.dropped

    def shutdown(self) -> None:
        self.provider.shutdown()
        if self.processor.dropped:
            log.warning(
                "tracing: %d spans were dropped (the export queue was full: is the "
                "collector reachable?)",
                self.processor.dropped,
            )

    # ------------------------------------------------------------------ context

    def extract(self, traceparent: str | None, tracestate: str | None) -> Any:
        """The parent context carried by a request, or None for a new trace."""
        if not traceparent or len(traceparent) > _MAX_TRACEPARENT:
            return None
        carrier = {"traceparent": traceparent}
        if tracestate and len(tracestate) <= _MAX_TRACESTATE:
            carrier["tracestate"] = tracestate
        try:
            return self._propagator.extract(carrier)
        except Exception:  # a header the propagator chokes on starts a new trace
            return None

    def inject(self, carrier: dict[str, str]) -> dict[str, str]:
        """`carrier` with the current span's ``traceparent`` (and ``tracestate``) added."""
        self._propagator.inject(carrier)
        return carrier

    def bind(self, fn: Callable[[], Any]) -> Callable[[], Any]:
        """`fn` to run on another thread inside this thread's current span."""
        return functools.partial(contextvars.copy_context().run, fn)

    def span(self, name: str, kind: Any = None, attributes: dict[str, Any] | None = None) -> Scope:
        """A child span of the current one, current while the block runs; an exception
        leaving the block is recorded on it and marks it failed."""
        return Scope(self, name, kind or self.INTERNAL, attributes)

    @contextmanager
    def node_span(self, node: str, op: str, impl: Any) -> Iterator[Any]:
        """One span per call of a graph's node: CLIENT for a node served elsewhere (its
        server span is the child), INTERNAL for one in this process."""
        remote = hasattr(impl, "base") or hasattr(impl, "target")
        attributes = {"seldon.node": node, "seldon.node.operation": op}
        with self.span(
            f"node {node} {op}", self.CLIENT if remote else self.INTERNAL, attributes
        ) as span:
            yield span

    def trace_id(self) -> str | None:
        found = self.otel_trace.get_current_span().get_span_context()
        return format(found.trace_id, "032x") if found.is_valid else None

    def set_puid(self, puid: Any) -> None:
        """The Seldon request id on the request's server span (read from its meta)."""
        if puid:
            self.otel_trace.get_current_span().set_attribute("seldon.puid", str(puid))

    # ------------------------------------------------------------------ wrappers

    def asgi(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """`app` with one SERVER span per HTTP request around it."""
        return wrappers.traced_asgi(self, app)

    def grpc_handler(self, full_method: str, handler: Any) -> Any:
        """A grpcio unary-unary method handler with one SERVER span per call around it."""
        return wrappers.traced_grpc_handler(self, full_method, handler)

    def traced_methods(self, table: Any) -> Any:
        """The engine's method table with every user method called inside a span."""
        return wrappers.traced_methods(self, table)


class Scope:
    """A span current while a ``with`` block runs (`Tracing.span`), with what the SDK's
    ``start_as_current_span`` does on an exception. Written out because that one nests
    three generator-based context managers, about a quarter of each span's CPU time,
    and a request has several of these spans (parse, decode, each user call, encode)."""

    __slots__ = ("_attributes", "_kind", "_name", "_span", "_token", "_tracing")

    def __init__(self, tracing: Tracing, name: str, kind: Any, attributes: Any) -> None:
        self._tracing = tracing
        self._name = name
        self._kind = kind
        self._attributes = attributes

    def __enter__(self) -> Any:
        tracing = self._tracing
        span = tracing.tracer.start_span(self._name, kind=self._kind, attributes=self._attributes)
        self._span = span
        self._token = tracing.otel_context.attach(tracing.otel_trace.set_span_in_context(span))
        return span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        span = self._span
        try:
            if exc is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(
                    self._tracing.status(self._tracing.error_code, f"{kind.__name__}: {exc}")
                )
        finally:
            self._tracing.otel_context.detach(self._token)
            span.end()
