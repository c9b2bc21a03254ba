"""The worker's HTTP protocol driven byte by byte over a fake transport: pipelining,
HEAD, keep-alive and close, head limits, timeouts, the drain, one write per answer.

Time never passes here: a timeout is exercised by asking the connection to check
itself at a later loop time, as the periodic sweep would."""

from __future__ import annotations

import pytest

from unitserve.transport.rest.http_protocol import MAX_HEAD_BYTES

PING = b"GET /health/ping HTTP/1.1\r\nHost: x\r\n\r\n"
BODY = b'{"strData": "hi"}'
PREDICT = (
    b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)


@pytest.fixture
def conn(model):
    return model("Identity").connect(http_timeout=1.0)


def test_one_request_one_answer_in_one_write(conn):
    conn.send(PREDICT)
    [answer] = conn.settle(1)
    assert answer.status == 200
    assert answer.json() == {"strData": "hi", "meta": {}}
    assert answer.headers["content-type"] == "application/json"
    assert len(conn.transport.writes) == 1  # the head left with the body
    assert not conn.transport.closed  # HTTP/1.1 keeps the connection


def test_pipelined_requests_are_answered_in_order(conn):
    conn.send(PREDICT + PING + PREDICT.replace(b'"hi"', b'"yo"'))
    answers = conn.settle(3)
    assert [a.status for a in answers] == [200, 200, 200]
    assert answers[0].json()["strData"] == "hi"
    assert answers[1].body == b"pong"
    assert answers[2].json()["strData"] == "yo"


def test_a_request_split_across_reads(conn):
    for i in range(0, len(PREDICT), 7):
        conn.send(PREDICT[i : i + 7])
    [answer] = conn.settle(1)
    assert answer.json()["strData"] == "hi"


def test_head_has_length_and_no_body(conn):
    conn.send(b"HEAD /health/ping HTTP/1.1\r\nHost: x\r\n\r\n" + PING)
    conn.settle(1)
    out = conn.transport.output
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"content-length: 4" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200 ")  # the next answer follows at once: no body
    assert rest.endswith(b"pong")


def test_unknown_path_and_wrong_method_bodies(conn):
    conn.send(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nDELETE /predict HTTP/1.1\r\nHost: x\r\n\r\n")
    not_found, not_allowed = conn.settle(2)
    assert not_found.status == 404
    assert not_found.json() == {
        "status": {
            "code": -1,
            "info": "Not Found: /nope",
            "reason": "MICROSERVICE_NOT_FOUND",
            "status": 1,
        }
    }
    assert not_allowed.status == 405
    assert not_allowed.json()["status"]["reason"] == "MICROSERVICE_METHOD_NOT_ALLOWED"
    assert not_allowed.headers["allow"] == "GET, HEAD, OPTIONS, POST"


def test_connection_close_is_honoured(conn):
    conn.send(PING.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    [answer] = conn.settle(1)
    assert answer.headers["connection"] == "close"
    assert conn.transport.closed


def test_http_10_closes(conn):
    conn.send(b"GET /health/ping HTTP/1.0\r\n\r\n")
    [answer] = conn.settle(1)
    assert answer.body == b"pong"
    assert conn.transport.closed


def test_body_over_the_limit_is_413(model):
    conn = model("Identity", max_body_size=10).connect()
    conn.send(PREDICT)
    [answer] = conn.settle(1)
    assert answer.status == 413
    assert "--max-body-size" in answer.json()["status"]["info"]


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (b"X-Big: " + b"a" * 9000 + b"\r\n", "a header field is longer than 8190 bytes"),
        (b"".join(b"X-%d: v\r\n" % i for i in range(101)), "more than 100 header fields"),
        (b"X-Huge: " + b"a" * 1_000_000 + b"\r\n", "the request head is larger than 65536 bytes"),
    ],
)
def test_oversized_heads_are_431_with_a_json_reason(conn, extra, why):
    data = PREDICT.replace(b"Host: x\r\n", b"Host: x\r\n" + extra)
    for i in range(0, len(data), 16384):  # in pieces, as a socket delivers a large head
        if conn.transport.closed or conn.transport.eof:
            break
        conn.send(data[i : i + 16384])
    [answer] = conn.settle(1)
    assert answer.status == 431
    assert answer.headers["connection"] == "close"
    assert answer.json() == {
        "status": {"code": -1, "info": why, "reason": "MICROSERVICE_BAD_DATA", "status": 1}
    }
    assert conn.transport.eof  # the rest of the request is read and dropped, then closed


def test_an_unfinished_head_over_the_limit_is_431(conn):
    conn.send(b"GET /health/ping HTTP/1.1\r\nX-Endless: " + b"a" * (MAX_HEAD_BYTES + 10))
    [answer] = conn.settle(1)
    assert answer.status == 431
    assert "larger than 65536 bytes" in answer.json()["status"]["info"]


def later(conn, seconds):
    """What the sweep would do `seconds` from now."""
    conn.protocol.check_timeout(conn.loop.time() + seconds)


def test_a_head_that_never_ends_is_408(conn):
    conn.send(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: partial")
    later(conn, 0.5)
    assert conn.transport.output == b""  # within the timeout: still waiting
    later(conn, 2)
    [answer] = conn.settle(1)
    assert answer.status == 408
    assert answer.json()["status"]["info"] == "no complete request head within 1 s"


def test_a_body_that_stops_arriving_is_408(conn):
    conn.send(PREDICT[: -len(BODY)] + BODY[:5])
    conn.settle(0, limit=1)
    later(conn, 2)
    [answer] = conn.settle(1)
    assert answer.status == 408
    assert "the request body stopped arriving (1 s without data)" in answer.json()["status"]["info"]


def test_a_connection_that_sends_nothing_is_closed_without_answer(conn):
    later(conn, 2)
    assert conn.transport.closed and conn.transport.output == b""


def test_a_served_keep_alive_connection_is_not_timed_out_by_the_sweep(conn):
    conn.send(PING)
    conn.settle(1)
    later(conn, 0.5)
    assert not conn.transport.closed


def test_drain_closes_an_idle_connection_after_its_grace(conn):
    conn.send(PING)
    conn.settle(1)
    conn.protocol.shutdown()
    assert not conn.transport.closed  # a short grace first
    conn.protocol._close_if_idle()  # the grace timer fires
    assert conn.transport.closed


def test_request_during_the_drain_is_answered_with_close(conn):
    conn.send(PING)
    conn.settle(1)
    conn.protocol.shutdown()
    conn.send(PING)
    answers = conn.settle(2)
    assert answers[1].status == 200 and answers[1].headers["connection"] == "close"
    assert conn.transport.closed


def test_large_answer_head_and_body_written_apart(model):
    conn = model("Identity").connect()
    body = b'{"strData": "' + b"x" * 100_000 + b'"}'
    conn.send(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    [answer] = conn.settle(1)
    assert answer.status == 200 and len(answer.body) > 100_000
    assert len(conn.transport.writes) == 2  # no copy of a large body onto its head
