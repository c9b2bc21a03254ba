"""The REST transport: a small ASGI application served by uvicorn.

It knows HTTP and nothing about models: it maps a path to an engine operation,
hands the body to the codec via the invoker, and turns errors into a status
and Seldon's JSON error body. Paths and methods come from the operation table
(`unitserve.operations`): Seldon's, plus ``/live`` and ``/ready``. Unknown
paths answer 404 and wrong methods 405, in the same JSON shape (Seldon answers
500 for both).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from unitserve.calls import Invoker
from unitserve.errors import (
    BAD_METADATA,
    PayloadTooLarge,
    ServingError,
    describe,
    log_error,
    status_body,
)
from unitserve.message import Codec
from unitserve.operations import INFER, OPERATIONS, V2_PROTOCOL
from unitserve.protocol import jsonio
from unitserve.protocol.v2.binary import BinaryAnswer
from unitserve.transport.accounting import PUID_KEY, PuidCodec, RequestAccounting
from unitserve.transport.graph_front import GraphFront
from unitserve.transport.rest.content_encoding import decoded
from unitserve.transport.rest.docs_page import PREFIX as DOCS_PREFIX
from unitserve.transport.rest.docs_page import REDIRECT_LOCATION, REDIRECT_PATH, DocsPage
from unitserve.transport.rest.flask_errors import FlaskErrorHandlers
from unitserve.transport.rest.http_protocol import HOLD_HEAD
from unitserve.transport.rest.request_body import raw_payload, request_payload
from unitserve.transport.rest.v2 import V2Rest, error_body
from unitserve.transport.rest.v2 import match as match_v2

log = logging.getLogger("unitserve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_TYPE = b"application/json"
HTML_TYPE = b"text/html; charset=utf-8"
_CORS_METHODS = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


@dataclass(frozen=True, slots=True)
class Route:
    kind: str  # an engine operation name, or: ping live ready metadata openapi
    methods: frozenset[str]

    @property
    def allow(self) -> bytes:
        names = set(self.methods) | {"OPTIONS"}
        if "GET" in names:
            names.add("HEAD")
        return ", ".join(sorted(names)).encode()


ROUTES: dict[str, Route] = {
    path: Route(op.name, methods) for op in OPERATIONS.values() for path, methods in op.rest
}
# A graph answers the orchestrator's external API only (the component paths such as
# /predict belong to its nodes), plus one node's metadata or status by name.
GRAPH_PATHS = (
    "/api/v1.0/predictions",
    "/api/v0.1/predictions",
    "/api/v1.0/feedback",
    "/api/v0.1/feedback",
    "/api/v1.0/metadata",
    "/live",
    "/ready",
)
GRAPH_ROUTES: dict[str, Route] = {path: ROUTES[path] for path in GRAPH_PATHS}
NODE_PREFIXES = {
    "/api/v1.0/metadata/": Route("node_metadata", frozenset({"GET"})),
    "/api/v1.0/status/": Route("node_status", frozenset({"GET"})),
}


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x per request
class RestRequest:
    """A REST request's body, with what reads it (`read` runs where the user code runs)."""

    body: bytes
    codec: Codec
    content_type: str
    query: bytes
    reader: Callable[[str, bytes, bytes], Any]  # (content type, query string, body) → payload
    puid: str | None = None  # a graph's request id (Seldon-Puid), read and set by the graph

    def read(self) -> Any:
        return self.reader(self.content_type, self.query, self.body)


@dataclass(frozen=True, slots=True)
class NoBody:
    """A request without a body (health status): one per app, shared by every probe."""

    codec: Codec

    def read(self) -> None:
        return None


class ClientGone(Exception):
    """The client went away (or its body timed out) before its request was read."""


class Cors:
    """``Access-Control-*`` headers: Seldon's flask-cors defaults (any origin) unless
    `--cors-origins` restricts them."""

    def __init__(self, origins: str) -> None:
        items = [o.strip() for o in origins.split(",") if o.strip()]
        self.any = items == ["*"]
        self.allowed = frozenset(items)

    def headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """For every answer: the request's Origin echoed when allowed, ``*`` when the
        request has none and any origin is allowed."""
        if origin is None:
            return [(b"access-control-allow-origin", b"*")] if self.any else []
        if self.any or origin.decode("latin-1") in self.allowed:
            return [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
        return []

    def preflight(
        self, origin: bytes | None, requested_headers: bytes | None
    ) -> list[tuple[bytes, bytes]]:
        """A preflight answer: the methods, and the headers the browser asked to send
        (echoed, as flask-cors does: a JSON POST needs ``Content-Type``)."""
        allowed = self.headers(origin)
        if origin is None or not allowed:
            return allowed
        out = [*allowed, (b"access-control-allow-methods", _CORS_METHODS)]
        if requested_headers:
            out.append((b"access-control-allow-headers", requested_headers))
        return out


class RestApp:
    """The ASGI app of one worker."""

    def __init__(
        self,
        invoker: Invoker,
        codecs: dict[str, Codec],
        *,
        metadata: Callable[[], dict[str, Any] | None],
        openapi: bytes,
        cors_origins: str = "*",
        max_body_size: int = 100 << 20,
        passthrough: bool = False,
        error_handlers: FlaskErrorHandlers | None = None,
        accounting: RequestAccounting,
        graph: GraphFront | None = None,
        v2: V2Rest | None = None,
        docs: DocsPage | None = None,
    ) -> None:
        self.invoker = invoker
        self.graph = graph
        self.routes = ROUTES if graph is None else GRAPH_ROUTES
        self.codecs = codecs
        self.metadata = metadata
        self.openapi = openapi
        self.cors = Cors(cors_origins)
        self.max_body_size = max_body_size
        self.passthrough = passthrough
        self.error_handlers = error_handlers
        self.accounting = accounting
        # Only the access line wants a request's puid: without it nothing looks for one.
        self.note_puid = accounting.access_log_enabled
        self.v2 = v2  # the Open Inference Protocol's routes (None: not served)
        self.docs = docs  # the API docs page (None: --no-docs)
        # How each engine operation's body is read, and by which codec: decided once.
        json_codec, feedback_codec = codecs["json"], codecs["feedback"]
        feedback_codec_: Any = feedback_codec  # the feedback codec also parses protobuf JSON

        def read_feedback(content_type: str, query: bytes, body: bytes) -> Any:
            return feedback_codec_.parse_feedback(request_payload(content_type, query, body))

        self.readers: dict[str, tuple[Callable[[str, bytes, bytes], Any], Codec]] = {
            op.name: (request_payload, json_codec) for op in OPERATIONS.values() if op.in_engine
        }
        self.readers["send_feedback"] = (read_feedback, feedback_codec)
        if passthrough:
            self.readers["predict"] = (raw_payload, codecs["passthrough"])
        self.probe = NoBody(json_codec)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path = scope["path"]
        route = self.routes.get(path)
        if route is None:
            # Looked at only once the exact paths have missed: the Seldon routes pay nothing.
            if self.v2 is not None and path.startswith("/v2"):
                await self._serve_v2(scope, receive, send, started)
                return
            if self.docs is not None and path.startswith(DOCS_PREFIX):
                found = self.docs.find(path)
                if found is not None or path == REDIRECT_PATH:
                    await self._serve_docs(scope, send, started, found)
                    return
            if self.graph is not None:
                route = _node_route(path)
        self.accounting.started("rest")
        headers = dict(scope["headers"])  # lower-case names; last one wins
        origin = headers.get(b"origin")
        method = scope["method"]
        if route is None:
            status, extra, body = self._error(404, "MICROSERVICE_NOT_FOUND", f"Not Found: {path}")
        elif method == "OPTIONS":
            status, body = 200, b""
            extra = [
                (b"allow", route.allow),
                (b"content-type", HTML_TYPE),
                *self.cors.preflight(origin, headers.get(b"access-control-request-headers")),
            ]
        elif method not in route.methods and not (method == "HEAD" and "GET" in route.methods):
            status, extra, body = self._error(
                405,
                "MICROSERVICE_METHOD_NOT_ALLOWED",
                f"Method Not Allowed: {method} {path} (allowed: {route.allow.decode()})",
            )
            extra.append((b"allow", route.allow))
        else:
            try:
                payload = await self._read_body(receive, headers)
                status, extra, body = await self._dispatch(route, scope, headers, payload)
            except ClientGone:  # nobody to answer (the protocol may have answered 408)
                self.accounting.finished(
                    "unknown", "rest", "499", time.perf_counter() - started, f"{method} {path}", "-"
                )
                return
            except Exception as exc:
                status, extra, body = self.error_answer(exc, f"{method} {path}")
        if method != "OPTIONS" or route is None:
            extra.extend(self.cors.headers(origin))
        response_headers = [*extra, (b"content-length", str(len(body)).encode())]
        if body and method != "HEAD" and (hold_head := scope.get(HOLD_HEAD)) is not None:
            hold_head()  # the head leaves with the body, in one write
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": response_headers}
            )
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        finally:
            client = scope.get("client")
            self.accounting.finished(
                route.kind if route is not None else "unknown",
                "rest",
                str(status),
                time.perf_counter() - started,
                f"{method} {path}",
                client[0] if client else "-",
                scope.get(PUID_KEY) if self.note_puid else None,
            )

    async def _serve_v2(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        """A request under /v2 (see transport/rest/v2.py): counted with protocol "v2",
        errors answered ``{"error": ...}``, binary answers written buffer by buffer."""
        assert self.v2 is not None
        self.accounting.started(V2_PROTOCOL)
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")
        path, method = scope["path"], scope["method"]
        route = match_v2(path)
        extra: list[tuple[bytes, bytes]]
        body: bytes | BinaryAnswer
        if route is None:
            status, extra, body = self._v2_error(404, f"Not Found: {path}")
        elif method == "OPTIONS":
            status, body = 200, b""
            extra = [
                (b"allow", route.allow),
                (b"content-type", HTML_TYPE),
                *self.cors.preflight(origin, headers.get(b"access-control-request-headers")),
            ]
        elif method not in route.methods and not (method == "HEAD" and "GET" in route.methods):
            status, extra, body = self._v2_error(
                405, f"Method Not Allowed: {method} {path} (allowed: {route.allow.decode()})"
            )
            extra.append((b"allow", route.allow))
        else:
            try:
                payload = await self._read_body(receive, headers)
                encoding = headers.get(b"content-encoding")
                if encoding is not None and route.kind == INFER.name:
                    # Off the event loop: inflating up to --max-body-size takes a while,
                    # and health probes must still be answered meanwhile.
                    payload = await asyncio.get_running_loop().run_in_executor(
                        None, decoded, payload, encoding, self.max_body_size
                    )
                status, extra, body = await self.v2.answer(
                    route, headers, payload, scope if self.note_puid else None
                )
            except ClientGone:
                self.accounting.finished(
                    route.kind, V2_PROTOCOL, "499", time.perf_counter() - started,
                    f"{method} {path}", "-",
                )  # fmt: skip
                return
            except Exception as exc:
                status, message = describe(exc)[0], describe(exc)[2]
                log_error(exc, f"{method} {path}", said_as=str(status))
                status, extra, body = self._v2_error(status, message)
        if method != "OPTIONS" or route is None:
            extra.extend(self.cors.headers(origin))
        response_headers = [*extra, (b"content-length", str(len(body)).encode())]
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": response_headers}
            )
            if method == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
            hold_head = scope.get(HOLD_HEAD)
            if len(body) and hold_head is not None:
                hold_head()  # the head leaves with the (first part of the) body, in one write
            if isinstance(body, BinaryAnswer):
                # The outputs' buffers are views of the user's arrays: written as they
                # are, one after the other, never joined into one copy.
                await send({"type": "http.response.body", "body": body.header, "more_body": True})
                last = len(body.buffers) - 1
                for i, buffer in enumerate(body.buffers):
                    more = i < last
                    await send({"type": "http.response.body", "body": buffer, "more_body": more})
            else:
                await send({"type": "http.response.body", "body": body})
        finally:
            client = scope.get("client")
            self.accounting.finished(
                route.kind if route is not None else "unknown",
                V2_PROTOCOL,
                str(status),
                time.perf_counter() - started,
                f"{method} {path}",
                client[0] if client else "-",
                scope.get(PUID_KEY) if self.note_puid else None,
            )

    async def _serve_docs(
        self, scope: Scope, send: Send, started: float, found: tuple[bytes, bytes] | None
    ) -> None:
        """The API docs page or one of its assets (GET and HEAD only); `found` None:
        ``/docs/``, redirected to the page (its query string kept)."""
        self.accounting.started("rest")
        method, path = scope["method"], scope["path"]
        extra: list[tuple[bytes, bytes]]
        if found is None:
            query = scope.get("query_string", b"")
            location = REDIRECT_LOCATION + (b"?" + query if query else b"")
            status, body = 307, b""
            extra = [(b"location", location), (b"content-type", HTML_TYPE)]
        else:
            content_type, body = found
            status, extra = 200, [(b"content-type", content_type)]
        if method not in ("GET", "HEAD"):
            status, extra, body = self._error(
                405, "MICROSERVICE_METHOD_NOT_ALLOWED",
                f"Method Not Allowed: {method} {path} (allowed: GET, HEAD)",
            )  # fmt: skip
            extra.append((b"allow", b"GET, HEAD"))
        headers = [*extra, (b"content-length", str(len(body)).encode())]
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        finally:
            client = scope.get("client")
            self.accounting.finished(
                "docs", "rest", str(status), time.perf_counter() - started,
                f"{method} {path}", client[0] if client else "-",
            )  # fmt: skip

    def _v2_error(self, status: int, message: str) -> tuple[int, list, bytes]:
        return status, [(b"content-type", JSON_TYPE)], error_body(message)

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        """The request body, refused with 413 as soon as it is known to exceed
        --max-body-size (from Content-Length, else while it arrives, chunked or not)."""
        limit = self.max_body_size
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(
                f"request body of {int(length)} bytes is larger than the "
                f"limit of {limit} bytes (--max-body-size)"
            )
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"request body is larger than the limit of {limit} bytes (--max-body-size)"
                )
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _dispatch(
        self, route: Route, scope: Scope, headers: dict[bytes, bytes], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        kind = route.kind
        if kind == "ping":
            return 200, [(b"content-type", HTML_TYPE)], b"pong"
        if kind == "live":
            return 200, [(b"content-type", JSON_TYPE)], b'{"status":"alive"}\n'
        if kind == "ready":
            if not self.invoker.ready.is_set():
                return self._error(503, "MICROSERVICE_NOT_READY", self.invoker.not_ready_reason)
            # A graph is ready when every node is: its remote nodes are asked each time.
            waiting = await self.graph.not_ready() if self.graph is not None else None
            if waiting is not None:
                return self._error(503, "MICROSERVICE_NOT_READY", waiting)
            return 200, [(b"content-type", JSON_TYPE)], b'{"status":"ready"}\n'
        if kind == "openapi":
            return 200, [(b"content-type", JSON_TYPE)], self.openapi
        if kind == "metadata":
            await self.invoker.wait_ready()
            meta = self.metadata()
            if meta is None:
                return self._error(500, BAD_METADATA, "Model metadata unavailable")
            return 200, [(b"content-type", JSON_TYPE)], jsonio.dumps(meta)
        if self.graph is not None and kind in ("node_metadata", "node_status"):
            return await self._node(kind, scope["path"].rpartition("/")[2])
        if kind == "health_status":
            request: RestRequest | NoBody = self.probe
        else:
            reader, codec = self.readers[kind]
            ctype = headers.get(b"content-type", b"").decode("latin-1")
            request = RestRequest(body, codec, ctype, scope.get("query_string", b""), reader)
            if self.graph is not None:
                puid = headers.get(b"seldon-puid")
                request.puid = puid.decode("latin-1") if puid else None
            elif self.note_puid:
                request.codec = PuidCodec(codec, request)
        try:
            status, answer = await self.invoker.call(kind, request)
        finally:
            if self.note_puid and isinstance(request, RestRequest):
                scope[PUID_KEY] = request.puid  # the graph's, or the one its meta carried
        if self.graph is not None and isinstance(request, RestRequest) and request.puid:
            return (
                status,
                [(b"content-type", JSON_TYPE), (b"seldon-puid", request.puid.encode("latin-1"))],
                answer,
            )
        return status, [(b"content-type", JSON_TYPE)], answer

    async def _node(self, kind: str, name: str) -> tuple[int, list, bytes]:
        assert self.graph is not None
        await self.invoker.wait_ready()
        if kind == "node_metadata":
            meta = self.graph.node_metadata(name)
            if meta is None:
                return self._error(404, "MICROSERVICE_NOT_FOUND", f"the graph has no node {name!r}")
            return 200, [(b"content-type", JSON_TYPE)], jsonio.dumps(meta)
        if self.graph.node_metadata(name) is None:
            return self._error(404, "MICROSERVICE_NOT_FOUND", f"the graph has no node {name!r}")
        status, body = await self.graph.node_status(name)
        return status, [(b"content-type", JSON_TYPE)], body

    def _error(self, status: int, reason: str, info: str) -> tuple[int, list, bytes]:
        return status, [(b"content-type", JSON_TYPE)], jsonio.dumps(status_body(info, reason))

    def error_answer(self, exc: BaseException, where: str) -> tuple[int, list, bytes]:
        if self.error_handlers is not None and not isinstance(exc, ServingError):
            handled = self.error_handlers.answer(exc)
            if handled is not None:
                status, body, content_type = handled
                log.info(
                    "%s: %s answered %d by model_error_handler", where, type(exc).__name__, status
                )
                return status, [(b"content-type", content_type.encode("latin-1"))], body
        log_error(exc, where)
        status, reason, message, _ = describe(exc)
        return self._error(status, reason, message)


def _node_route(path: str) -> Route | None:
    """A graph's ``/api/v1.0/metadata/<node>`` or ``/api/v1.0/status/<node>``."""
    for prefix, route in NODE_PREFIXES.items():
        if path.startswith(prefix) and "/" not in path[len(prefix) :] and len(path) > len(prefix):
            return route
    return None
