"""A small OTLP collector for the tracing tests: it listens on 127.0.0.1 (OTLP over
HTTP, and optionally over gRPC), decodes every export request it receives with the
`opentelemetry-proto` message classes and keeps the spans, for the tests to read.
No part of the OpenTelemetry SDK is involved on this side."""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
CLIENT_KIND = 3
STATUS_ERROR = 2


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    status: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[str] = field(default_factory=list)


def _value(any_value: Any) -> Any:
    which = any_value.WhichOneof("value")
    return getattr(any_value, which) if which else None


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items}


class Collector:
    """Spans received, in arrival order; `paths` are the HTTP paths posted to."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                collector.paths.append(self.path)
                collector.receive(body)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.grpc_server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def start_grpc(self) -> str:
        """Also take OTLP over gRPC; its endpoint."""
        import grpc

        def export(request: Any, context: Any) -> Any:
            self.receive(request.SerializeToString())
            return trace_service_pb2.ExportTraceServiceResponse()

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    export,
                    request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
                    response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
                )
            },
        )
        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(2))
        self.grpc_server.add_generic_rpc_handlers([handler])
        port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        self.grpc_server.start()
        return f"http://127.0.0.1:{port}"

    def receive(self, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for s in scope_spans.spans:
                    spans.append(
                        Span(
                            s.name,
                            s.trace_id.hex(),
                            s.span_id.hex(),
                            s.parent_span_id.hex(),
                            s.kind,
                            s.status.code,
                            _attributes(s.attributes),
                            resource,
                            [e.name for e in s.events],
                        )
                    )
        with self._lock:
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def named(self, name: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.name == name]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        if self.grpc_server is not None:
            self.grpc_server.stop(0)
