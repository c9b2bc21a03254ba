"""The batch tool's lean HTTP/1.1 pool (`unitserve.client._http1`) and `LeanAsyncClient`,
against a small scripted asyncio server on 127.0.0.1: each test says what the server
answers to each request it reads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from unitserve.client import ClientError
from unitserve.client._http1 import AnswerTimeout, NoAnswer, Pool
from unitserve.client.lean import LeanAsyncClient

# What the server does with one request: bytes to write (None: write nothing and close;
# ... : write nothing and keep the connection open) and whether to close afterwards.
Script = Callable[[int, bytes], tuple[bytes | None, bool]]


def ok(body: bytes = b'{"ok": 1}', extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


class Server:
    """Reads whole requests (head and Content-Length body) and answers from `script`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.hold = asyncio.Event()  # never set: a request left unanswered waits on it

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.hold.set()
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer, close = self.script(len(self.requests), request)
                if answer is ...:
                    await self.hold.wait()
                    return
                if answer is None or close:
                    if answer:
                        writer.write(answer)
                        await writer.drain()
                    return
                writer.write(answer)
                await writer.drain()
        finally:
            writer.close()


def run(script: Script, test: Callable[[Server], Awaitable[None]]) -> Server:
    async def main() -> Server:
        async with Server(script) as server:
            await asyncio.wait_for(test(server), 30)
            return server

    return asyncio.run(main())


def test_requests_share_one_keep_alive_connection_and_go_out_whole() -> None:
    async def test(server: Server) -> None:
        pool = Pool("127.0.0.1", server.port, headers={"authorization": "Bearer t"})
        for i in range(3):
            resp = await pool.request(
                "POST", "/predict", b'{"x": %d}' % i, {"content-type": "application/json"}
            )
            assert (resp.status_code, resp.reason_phrase, resp.content) == (200, "OK", b"{}")
            assert resp.headers["content-type"] == "application/json"
        await pool.close()

    server = run(lambda n, req: (ok(b"{}"), False), test)
    assert server.connections == 1
    head, body = server.requests[2].split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /predict HTTP/1.1"
    assert set(lines[1:]) == {
        f"host: 127.0.0.1:{server.port}".encode(),
        b"authorization: Bearer t",
        b"content-type: application/json",
        b"content-length: 8",
    }
    assert body == b'{"x": 2}'


def test_a_chunked_answer_is_put_together() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b'4\r\n{"a"\r\n5\r\n: [1]\r\n1\r\n}\r\n0\r\n\r\n'
    )

    async def test(server: Server) -> None:
        pool = Pool("127.0.0.1", server.port)
        for _ in range(2):  # the connection is still usable after a chunked answer
            resp = await pool.request("GET", "/x")
            assert json.loads(resp.content) == {"a": [1]}
        await pool.close()

    assert run(lambda n, req: (chunked, False), test).connections == 1


def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    async def test(server: Server) -> None:
        pool = Pool("127.0.0.1", server.port)
        assert (await pool.request("GET", "/x")).content == b"all of it"
        assert (await pool.request("GET", "/x")).content == b"all of it"
        await pool.close()

    answer = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"
    assert run(lambda n, req: (answer, True), test).connections == 2


def test_connection_close_makes_the_next_request_open_a_new_connection() -> None:
    async def test(server: Server) -> None:
        pool = Pool("127.0.0.1", server.port)
        for _ in range(3):
            assert (await pool.request("POST", "/p", b"{}")).status_code == 200
        await pool.close()

    server = run(lambda n, req: (ok(extra="connection: close\r\n"), True), test)
    assert server.connections == 3


def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def test(server: Server) -> None:
        pool = Pool("127.0.0.1", server.port)
        assert (await pool.request("POST", "/p", b"{}")).status_code == 200
        # The server closed it without saying so; wait until the pool has seen it.
        for _ in range(2000):
            if pool._idle[0].closed:
                break
            await asyncio.sleep(0.001)
        assert pool._idle[0].closed
        assert (await pool.request("POST", "/p", b"{}")).status_code == 200
        await pool.close()

    # Answers with keep-alive, then closes anyway.
    assert run(lambda n, req: (ok(), True), test).connections == 2


def test_no_answer_when_the_server_closes_or_speaks_no_http() -> None:
    async def test(server: Server) -> None:
        pool = Pool("127.0.0.1", server.port)
        with pytest.raises(NoAnswer, match="closed the connection before answering"):
            await pool.request("POST", "/p", b"{}")
        with pytest.raises(NoAnswer, match="not HTTP"):
            await pool.request("POST", "/p", b"{}")
        assert (await pool.request("POST", "/p", b"{}")).status_code == 200
        await pool.close()

    answers = {1: (None, True), 2: (b"SSH-2.0-nope\r\n\r\n", False)}
    assert run(lambda n, req: answers.get(n, (ok(), False)), test).connections == 3


def test_a_slow_answer_times_out_and_its_connection_is_not_reused() -> None:
    async def test(server: Server) -> None:
        pool = Pool("127.0.0.1", server.port, timeout=0.2)
        with pytest.raises(AnswerTimeout):
            await pool.request("POST", "/p", b"{}")
        assert (await pool.request("POST", "/p", b"{}")).status_code == 200
        await pool.close()

    # `...` is the script's word for "never answer", outside the Script type on purpose
    server = run(lambda n, req: (... if n == 1 else ok(), False), test)  # type: ignore[arg-type, return-value]
    assert server.connections == 2


def test_no_answer_when_nothing_listens() -> None:
    async def main() -> None:
        async with Server(lambda n, req: (ok(), False)) as server:
            port = server.port
        pool = Pool("127.0.0.1", port)
        with pytest.raises(NoAnswer, match="cannot connect"):
            await pool.request("GET", "/")

    asyncio.run(main())


def test_lean_client_reads_answers_and_maps_errors_as_the_client_does() -> None:
    answer = json.dumps({"data": {"names": [], "ndarray": [[1.0, 2.0]]}, "meta": {}}).encode()
    unavailable = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
    bad = json.dumps({"status": {"code": 400, "info": "no", "reason": "BAD", "status": 1}})
    rejected = f"HTTP/1.1 400 Bad Request\r\ncontent-length: {len(bad)}\r\n\r\n{bad}".encode()
    answers = {1: unavailable, 2: ok(answer), 3: rejected}

    async def test(server: Server) -> None:
        client = LeanAsyncClient(f"http://127.0.0.1:{server.port}/pre", backoff=0.001)
        got = await client.predict(np.array([[1.0, 2.0]]))
        np.testing.assert_array_equal(got.data, [[1.0, 2.0]])
        assert client.retried == 1
        with pytest.raises(ClientError) as caught:
            await client.predict(np.array([[1.0]]))
        assert caught.value.status == 400
        await client.close()

    server = run(lambda n, req: (answers[n], False), test)
    assert server.requests[0].startswith(b"POST /pre/predict HTTP/1.1\r\n")


def test_lean_client_reads_an_open_inference_answer_with_binary_outputs() -> None:
    values = np.array([1.5, -2.0], dtype=np.float32)
    head = json.dumps(
        {
            "model_name": "m",
            "outputs": [
                {
                    "name": "y",
                    "datatype": "FP32",
                    "shape": [2],
                    "parameters": {"binary_data_size": values.nbytes},
                }
            ],
        }
    ).encode()
    answer = ok(head + values.tobytes(), f"Inference-Header-Content-Length: {len(head)}\r\n")

    async def test(server: Server) -> None:
        client = LeanAsyncClient(f"127.0.0.1:{server.port}", protocol="v2", model="m")
        got = await client.infer({"x": values}, binary_data=True)
        assert got.model_name == "m"
        np.testing.assert_array_equal(got.outputs["y"], values)
        await client.close()

    server = run(lambda n, req: (answer, False), test)
    assert server.requests[0].startswith(b"POST /v2/models/m/infer HTTP/1.1\r\n")
