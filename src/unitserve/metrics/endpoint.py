"""The Prometheus endpoint, served by the supervisor on the metrics port.

A deliberately small HTTP server driven by the supervisor's own selector loop:
the supervisor must stay single-threaded so that it can fork workers safely.
Every connection is non-blocking and has a deadline, so idle or slow clients
cannot hold up a scrape (or the supervisor). One request per connection, closed
after the answer. Answers GET and HEAD on ``PREDICTIVE_UNIT_METRICS_ENDPOINT``
(default ``/metrics``) and on ``/prometheus`` (the path the Seldon operator
configures); 404 elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from dataclasses import dataclass

from unitserve.metrics import supervisor as merged

log = logging.getLogger("unitserve")

DEADLINE_SECONDS = 5.0  # for a whole exchange: request in, answer out
MAX_CONNECTIONS = 64
MAX_REQUEST_BYTES = 16 * 1024
TEXT = "text/plain; charset=utf-8"


@dataclass
class _Exchange:
    deadline: float
    received: bytes = b""
    answer: bytes = b""
    sent: int = 0


class MetricsHttpServer:
    def __init__(
        self,
        sock: socket.socket,
        directory: str,
        endpoint: str,
        selector: selectors.BaseSelector,
        user_metrics_by_model: bool = False,
    ) -> None:
        sock.setblocking(False)
        self.listening = sock
        self.directory = directory
        # A model repository's user metrics name their model (see merged.exposition).
        self.user_metrics_by_model = user_metrics_by_model
        self.paths = frozenset({endpoint, "/prometheus"})
        self.selector = selector
        self.exchanges: dict[socket.socket, _Exchange] = {}
        selector.register(sock, selectors.EVENT_READ, self._accept)

    # The selector's data for each registered socket is the method to call when it is ready.

    def _accept(self, _: socket.socket) -> None:
        while True:
            try:
                conn, _address = self.listening.accept()
            except OSError:  # BlockingIOError: nothing more to accept
                return
            if len(self.exchanges) >= MAX_CONNECTIONS:
                conn.close()
                continue
            conn.setblocking(False)
            self.exchanges[conn] = _Exchange(time.monotonic() + DEADLINE_SECONDS)
            self.selector.register(conn, selectors.EVENT_READ, self._readable)

    def _readable(self, conn: socket.socket) -> None:
        exchange = self.exchanges.get(conn)
        if exchange is None:  # closed earlier in the same round of events
            return
        try:
            data = conn.recv(8192)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        exchange.received += data
        if b"\r\n\r\n" in exchange.received or b"\n\n" in exchange.received:
            self._answer(conn, exchange)
        elif len(exchange.received) > MAX_REQUEST_BYTES:
            self._reply(conn, exchange, 431, b"request head too large\n", TEXT, head=False)

    def _answer(self, conn: socket.socket, exchange: _Exchange) -> None:
        method, path = _request_line(exchange.received)
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            self._reply(conn, exchange, 405, b"Method Not Allowed\n", TEXT, head)
        elif path.split("?", 1)[0] not in self.paths:
            self._reply(conn, exchange, 404, b"Not Found\n", TEXT, head)
        else:
            try:
                body = merged.exposition(self.directory, self.user_metrics_by_model)
            except Exception:
                log.exception("building the metrics exposition failed")
                self._reply(conn, exchange, 500, b"metrics unavailable\n", TEXT, head)
                return
            self._reply(conn, exchange, 200, body, merged.CONTENT_TYPE, head)

    def _reply(
        self,
        conn: socket.socket,
        exchange: _Exchange,
        status: int,
        body: bytes,
        content_type: str,
        head: bool,
    ) -> None:
        reason = {
            200: "OK",
            404: "Not Found",
            405: "Method Not Allowed",
            431: "Request Header Fields Too Large",
            500: "Internal Server Error",
        }[status]
        exchange.answer = (
            f"HTTP/1.0 {status} {reason}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + (b"" if head else body)
        self.selector.modify(conn, selectors.EVENT_WRITE, self._writable)
        self._writable(conn)

    def _writable(self, conn: socket.socket) -> None:
        exchange = self.exchanges.get(conn)
        if exchange is None:
            return
        try:
            exchange.sent += conn.send(exchange.answer[exchange.sent :])
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if exchange.sent >= len(exchange.answer):
            self._close(conn)

    def expire(self, now: float) -> None:
        """Close the exchanges past their deadline (call now and then)."""
        for conn in [c for c, e in self.exchanges.items() if e.deadline < now]:
            self._close(conn)

    def _close(self, conn: socket.socket) -> None:
        self.exchanges.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def close_in_child(self) -> None:
        """In a forked worker: close our copies of the sockets without touching the
        selector, whose epoll instance the fork shares with the supervisor."""
        for conn in self.exchanges:
            conn.close()
        self.listening.close()

    def close(self) -> None:
        for conn in list(self.exchanges):
            self._close(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.listening)
        self.listening.close()


def _request_line(head: bytes) -> tuple[str, str]:
    words = head.split(b"\n", 1)[0].decode("latin-1").split()
    return (words[0], words[1]) if len(words) >= 2 else ("", "")
