"""HTTP-level limits of the REST port: request heads, slow clients, body size."""

from __future__ import annotations

import socket
import time

import pytest

HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


@pytest.fixture(scope="module")
def quick(request):
    from ..conftest import Server

    server = Server("Identity", "--http-timeout", "1", grpc=False).start()
    yield server
    server.stop()


def test_a_head_that_never_ends_is_408(quick):
    with socket.create_connection(("127.0.0.1", quick.http_port), timeout=10) as s:
        s.sendall(HEAD + b"X-Slow: partial")  # and then nothing
        started = time.monotonic()
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"no complete request head within 1 s" in answer
    assert time.monotonic() - started < 8


def test_a_body_that_stops_arriving_is_408(quick):
    with socket.create_connection(("127.0.0.1", quick.http_port), timeout=10) as s:
        s.sendall(HEAD + b"Content-Length: 100\r\n\r\n" + b'{"strData": "')
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"the request body stopped arriving" in answer
    assert quick.post("/predict", json={"strData": "still fine"}).status_code == 200


def test_a_connection_that_sends_nothing_is_closed(quick):
    with socket.create_connection(("127.0.0.1", quick.http_port), timeout=10) as s:
        assert read_all(s) == b""  # closed by the server, nothing to answer


def test_a_slow_but_steady_body_is_served(quick):
    body = b'{"strData": "' + b"x" * 50 + b'"}'
    with socket.create_connection(("127.0.0.1", quick.http_port), timeout=10) as s:
        s.sendall(HEAD + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 20):  # pauses shorter than the timeout
            s.sendall(body[i : i + 20])
            time.sleep(0.3)
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 200 "), answer


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (b"X-Big: " + b"a" * 9000 + b"\r\n", b"a header field is longer than 8190 bytes"),
        (b"".join(b"X-%d: v\r\n" % i for i in range(101)), b"more than 100 header fields"),
        (b"X-Huge: " + b"a" * 1_000_000 + b"\r\n", b"the request head is larger than 65536 bytes"),
    ],
)
def test_oversized_heads_are_431_with_a_json_reason(quick, extra, why):
    with socket.create_connection(("127.0.0.1", quick.http_port), timeout=10) as s:
        s.sendall(HEAD + b"Connection: close\r\nContent-Length: 2\r\n" + extra + b"\r\n{}")
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert why in answer and b'"reason":"MICROSERVICE_BAD_DATA"' in answer
    assert quick.get("/health/ping").text == "pong"


def test_http_timeout_zero_means_no_limit():
    """0 switches the head and body timeout off, like 0 for --request-timeout; it used
    to close every connection as soon as it opened."""
    from ..conftest import Server

    server = Server("Identity", "--http-timeout", "0", grpc=False).start()
    try:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as s:
            s.sendall(HEAD)  # a head without its end: the client is still typing
            # Whole requests on other connections go through meanwhile, and the
            # unfinished head is still welcome after them.
            for _ in range(3):
                assert server.post("/predict", json={"strData": "x"}).status_code == 200
            body = b'{"strData": "late"}'
            s.sendall(b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            answer = read_all(s)
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert b'"late"' in answer
