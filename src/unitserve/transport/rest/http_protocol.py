"""uvicorn's httptools protocol with what a model server in front of production
traffic needs and httptools lacks.

* **Request-head limits.** httptools accepts any head: a 10 MB header line, a
  hundred thousand headers, an unfinished line that grows without end. Heads are
  limited (gunicorn's defaults, which Seldon had: 100 fields of at most 8190
  bytes; 64 KiB in all, room for a ``GET ?json=`` payload) and a larger one is
  answered 431 with Seldon's JSON error body.
* **Head and body timeouts.** uvicorn times out idle keep-alive connections only
  after a response: a connection that never sends a complete head, or a body that
  stops arriving, would hold a connection (and a waiting request) forever. Either
  is answered 408 after `timeout` seconds (``--http-timeout``).
* **A drain that drops nothing.** On shutdown uvicorn closes idle keep-alive
  connections at once, so a request a client has just sent on one is lost.
  Here an idle connection gets a short grace: a request that arrives meanwhile is
  answered with ``Connection: close``; a connection that stays idle is closed.
* **One write per response.** uvicorn writes a response's head and its body
  separately: two system calls and two TCP segments for every small answer. The
  app asks for the head to be held (``scope[HOLD_HEAD]``) when the body follows
  at once, and both leave in one write.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from unitserve.errors import BAD_DATA, status_body

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
MAX_FIELD_BYTES = 8190
# How long an idle keep-alive connection stays open once the worker drains: a client
# that had already sent its next request gets it answered (then the connection closes).
DRAIN_IDLE_GRACE = 1.0

_REASONS = {431: b"Request Header Fields Too Large", 408: b"Request Timeout"}
# After refusing a request whose rest is still coming, keep reading (and dropping) it
# for a while before closing: closing with unread input makes the kernel send a reset,
# which can destroy the answer before the client reads it.
LINGER_SECONDS = 2.0
LINGER_BYTES = 16 << 20

#: Scope key of a callable the ASGI app calls just before sending a response whose
#: body it sends right after: the head is then held and written with the body.
HOLD_HEAD = "unitserve.hold_head"
# Above this size the body is written after the held head rather than copied onto it.
_JOIN_LIMIT = 64 * 1024


class _OneWriteTransport:
    """What a request cycle writes through: the connection's transport, except that a
    response head the app asked to hold waits for the next write and leaves with it.
    Anything held is written before the transport closes and when the response is
    complete, so nothing is delayed beyond its own response."""

    __slots__ = ("armed", "held", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.armed = False
        self.held: bytes | None = None

    def hold_head(self) -> None:
        self.armed = True

    def write(self, data: bytes) -> None:
        if self.armed:
            self.armed, self.held = False, data
            return
        held = self.held
        if held is not None:
            self.held = None
            if len(data) <= _JOIN_LIMIT:
                data = held + data
            else:
                self.transport.write(held)
        self.transport.write(data)

    def flush(self) -> None:
        self.armed = False
        held, self.held = self.held, None
        if held is not None and not self.transport.is_closing():
            self.transport.write(held)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _HeadRefused(Exception):
    """Raised from a parser callback: httptools then stops and uvicorn answers 400,
    which `send_400_response` turns into our answer."""


class LimitedHttpProtocol(HttpToolsProtocol):
    timeout = 30.0  # --http-timeout: for a request head, or a pause within a body
    _refusal: tuple[int, str] | None = None
    _in_head = True  # between the end of a request's head and the start of the next
    _head_bytes = 0  # received while the head is unfinished (httptools keeps it all)
    # What the connection waits for from the client, and since when (loop time):
    # "head" (a new connection, or the first bytes of the next request) or "body".
    # A sweep over all connections enforces `timeout` (no timer per request).
    _waiting: str | None = None
    _since = 0.0
    _draining = False
    _idle_close: asyncio.TimerHandle | None = None
    _lingering = -1  # bytes still to drop after a refusal; -1: not lingering

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._writer = _OneWriteTransport(transport)
        self._waiting, self._since = "head", self.loop.time()
        if self.timeout > 0:  # 0: no limit, so nothing to sweep for
            _Sweeper.watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._waiting = None
        _Sweeper.forget(self)
        if self._idle_close is not None:
            self._idle_close.cancel()
            self._idle_close = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering >= 0:
            self._lingering -= len(data)
            if self._lingering < 0:
                self.transport.close()
            return
        if self._in_head:
            if self._idle_close is not None:  # a request arrives during the drain grace
                self._idle_close.cancel()
                self._idle_close = None
            if self._waiting != "head":
                self._waiting, self._since = "head", self.loop.time()
            self._head_bytes += len(data)
        super().data_received(data)
        # Bytes of an unfinished head never reach on_header: count them as they come.
        if (
            self._in_head
            and self._head_bytes > MAX_HEAD_BYTES
            and self._refusal is None
            and not self.transport.is_closing()
        ):
            self._refuse(431, f"the request head is larger than {MAX_HEAD_BYTES} bytes")
            self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > MAX_FIELD_BYTES:
            raise _HeadRefused(
                self._refuse(431, f"a header field is longer than {MAX_FIELD_BYTES} bytes")
            )
        if len(self.headers) >= MAX_HEADER_FIELDS:
            raise _HeadRefused(self._refuse(431, f"more than {MAX_HEADER_FIELDS} header fields"))
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._waiting, self._since = "body", self.loop.time()  # until on_message_complete
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope:  # the request's own cycle
            # The writer stands in for the transport (it forwards everything else), and
            # the scope takes one key of ours beyond the ASGI ones.
            cycle.transport = self._writer  # type: ignore[assignment]
            self.scope[HOLD_HEAD] = self._writer.hold_head  # type: ignore[literal-required]
            if self._draining:
                cycle.keep_alive = False

    def on_response_complete(self) -> None:
        self._writer.flush()
        super().on_response_complete()

    def on_body(self, body: bytes) -> None:
        self._since = self.loop.time()  # the timeout is for a pause, not the whole body
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._waiting = None  # now the client waits for us
        super().on_message_complete()
        self._in_head = True

    def shutdown(self) -> None:
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            if self._idle_close is None and not self.transport.is_closing():
                self._idle_close = self.loop.call_later(DRAIN_IDLE_GRACE, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        status, info = self._refusal
        body = orjson.dumps(status_body(info, BAD_DATA), option=orjson.OPT_SORT_KEYS) + b"\n"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self._waiting = None
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._lingering = LINGER_BYTES
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    # ---------------------------------------------------------------- helpers

    def _count(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD_BYTES:
            raise _HeadRefused(
                self._refuse(431, f"the request head is larger than {MAX_HEAD_BYTES} bytes")
            )

    def _refuse(self, status: int, info: str) -> str:
        self._refusal = (status, info)
        return info

    def check_timeout(self, now: float) -> None:
        """Called by the sweep: answer 408 to a client that has kept us waiting too long."""
        if self._waiting is None or now - self._since < self.timeout:
            return
        if self.transport.is_closing():
            self._waiting = None
            return
        if self._waiting == "body":
            self._refuse(
                408, f"the request body stopped arriving ({self.timeout:g} s without data)"
            )
            self.send_400_response("")
            if self.cycle is not None:  # wake the request waiting for its body
                self.cycle.disconnected = True
                self.cycle.message_event.set()
        elif self.cycle is not None and not self.cycle.response_complete:
            self._since = now  # a pipelined head waits for us, not for the client
        elif self._head_bytes:
            self._refuse(408, f"no complete request head within {self.timeout:g} s")
            self.send_400_response("")
        else:  # nothing was sent: just close, as for an idle keep-alive connection
            self._waiting = None
            self.transport.close()

    def _close_if_idle(self) -> None:
        self._idle_close = None
        if self.cycle is not None and not self.cycle.response_complete:
            return
        if self._head_bytes or _has_unread_data(self.transport):
            # A request is arriving (or waits in the socket for a busy loop to read it).
            self._idle_close = self.loop.call_later(DRAIN_IDLE_GRACE, self._close_if_idle)
            return
        self.transport.close()


class _Sweeper:
    """One periodic check per event loop over every open connection's timeouts."""

    _by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.connections: set[LimitedHttpProtocol] = set()
        self.handle: asyncio.TimerHandle | None = None

    @classmethod
    def watch(cls, protocol: LimitedHttpProtocol) -> None:
        interval = min(1.0, protocol.timeout / 4)
        sweeper = cls._by_loop.get(protocol.loop)
        if sweeper is None:
            sweeper = cls._by_loop[protocol.loop] = cls(protocol.loop, interval)
        sweeper.interval = min(sweeper.interval, interval)
        sweeper.connections.add(protocol)
        if sweeper.handle is None:
            sweeper.handle = sweeper.loop.call_later(sweeper.interval, sweeper.sweep)

    @classmethod
    def forget(cls, protocol: LimitedHttpProtocol) -> None:
        sweeper = cls._by_loop.get(protocol.loop)
        if sweeper is not None:
            sweeper.connections.discard(protocol)

    def sweep(self) -> None:
        now = self.loop.time()
        for protocol in list(self.connections):
            protocol.check_timeout(now)
        # Stop when no connection is left, so an idle loop has nothing scheduled.
        self.handle = self.loop.call_later(self.interval, self.sweep) if self.connections else None


def _has_unread_data(transport: Any) -> bool:
    """Whether the kernel holds bytes the loop has not read yet on this connection."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        with socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_STREAM) as peek:
            return bool(peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False


def protocol_class(timeout: float) -> type[LimitedHttpProtocol]:
    """The protocol with the configured timeout, 0 for none (uvicorn builds protocols
    from a class)."""
    return type("HttpProtocol", (LimitedHttpProtocol,), {"timeout": timeout})
