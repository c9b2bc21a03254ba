"""The REST transport: a small ASGI application served by uvicorn.

It knows HTTP and nothing about models: it maps a path to an engine operation,
hands the body to the codec via the invoker, and turns errors into a status
and Seldon's JSON error body. Paths and methods come from the operation table
(`unitserve.operations`): Seldon's, plus ``/live`` and ``/ready``. Unknown
paths answer 404 and wrong methods 405, in the same JSON shape (Seldon answers
500 for both).

Which Seldon routes are served follows the registry's default model: a component's
(``/predict`` and the rest of the wrapper's API) or a deployment's (the orchestrator's
``/api/v1.0/predictions``, and its members' metadata and status by name).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from unitserve.calls import WIRE_REST
from unitserve.errors import (
    BAD_METADATA,
    NO_DEFAULT_MODEL,
    PayloadTooLarge,
    ServingError,
    UnknownModel,
    describe,
    log_error,
    status_body,
)
from unitserve.message import Codec
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import DEPLOYMENT_API, ServedModel
from unitserve.operations import INFER, OPERATIONS, V2_PROTOCOL
from unitserve.protocol import jsonio
from unitserve.protocol.v2.binary import BinaryAnswer
from unitserve.transport.accounting import PUID_KEY, PuidCodec, RequestAccounting
from unitserve.transport.rest.content_encoding import decoded
from unitserve.transport.rest.cors import Cors
from unitserve.transport.rest.docs_page import PREFIX as DOCS_PREFIX
from unitserve.transport.rest.docs_page import REDIRECT_LOCATION, REDIRECT_PATH, DocsPage
from unitserve.transport.rest.http_protocol import HOLD_HEAD
from unitserve.transport.rest.request_body import raw_payload, request_payload
from unitserve.transport.rest.routes import (
    DEPLOYMENT_ROUTES,
    DOCS_ROUTE,
    ROUTES,
    Route,
    member_route,
)
from unitserve.transport.rest.v2 import V2Rest, error_body
from unitserve.transport.rest.v2 import match as match_v2

__all__ = ["ROUTES", "NoBody", "RestApp", "RestRequest", "Route"]

log = logging.getLogger("unitserve")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, "bytes | BinaryAnswer"]

JSON_TYPE = b"application/json"
HTML_TYPE = b"text/html; charset=utf-8"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x per request
class RestRequest:
    """A REST request's body, with what reads it (`read` runs where the user code runs)."""

    body: bytes
    codec: Codec
    content_type: str
    query: bytes
    reader: Callable[[str, bytes, bytes], Any]  # (content type, query string, body) → payload
    puid: str | None = None  # a deployment's request id (Seldon-Puid), read and set by the model
    wire: ClassVar[str] = WIRE_REST  # which transport's forms a deployment answers in

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


@dataclass(frozen=True, slots=True)
class _Family:
    """How one family of routes is answered inside the common request skeleton: its
    requests' protocol label, its error body, and its answer to an accepted request."""

    protocol: str
    error: Callable[[int, str, str], Answer]  # (status, reason, message) → answer
    answer: Callable[[Route, Scope, dict[bytes, bytes], bytes], Awaitable[Answer]]
    failure: Callable[[BaseException, str], Answer]  # an exception → its answer (logged)


class RestApp:
    """The ASGI app of one worker."""

    def __init__(
        self,
        registry: ModelRegistry,
        codecs: dict[str, Codec],
        *,
        openapi: bytes,
        cors_origins: str = "*",
        max_body_size: int = 100 << 20,
        passthrough: bool = False,
        accounting: RequestAccounting,
        v2: V2Rest | None = None,
        docs: DocsPage | None = None,
    ) -> None:
        self.registry = registry  # the Seldon routes answer with its default model
        # The default model is chosen before the app is built and stays: its Seldon API
        # decides the routes once.
        default = registry.default
        self.deployment = default is not None and default.seldon_api == DEPLOYMENT_API
        self.routes = DEPLOYMENT_ROUTES if self.deployment else ROUTES
        self.codecs = codecs
        self.openapi = openapi
        self.cors = Cors(cors_origins)
        self.max_body_size = max_body_size
        self.passthrough = passthrough
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
        self.seldon = _Family("rest", self._error, self._dispatch, self.error_answer)
        self.oip = _Family(V2_PROTOCOL, self._v2_error, self._v2_answer, self._v2_failure)
        self.docs_family = _Family("rest", self._error, self._docs_answer, self.error_answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        path = scope["path"]
        route = self.routes.get(path)
        family = self.seldon
        if route is None:
            # Looked at only once the exact paths have missed: the Seldon routes pay nothing.
            if self.v2 is not None and path.startswith("/v2"):
                route, family = match_v2(path), self.oip
            elif self.docs is not None and path.startswith(DOCS_PREFIX):
                if path == REDIRECT_PATH or self.docs.find(path) is not None:
                    route, family = DOCS_ROUTE, self.docs_family
            elif self.deployment:
                route = member_route(path)
        await self._serve(scope, receive, send, started, route, family)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
        route: Route | None,
        family: _Family,
    ) -> None:
        """The one request skeleton: 404, OPTIONS, 405 with ``Allow``, the body within
        --max-body-size, the answer or the error, CORS, the write and the accounting."""
        self.accounting.started(family.protocol)
        headers = dict(scope["headers"])  # lower-case names; last one wins
        origin = headers.get(b"origin")
        path, method = scope["path"], scope["method"]
        extra: Headers
        body: bytes | BinaryAnswer
        if route is None:
            status, extra, body = family.error(404, "MICROSERVICE_NOT_FOUND", f"Not Found: {path}")
        elif method == "OPTIONS" and route.preflight:
            status, body = 200, b""
            extra = [
                (b"allow", route.allow),
                (b"content-type", HTML_TYPE),
                *self.cors.preflight(origin, headers.get(b"access-control-request-headers")),
            ]
        elif not route.accepts(method):
            status, extra, body = family.error(
                405,
                "MICROSERVICE_METHOD_NOT_ALLOWED",
                f"Method Not Allowed: {method} {path} (allowed: {route.allow.decode()})",
            )
            extra.append((b"allow", route.allow))
        else:
            try:
                payload = await self._read_body(receive, headers)
                status, extra, body = await family.answer(route, scope, headers, payload)
            except ClientGone:  # nobody to answer (the protocol may have answered 408)
                self.accounting.finished(
                    route.kind, family.protocol, "499", time.perf_counter() - started,
                    f"{method} {path}", "-", model=route.model,
                )  # fmt: skip
                return
            except Exception as exc:
                status, extra, body = family.failure(exc, f"{method} {path}")
        if method != "OPTIONS" or route is None or not route.preflight:
            extra.extend(self.cors.headers(origin))
        extra.append((b"content-length", str(len(body)).encode()))
        if method != "HEAD" and len(body) and (hold_head := scope.get(HOLD_HEAD)) is not None:
            hold_head()  # the head leaves with the (first part of the) body, in one write
        try:
            await send({"type": "http.response.start", "status": status, "headers": extra})
            if method == "HEAD":
                await send({"type": "http.response.body", "body": b""})
                return
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
                family.protocol,
                str(status),
                time.perf_counter() - started,
                f"{method} {path}",
                client[0] if client else "-",
                scope.get(PUID_KEY) if self.note_puid else None,
                route.model if route is not None else None,
            )

    # ------------------------------------------------------------------ the families

    async def _v2_answer(
        self, route: Route, scope: Scope, headers: dict[bytes, bytes], payload: bytes
    ) -> Answer:
        """A request under /v2 (see transport/rest/v2.py)."""
        assert self.v2 is not None
        encoding = headers.get(b"content-encoding")
        if encoding is not None and route.kind == INFER.name:
            # Off the event loop: inflating up to --max-body-size takes a while, and
            # health probes must still be answered meanwhile.
            payload = await asyncio.get_running_loop().run_in_executor(
                None, decoded, payload, encoding, self.max_body_size
            )
        return await self.v2.answer(route, headers, payload, scope if self.note_puid else None)

    def _v2_error(self, status: int, reason: str, message: str) -> Answer:
        return status, [(b"content-type", JSON_TYPE)], error_body(message)

    def _v2_failure(self, exc: BaseException, where: str) -> Answer:
        answer = describe(exc)
        # Logged in V2's terms: an Open Inference client saw a status, no Seldon reason.
        log_error(exc, where, said_as=str(answer.http_status))
        return self._v2_error(answer.http_status, answer.reason, answer.message)

    async def _docs_answer(
        self, route: Route, scope: Scope, headers: dict[bytes, bytes], payload: bytes
    ) -> Answer:
        """The API docs page or one of its assets; ``/docs/`` is redirected to the page
        (its query string kept)."""
        assert self.docs is not None
        found = self.docs.find(scope["path"])
        if found is None:
            query = scope.get("query_string", b"")
            location = REDIRECT_LOCATION + (b"?" + query if query else b"")
            return 307, [(b"location", location), (b"content-type", HTML_TYPE)], b""
        content_type, body = found
        return 200, [(b"content-type", content_type)], body

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
    ) -> Answer:
        """A Seldon route's answer."""
        kind = route.kind
        model = self._default()
        if kind == "ping":
            return 200, [(b"content-type", HTML_TYPE)], b"pong"
        if kind == "live":
            return 200, [(b"content-type", JSON_TYPE)], b'{"status":"alive"}\n'
        if kind == "ready":
            waiting = await model.not_ready()
            if waiting is not None:
                return self._error(503, "MICROSERVICE_NOT_READY", waiting)
            return 200, [(b"content-type", JSON_TYPE)], b'{"status":"ready"}\n'
        if kind == "openapi":
            return 200, [(b"content-type", JSON_TYPE)], self.openapi
        if kind == "metadata":
            await model.wait_ready()
            meta = model.metadata
            if meta is None:
                return self._error(500, BAD_METADATA, "Model metadata unavailable")
            return 200, [(b"content-type", JSON_TYPE)], jsonio.dumps(meta)
        if kind in ("node_metadata", "node_status"):  # only a deployment has these routes
            return await self._member(model, kind, scope["path"].rpartition("/")[2])
        if kind == "health_status":
            request: RestRequest | NoBody = self.probe
        else:
            reader, codec = self.readers[kind]
            ctype = headers.get(b"content-type", b"").decode("latin-1")
            request = RestRequest(body, codec, ctype, scope.get("query_string", b""), reader)
            if model.carries_puid:
                puid = headers.get(b"seldon-puid")
                request.puid = puid.decode("latin-1") if puid else None
            elif self.note_puid:
                request.codec = PuidCodec(codec, request)
        try:
            status, answer = await model.call(kind, request)
        finally:
            if self.note_puid and isinstance(request, RestRequest):
                scope[PUID_KEY] = request.puid  # the graph's, or the one its meta carried
        if model.carries_puid and isinstance(request, RestRequest) and request.puid:
            return (
                status,
                [(b"content-type", JSON_TYPE), (b"seldon-puid", request.puid.encode("latin-1"))],
                answer,
            )
        return status, [(b"content-type", JSON_TYPE)], answer

    async def _member(self, model: ServedModel, kind: str, name: str) -> Answer:
        """A deployment's member's metadata or health status, by name (the model says
        when it has no member of that name)."""
        await model.wait_ready()
        if kind == "node_metadata":
            meta = model.member_metadata(name)
            if meta is None:
                return self._error(500, BAD_METADATA, "Model metadata unavailable")
            return 200, [(b"content-type", JSON_TYPE)], jsonio.dumps(meta)
        status, body = await model.member_status(name, self.probe)
        return status, [(b"content-type", JSON_TYPE)], body

    def _error(self, status: int, reason: str, info: str) -> Answer:
        return status, [(b"content-type", JSON_TYPE)], jsonio.dumps(status_body(info, reason))

    def _default(self) -> ServedModel:
        model = self.registry.default
        if model is None:
            raise UnknownModel(NO_DEFAULT_MODEL)
        return model

    def error_answer(self, exc: BaseException, where: str) -> Answer:
        default = self.registry.default
        handlers = default.error_handlers if default is not None else None
        if handlers is not None and not isinstance(exc, ServingError):
            handled = handlers.answer(exc)
            if handled is not None:
                status, body, content_type = handled
                log.info(
                    "%s: %s answered %d by model_error_handler", where, type(exc).__name__, status
                )
                return status, [(b"content-type", content_type.encode("latin-1"))], body
        log_error(exc, where)
        answer = describe(exc)
        return self._error(answer.http_status, answer.reason, answer.message)
