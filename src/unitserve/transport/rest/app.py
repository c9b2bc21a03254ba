"""The REST transport: a small ASGI application served by uvicorn.

It knows HTTP and nothing about models: it maps a path to an engine operation,
hands the body to the codec via the invoker, and turns errors into a status
and Seldon's JSON error body. Paths and methods are those of spec §6 and §8.4,
plus ``/live`` and ``/ready``. Unknown paths answer 404 and wrong methods 405,
in the same JSON shape (Seldon answers 500 for both).
"""

from __future__ import annotations

import functools
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
from unitserve.protocol import jsonio
from unitserve.protocol.message import Codec
from unitserve.transport.accounting import RequestObserver
from unitserve.transport.rest.flask_errors import FlaskErrorHandlers
from unitserve.transport.rest.http_protocol import HOLD_HEAD
from unitserve.transport.rest.request_body import raw_payload, request_payload

log = logging.getLogger("unitserve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_TYPE = b"application/json"
HTML_TYPE = b"text/html; charset=utf-8"
_GET = frozenset({"GET"})
_POST = frozenset({"POST"})
_GET_POST = frozenset({"GET", "POST"})
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
    "/predict": Route("predict", _GET_POST),
    "/api/v1.0/predictions": Route("predict", _POST),
    "/api/v0.1/predictions": Route("predict", _POST),
    "/transform-input": Route("transform_input", _GET_POST),
    "/transform-output": Route("transform_output", _GET_POST),
    "/route": Route("route", _GET_POST),
    "/aggregate": Route("aggregate", _GET_POST),
    "/send-feedback": Route("send_feedback", _GET_POST),
    "/api/v1.0/feedback": Route("send_feedback", _POST),
    "/api/v0.1/feedback": Route("send_feedback", _POST),
    "/health/ping": Route("ping", _GET),
    "/health/status": Route("health_status", _GET),
    "/api/v1.0/health/status": Route("health_status", _GET),
    "/metadata": Route("metadata", _GET),
    "/api/v1.0/metadata": Route("metadata", _GET),
    "/seldon.json": Route("openapi", _GET),
    "/live": Route("live", _GET),
    "/ready": Route("ready", _GET),
}


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
        observer: RequestObserver,
    ) -> None:
        self.invoker = invoker
        self.codecs = codecs
        self.metadata = metadata
        self.openapi = openapi
        self.cors = Cors(cors_origins)
        self.max_body_size = max_body_size
        self.passthrough = passthrough
        self.error_handlers = error_handlers
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        self.observer.started("rest")
        headers = dict(scope["headers"])  # lower-case names; last one wins
        origin = headers.get(b"origin")
        path, method = scope["path"], scope["method"]
        route = ROUTES.get(path)
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
                self.observer.finished(
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
            self.observer.finished(
                route.kind if route is not None else "unknown",
                "rest",
                str(status),
                time.perf_counter() - started,
                f"{method} {path}",
                client[0] if client else "-",
            )

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
            if self.invoker.ready.is_set():
                return 200, [(b"content-type", JSON_TYPE)], b'{"status":"ready"}\n'
            return self._error(503, "MICROSERVICE_NOT_READY", self.invoker.not_ready_reason)
        if kind == "openapi":
            return 200, [(b"content-type", JSON_TYPE)], self.openapi
        if kind == "metadata":
            await self.invoker.wait_ready()
            meta = self.metadata()
            if meta is None:
                return self._error(500, BAD_METADATA, "Model metadata unavailable")
            return 200, [(b"content-type", JSON_TYPE)], jsonio.dumps(meta)
        ctype = headers.get(b"content-type", b"").decode("latin-1")
        query = scope.get("query_string", b"")
        if kind == "health_status":
            make_request = None
            codec = self.codecs["json"]
        elif kind == "predict" and self.passthrough:
            make_request = functools.partial(raw_payload, ctype, query, body)
            codec = self.codecs["passthrough"]
        elif kind == "send_feedback":
            codec = self.codecs["feedback"]
            make_request = functools.partial(_feedback_request, codec, ctype, query, body)
        else:
            make_request = functools.partial(request_payload, ctype, query, body)
            codec = self.codecs["json"]
        status, answer = await self.invoker.call(kind, make_request, codec)
        return status, [(b"content-type", JSON_TYPE)], answer

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


def _feedback_request(codec: Any, ctype: str, query: bytes, body: bytes) -> Any:
    return codec.parse_feedback(request_payload(ctype, query, body))
