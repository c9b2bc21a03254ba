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
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("unitserve")

#: The worker's tracing when on; None when off (the only thing the hot path looks at).
ACTIVE: Tracing | None = None

# A valid traceparent is 55 characters; tracestate is at most 32 members of at most
# 256 characters. Anything much longer is not parsed at all, only ignored.
_MAX_TRACEPARENT = 128
_MAX_TRACESTATE = 8192

# The gRPC status codes a server span counts as its own failure (the others are the
# client's mistakes: a bad argument, a missing model).
_GRPC_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)

# Seldon's Jaeger client variables and what each means for the OTLP exporter.
_JAEGER_SAMPLERS = {"const", "probabilistic"}


def jaeger_environment(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The ``OTEL_*`` settings Seldon's ``JAEGER_*`` variables stand for (never over a
    ``OTEL_*`` variable that is set), and one warning per variable without an
    OpenTelemetry meaning."""
    out: dict[str, str] = {}
    warnings: list[str] = []

    def put(name: str, value: str) -> None:
        if name not in env:
            out[name] = value

    if "JAEGER_SERVICE_NAME" in env:
        put("OTEL_SERVICE_NAME", env["JAEGER_SERVICE_NAME"])
    if "JAEGER_TAGS" in env:  # the same "key=value,key=value" form
        put("OTEL_RESOURCE_ATTRIBUTES", env["JAEGER_TAGS"])
    if "JAEGER_AGENT_HOST" in env and "JAEGER_ENDPOINT" not in env:
        # Jaeger's agent took spans over UDP; a Jaeger of today takes OTLP on the same
        # host, on port 4318 (HTTP) or 4317 (gRPC).
        grpc_protocol = _protocol(env) == "grpc"
        put(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            f"http://{env['JAEGER_AGENT_HOST']}:{4317 if grpc_protocol else 4318}",
        )
        if "JAEGER_AGENT_PORT" in env:
            warnings.append(
                "JAEGER_AGENT_PORT is ignored: spans go to the agent's host over OTLP "
                "(set OTEL_EXPORTER_OTLP_ENDPOINT to choose the port)"
            )
    if "JAEGER_ENDPOINT" in env:
        warnings.append(
            "JAEGER_ENDPOINT is ignored: it names Jaeger's Thrift endpoint; set "
            "OTEL_EXPORTER_OTLP_ENDPOINT to the collector's OTLP endpoint"
        )
    sampler = env.get("JAEGER_SAMPLER_TYPE")
    if sampler is not None:
        param = env.get("JAEGER_SAMPLER_PARAM", "1")
        if sampler == "const":
            put("OTEL_TRACES_SAMPLER", "parentbased_always_on" if param != "0" else "always_off")
        elif sampler == "probabilistic":
            put("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            put("OTEL_TRACES_SAMPLER_ARG", param)
        else:
            warnings.append(
                f"JAEGER_SAMPLER_TYPE={sampler} has no OpenTelemetry equivalent and is "
                "ignored (set OTEL_TRACES_SAMPLER)"
            )
    for name in ("JAEGER_USER", "JAEGER_PASSWORD", "JAEGER_REPORTER_LOG_SPANS"):
        if name in env:
            warnings.append(f"{name} is ignored (see the OTEL_EXPORTER_OTLP_* variables)")
    return out, warnings


def _protocol(env: Mapping[str, str]) -> str:
    return env.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()


_PACKAGES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.grpc",
)


def check() -> str | None:
    """Before the workers start (once, in the supervisor): what stops tracing from
    working (the optional packages missing), or None; Seldon's variables that mean
    nothing here are logged once."""
    import importlib.util

    for name in _PACKAGES:
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


def start(model_name: str) -> Tracing:
    """Turn tracing on in this process (a worker): `ACTIVE` is set and returned."""
    global ACTIVE
    os.environ.update(
        jaeger_environment(os.environ)[0]
    )  # read by the SDK's own configuration below
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


class Tracing:
    """The tracer provider of one worker and the helpers the layers use."""

    def __init__(self, model_name: str) -> None:
        # Imported here only: with tracing off these modules are never loaded.
        from opentelemetry import context, propagate, trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.model_name = model_name
        self._context = context
        self._trace = trace
        self._propagator = propagate.get_global_textmap()
        self.SERVER, self.CLIENT, self.INTERNAL = (
            SpanKind.SERVER,
            SpanKind.CLIENT,
            SpanKind.INTERNAL,
        )
        self._error = Status(StatusCode.ERROR)
        self._status = Status
        self._error_code = StatusCode.ERROR
        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: model_name}
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        self.provider = TracerProvider(resource=Resource.create(attributes))
        self.processor = _counting_processor(_exporter())
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

    def span(self, name: str, kind: Any = None, attributes: dict[str, Any] | None = None) -> _Scope:
        """A child span of the current one, current while the block runs; an exception
        leaving the block is recorded on it and marks it failed."""
        return _Scope(self, name, kind or self.INTERNAL, attributes)

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
        found = self._trace.get_current_span().get_span_context()
        return format(found.trace_id, "032x") if found.is_valid else None

    def set_puid(self, puid: Any) -> None:
        """The Seldon request id on the request's server span (read from its meta)."""
        if puid:
            self._trace.get_current_span().set_attribute("seldon.puid", str(puid))

    # ------------------------------------------------------------------ REST

    def asgi(self, app: Callable[..., Any]) -> Callable[..., Any]:
        """`app` with one SERVER span per HTTP request around it."""
        tracer, context, trace = self.tracer, self._context, self._trace
        server_kind, error = self.SERVER, self._error
        model = self.model_name

        async def traced(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            headers = scope["headers"]
            traceparent = tracestate = user_agent = puid = None
            for name, value in headers:
                if name == b"traceparent":
                    traceparent = value.decode("latin-1")
                elif name == b"tracestate":
                    tracestate = value.decode("latin-1")
                elif name == b"user-agent":
                    user_agent = value.decode("latin-1")
                elif name == b"seldon-puid":
                    puid = value.decode("latin-1")
            method, path = scope["method"], scope["path"]
            route = http_route(path)
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "http.route": route,
                "url.path": path,
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
                "unitserve.model.name": model,
            }
            server, client = scope.get("server"), scope.get("client")
            if server:
                attributes["server.address"], attributes["server.port"] = server[0], server[1]
            if client:
                attributes["client.address"] = client[0]
            if user_agent:
                attributes["user_agent.original"] = user_agent
            if puid:
                attributes["seldon.puid"] = puid
            span = tracer.start_span(
                f"{method} {route}",
                context=self.extract(traceparent, tracestate),
                kind=server_kind,
                attributes=attributes,
            )
            token = context.attach(trace.set_span_in_context(span))

            async def send_traced(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:  # a server span fails on 5xx only (4xx: the client's)
                        span.set_attribute("error.type", str(status))
                        span.set_status(error)
                await send(message)

            try:
                await app(scope, receive, send_traced)
            except BaseException as exc:
                span.record_exception(exc)
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(error)
                raise
            finally:
                context.detach(token)
                span.end()

        return traced

    # ------------------------------------------------------------------ gRPC

    def grpc_handler(self, full_method: str, handler: Any) -> Any:
        """A grpcio unary-unary method handler with one SERVER span per call around it."""
        import grpc

        behaviour = handler.unary_unary
        if behaviour is None:  # only unary RPCs are served; anything else as it is
            return handler
        tracer, context, trace = self.tracer, self._context, self._trace
        service, _, method = full_method.lstrip("/").rpartition("/")
        name = f"{service}/{method}"
        base = {
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": method,
            "unitserve.model.name": self.model_name,
        }
        server_kind, error = self.SERVER, self._error

        def traced(request: Any, servicer_context: Any) -> Any:
            traceparent = tracestate = puid = None
            for key, value in servicer_context.invocation_metadata() or ():
                if key == "traceparent":
                    traceparent = value
                elif key == "tracestate":
                    tracestate = value
                elif key == "seldon-puid":
                    puid = value
            attributes = dict(base)
            if puid:
                attributes["seldon.puid"] = puid
            span = tracer.start_span(
                name,
                context=self.extract(traceparent, tracestate),
                kind=server_kind,
                attributes=attributes,
            )
            token = context.attach(trace.set_span_in_context(span))
            code = "OK"
            try:
                return behaviour(request, servicer_context)
            except BaseException as exc:
                # context.abort raises after setting the status code it was given
                found = _grpc_code(servicer_context)
                code = found if found is not None else "UNKNOWN"
                if code == "UNKNOWN":
                    span.record_exception(exc)
                raise
            finally:
                if code == "OK":
                    found = _grpc_code(servicer_context)
                    code = found if found is not None else "OK"
                span.set_attribute("rpc.grpc.status_code", grpc.StatusCode[code].value[0])
                if code in _GRPC_SERVER_ERRORS:
                    span.set_attribute("error.type", code)
                    span.set_status(error)
                context.detach(token)
                span.end()

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    # ------------------------------------------------------------------ user methods

    def traced_methods(self, table: Any) -> Any:
        """The engine's method table with every user method called inside a span."""
        changes = {}
        for field in dataclasses.fields(table):
            method = getattr(table, field.name)
            if method is None or field.name in ("load", "init_metadata"):
                continue
            changes[field.name] = dataclasses.replace(method, fn=self._traced_fn(method))
        return dataclasses.replace(table, **changes)

    def _traced_fn(self, method: Any) -> Callable[..., Any]:
        fn, name, span = method.fn, method.name, self.span
        # The model's name is on the server span and in the resource already; every
        # attribute is checked and copied by the SDK on each span, so none is repeated.
        attributes = {"code.function": name}
        if method.is_async:

            async def traced_async(*args: Any, **kwargs: Any) -> Any:
                with span(name, attributes=attributes):
                    return await fn(*args, **kwargs)

            return traced_async

        def traced_sync(*args: Any, **kwargs: Any) -> Any:
            with span(name, attributes=attributes):
                return fn(*args, **kwargs)

        return traced_sync


class _Scope:
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
        self._token = tracing._context.attach(tracing._trace.set_span_in_context(span))
        return span

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        span = self._span
        try:
            if exc is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(
                    self._tracing._status(self._tracing._error_code, f"{kind.__name__}: {exc}")
                )
        finally:
            self._tracing._context.detach(self._token)
            span.end()


def _grpc_code(servicer_context: Any) -> str | None:
    code = getattr(servicer_context, "code", None)
    if not callable(code):
        return None
    try:
        found = code()
    except Exception:
        return None
    return None if found is None else found.name


class TracedCodec:
    """A codec whose decoding and encoding run in ``decode`` / ``encode`` spans; the
    decoded meta's ``puid`` goes on the server span."""

    __slots__ = ("_codec", "_tracing", "proto")

    def __init__(self, codec: Any, tracing: Tracing) -> None:
        self._codec = codec
        self._tracing = tracing
        self.proto = codec.proto

    def __getattr__(self, name: str) -> Any:  # what the engine does not trace
        return getattr(self._codec, name)

    def decode(self, request: Any) -> Any:
        with self._tracing.span("decode"):
            msg = self._codec.decode(request)
        meta = getattr(msg, "meta", None)
        if isinstance(meta, dict):
            self._tracing.set_puid(meta.get("puid"))
        return msg

    def decode_list(self, request: Any) -> Any:
        with self._tracing.span("decode"):
            return self._codec.decode_list(request)

    def decode_feedback(self, request: Any, routing_key: str) -> Any:
        with self._tracing.span("decode"):
            return self._codec.decode_feedback(request, routing_key)

    def encode(self, reply: Any) -> Any:
        with self._tracing.span("encode"):
            return self._codec.encode(reply)

    def encode_raw(self, answer: Any) -> Any:
        with self._tracing.span("encode"):
            return self._codec.encode_raw(answer)


class TracedRequest:
    """A transport's request whose reading runs in a ``parse`` span and whose codec is
    a `TracedCodec`; every other attribute is the request's own."""

    __slots__ = ("_request", "_tracing", "codec")

    def __init__(self, request: Any, tracing: Tracing) -> None:
        self._request = request
        self._tracing = tracing
        self.codec = TracedCodec(request.codec, tracing)

    @classmethod
    def of(cls, request: Any, tracing: Tracing) -> Any:
        """`request` traced (once: a request handed on by a traced call already is)."""
        return request if isinstance(request, cls) else cls(request, tracing)

    def read(self) -> Any:
        with self._tracing.span("parse"):
            return self._request.read()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def http_route(path: str) -> str:
    """The route template of a path (``http.route``: low cardinality, no model names)."""
    if not path.startswith("/v2/"):
        return path
    parts = path.split("/")
    # /v2/models/M[/versions/V]/tail  and  /v2/repository/models/M/action
    if len(parts) >= 4 and parts[2] == "models":
        parts[3] = "{model}"
        if len(parts) >= 6 and parts[4] == "versions":
            parts[5] = "{version}"
    elif len(parts) >= 5 and parts[2] == "repository" and parts[3] == "models":
        parts[4] = "{model}"
    return "/".join(parts)


def _counting_processor(exporter: Any) -> Any:
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
            self._queue_limit, self._queue_length = _queue_probe(self)

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


def _queue_probe(batch: Any) -> tuple[int, Callable[[], int] | None]:
    """The batch processor's queue limit and length, read from its internals (bounded
    in pyproject.toml, see docs/architecture.md); (0, None) if they are not there, and
    then spans are handed on uncounted."""
    inner = getattr(batch, "_batch_processor", None)
    queue = getattr(inner, "_queue", None)
    limit = getattr(inner, "_max_queue_size", None)
    if queue is None or not isinstance(limit, int):
        return 0, None
    return limit, queue.__len__


def _exporter() -> Any:
    """The OTLP span exporter of OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL: ``grpc``, or
    ``http/protobuf`` (the default); each reads its own endpoint and headers."""
    protocol = _protocol(os.environ) or "http/protobuf"
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
