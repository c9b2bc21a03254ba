"""The spans put around what the layers do: an HTTP request (`traced_asgi`), a gRPC call
(`traced_grpc_handler`), a user method (`traced_methods`), the decoding and encoding of
a message (`TracedCodec`) and the reading of a request's bytes (`TracedRequest`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

# The gRPC status codes a server span counts as its own failure (the others are the
# client's mistakes: a bad argument, a missing model).
_GRPC_SERVER_ERRORS = frozenset(
    {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"}
)


class Spans(Protocol):
    """What the wrappers use of a `Tracing`: its tracer and OpenTelemetry's context and
    trace modules, the failed status, the request's parent context and child spans."""

    model_name: str
    tracer: Any
    otel_context: Any
    otel_trace: Any
    error: Any
    SERVER: Any

    def extract(self, traceparent: str | None, tracestate: str | None) -> Any: ...
    def span(
        self, name: str, kind: Any = None, attributes: dict[str, Any] | None = None
    ) -> Any: ...
    def set_puid(self, puid: Any) -> None: ...


def traced_asgi(tracing: Spans, app: Callable[..., Any]) -> Callable[..., Any]:
    """`app` with one SERVER span per HTTP request around it."""
    tracer, context, trace = tracing.tracer, tracing.otel_context, tracing.otel_trace
    server_kind, error = tracing.SERVER, tracing.error
    model = tracing.model_name

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
            context=tracing.extract(traceparent, tracestate),
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


def traced_grpc_handler(tracing: Spans, full_method: str, handler: Any) -> Any:
    """A grpcio unary-unary method handler with one SERVER span per call around it."""
    import grpc

    behaviour = handler.unary_unary
    if behaviour is None:  # only unary RPCs are served; anything else as it is
        return handler
    tracer, context, trace = tracing.tracer, tracing.otel_context, tracing.otel_trace
    service, _, method = full_method.lstrip("/").rpartition("/")
    name = f"{service}/{method}"
    base = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "unitserve.model.name": tracing.model_name,
    }
    server_kind, error = tracing.SERVER, tracing.error

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
            context=tracing.extract(traceparent, tracestate),
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


def traced_methods(tracing: Spans, table: Any) -> Any:
    """The engine's method table with every user method called inside a span."""
    changes = {}
    for field in dataclasses.fields(table):
        method = getattr(table, field.name)
        if method is None or field.name in ("load", "init_metadata"):
            continue
        changes[field.name] = dataclasses.replace(method, fn=_traced_fn(tracing, method))
    return dataclasses.replace(table, **changes)


def _traced_fn(tracing: Spans, method: Any) -> Callable[..., Any]:
    fn, name, span = method.fn, method.name, tracing.span
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

    def __init__(self, codec: Any, tracing: Spans) -> None:
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

    def __init__(self, request: Any, tracing: Spans) -> None:
        self._request = request
        self._tracing = tracing
        self.codec = TracedCodec(request.codec, tracing)

    @classmethod
    def of(cls, request: Any, tracing: Spans) -> Any:
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
