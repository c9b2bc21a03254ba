"""How responses leave the REST port: the head is held and written with its body
(http_protocol.py), so every kind of response must still arrive whole, in order,
and without waiting for the next one."""

from __future__ import annotations

import json
import socket

import pytest


@pytest.fixture(scope="module")
def server(request):
    from ..conftest import Server

    server = Server("Identity", grpc=False).start()
    yield server
    server.stop()


def post(path: str, body: bytes, *extra: bytes) -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path.encode()
    return (
        head
        + b"".join(h + b"\r\n" for h in extra)
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


class Responses:
    """Reads HTTP/1.1 responses (Content-Length framed) one by one from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise AssertionError(f"connection closed; unread: {self.buffer[:200]!r}")
        self.buffer += chunk

    def next(self, head_only: bool = False) -> tuple[int, dict[bytes, bytes], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.split(b"\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines)}
        length = 0 if head_only else int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body


def test_pipelined_requests_of_every_shape_are_answered_whole_and_in_order(server):
    big = "x" * 300_000  # above the size up to which head and body are joined
    requests = [
        post("/predict", b'{"data": {"ndarray": [[1, 2]]}}'),
        b"HEAD /health/ping HTTP/1.1\r\nHost: x\r\n\r\n",  # a head and no body
        b"GET /health/ping HTTP/1.1\r\nHost: x\r\n\r\n",
        post("/predict", json.dumps({"strData": big}).encode()),
        b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n",
        post("/predict", b'{"strData": "last"}', b"Connection: close"),
    ]
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=15) as sock:
        sock.sendall(b"".join(requests))
        answers = Responses(sock)
        status, _, body = answers.next()
        assert (status, json.loads(body)["data"]["ndarray"]) == (200, [[1, 2]])
        status, headers, _ = answers.next(head_only=True)
        assert (status, headers[b"content-length"]) == (200, b"4")
        assert answers.next()[::2] == (200, b"pong")
        status, _, body = answers.next()
        assert (status, json.loads(body)["strData"]) == (200, big)
        status, _, body = answers.next()
        assert status == 404 and b"Not Found: /nowhere" in body
        status, headers, body = answers.next()
        assert (status, json.loads(body)["strData"]) == (200, "last")
        assert headers[b"connection"] == b"close"
        assert sock.recv(1) == b"" and answers.buffer == b""


def test_a_head_request_alone_is_answered_at_once(server):
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        for _ in range(3):  # on one keep-alive connection: nothing is left held
            sock.sendall(b"HEAD /health/status HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = Responses(sock).next(head_only=True)
            assert status == 200 and int(headers[b"content-length"]) > 0


def test_expect_100_continue_is_answered_before_the_body_is_sent(server):
    body = b'{"strData": "after the interim answer"}'
    request = post("/predict", body, b"Expect: 100-continue")
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(request[: -len(body)])
        answers = Responses(sock)
        assert answers.next(head_only=True)[0] == 100  # not held back with the answer
        sock.sendall(body)
        status, _, answer = answers.next()
        assert (status, json.loads(answer)["strData"]) == (200, "after the interim answer")
