"""A lean HTTP/1.1 client: keep-alive connections on asyncio, answers parsed by httptools.

Why it exists: `unitserve batch` sends many small requests, and a general HTTP library
spends several times a line's other work on each one (connection-pool bookkeeping,
polling every pooled socket for expiry, stream wrappers, URL merging, cookies). This
does only what the batch tool needs: each request is written in one go on a connection
of its own (one per request in flight, kept open between requests), and the answer is
parsed by httptools (the C parser uvicorn uses), which handles Content-Length and
chunked bodies.

A connection that the server closed (or reset, or marked ``Connection: close``) is
dropped, and the next request opens a new one. A request that gets no complete answer
raises `NoAnswer` and is not tried again here: whether to try again is the caller's
choice, as it is with any other HTTP library.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import cast

import httptools


class NoAnswer(ConnectionError):
    """No complete answer: the connection was refused, dropped or reset, or the answer
    was not HTTP. The server may or may not have seen the request."""


class AnswerTimeout(TimeoutError):
    """The server took longer than the timeout to answer (it may still be working)."""


class Headers(dict[str, str]):
    """An answer's headers, names in lower case (a repeated header keeps the last)."""


class Response:
    """An HTTP answer: status code and phrase, headers (lower-case names), whole body."""

    __slots__ = ("content", "headers", "reason_phrase", "status_code")

    def __init__(self, status_code: int, reason_phrase: str, headers: Headers, content: bytes):
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.headers = headers
        self.content = content


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request on it at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.answer: asyncio.Future[Response] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = b""
        self.headers = Headers()
        self.body: list[bytes] = []
        self.headers_done = False

    # asyncio's side
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, though they act so.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(NoAnswer(f"the answer is not HTTP/1.1: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self.answer
        if answer is None or answer.done():
            return
        if self.headers_done and self._ends_at_close():
            # An answer with neither a length nor chunks ends where the connection does.
            self.on_message_complete()
            return
        why = f": {exc}" if exc else ""
        self._fail(NoAnswer(f"the server closed the connection before answering{why}"))

    def _ends_at_close(self) -> bool:
        return "content-length" not in self.headers and "transfer-encoding" not in self.headers

    # httptools' side
    def on_status(self, status: bytes) -> None:
        self.status += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        answer = self.answer
        response = Response(
            self.parser.get_status_code(),
            self.status.decode("latin-1"),
            self.headers,
            b"".join(self.body),
        )
        if not self.parser.should_keep_alive():
            self.close()
        self._reset()
        self.answer = None
        if answer is not None and not answer.done():
            answer.set_result(response)

    # ours
    def _fail(self, exc: Exception) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive HTTP/1.1 connections to one server: as many as requests in flight at
    once (the batch tool's workers), each kept for the next request."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if tls else None
        authority = host if ":" not in host else f"[{host}]"  # an IPv6 address
        fixed = {"host": f"{authority}:{port}", **(headers or {})}
        self._fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and return its answer, whatever the status; raise `NoAnswer`
        or `AnswerTimeout` when there is none."""
        conn = await self._connection()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        length = f"content-length: {len(body)}\r\n" if body is not None else ""
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed}{extra}{length}\r\n".encode("latin-1")
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Response] = loop.create_future()
        conn.answer = answer
        assert conn.transport is not None
        try:
            conn.transport.write(head + body if body else head)
        except (OSError, RuntimeError) as exc:  # the transport was closing
            self._discard(conn)
            raise NoAnswer(f"cannot send the request: {exc}") from None
        timer = loop.call_later(self.timeout, _time_out, answer)
        try:
            response = await answer
        except BaseException:
            # Timed out, cancelled or broken: an answer may still arrive on this
            # connection, so it cannot carry another request.
            self._discard(conn)
            raise
        finally:
            timer.cancel()
        if conn.closed:
            self._discard(conn)
        else:
            self._idle.append(conn)
        return response

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._all.discard(conn)
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                ),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise NoAnswer(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        if conn.closed:  # lost at once: nothing would ever answer on it
            conn.close()
            raise NoAnswer(f"{self.host}:{self.port} closed the connection at once")
        self._all.add(conn)
        return conn

    def _discard(self, conn: _Connection) -> None:
        conn.close()
        self._all.discard(conn)

    async def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()


def _time_out(answer: asyncio.Future[Response]) -> None:
    if not answer.done():
        answer.set_exception(AnswerTimeout("no answer in time"))
