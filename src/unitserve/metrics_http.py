"""The Prometheus endpoint, served by the supervisor on the metrics port.

A deliberately small HTTP/1.0 server run from the supervisor's own loop (one
request at a time, short socket timeouts): scrapes are rare and cheap, and the
supervisor must stay single-threaded so that it can fork workers safely.
Answers GET on PREDICTIVE_UNIT_METRICS_ENDPOINT (default /metrics) and on
/prometheus (the path the Seldon operator configures); 404 elsewhere.
"""

from __future__ import annotations

import logging
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from . import metrics

log = logging.getLogger("unitserve")

_TIMEOUT = 2.0  # seconds a scraper may take to send its request


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _TIMEOUT
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in self.server.paths:
            self._send(404, b"Not Found\n", "text/plain; charset=utf-8")
            return
        try:
            body = metrics.exposition(self.server.directory)
        except Exception:
            log.exception("building the metrics exposition failed")
            self._send(500, b"metrics unavailable\n", "text/plain; charset=utf-8")
            return
        self._send(200, body, metrics.CONTENT_TYPE)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes are kept out of the logs


class _Server(HTTPServer):
    directory: str
    paths: frozenset[str]

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics request from %s failed", client_address, exc_info=True)


class MetricsHttpServer:
    def __init__(self, sock: socket.socket, directory: str, endpoint: str) -> None:
        self.server = _Server(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = sock
        self.server.timeout = 0
        self.server.directory = directory
        self.server.paths = frozenset({endpoint, "/prometheus"})

    def handle(self) -> None:
        """Answer one pending request (the listening socket is readable)."""
        self.server.handle_request()

    def close(self) -> None:
        self.server.socket.close()
