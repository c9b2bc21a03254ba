"""The bad-input checklist of tests/unit/test_v2_bad_input.py sent to a real server over
real sockets: every answer is the same 4xx with a sentence, and the worker that answered
is still the first one (no bad request crashed or replaced it)."""

from __future__ import annotations

import gzip
import re
import socket
from typing import Any

import httpx

from ..conftest import wait_until
from ..unit.test_v2_bad_input import INFER, REST, X, body


def worker_starts(server: Any) -> list[str]:
    return re.findall(r"worker 0 started \(pid (\d+)\)", server.log())


def test_bad_requests_do_not_hurt_the_worker(fresh_server: Any) -> None:
    server = fresh_server("V2Model", "--max-body-size", "65536")
    first = worker_starts(server)
    assert len(first) == 1, server.log()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for what, content, headers, status, words in REST:
            r = client.post(INFER, content=content, headers=headers)
            assert r.status_code == status, (what, r.status_code, r.text)
            assert list(r.json()) == ["error"] and words in r.json()["error"], (what, r.text)
        # A body shorter than its Content-Length, the client then gone: the server must
        # neither wait forever nor fall over.
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
            sock.sendall(
                f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
                + body(X)[:10]
            )
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(10)
            try:
                while sock.recv(4096):
                    pass
            except OSError:
                pass  # a reset is as good as an answer here
        r = wait_until(lambda: client.post(INFER, content=body(X)), timeout=10)
        assert r.status_code == 200, r.text
        r = client.post(
            INFER, content=gzip.compress(body(X, id="gz")), headers={"Content-Encoding": "gzip"}
        )
        assert r.status_code == 200 and r.json()["id"] == "gz", r.text
    assert worker_starts(server) == first, server.log()[-3000:]
    assert "Traceback" not in server.log(), server.log()[-3000:]
