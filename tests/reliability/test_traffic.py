"""How the fault tests' traffic classifies a reset connection (traffic.py), checked on
plain sockets on 127.0.0.1 so that the kernel's behaviour is set up on purpose rather
than left to a race: a connection the kernel completed but no process accepted is reset
when the listening socket closes, and is not a lost request; a connection a server
accepted and then dropped is, even if the port closes right after."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from .traffic import REST_BODY, _reset_by_closed_port

REQUEST = (
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(REST_BODY), REST_BODY)
)


def _listener() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return sock, sock.getsockname()[1]


async def _send_and_read(port: int, fault: Callable[[], None]) -> bool | None:
    """Connect, send one request, let `fault` strike, read: None if the read did not
    end in a reset, else whether traffic.py counts that reset as a refusal."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(REQUEST)
        await writer.drain()
        fault()
        try:
            await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:
            return await _reset_by_closed_port("127.0.0.1", port)
        return None
    finally:
        writer.close()


def test_reset_from_the_accept_queue_is_a_refusal():
    listening, port = _listener()
    # Never accepted: closing the listening socket resets the queued connection.
    assert asyncio.run(_send_and_read(port, listening.close)) is True


def test_reset_of_an_accepted_connection_is_a_loss():
    listening, port = _listener()
    try:

        def drop() -> None:
            # Accepted, and closed with the request unread: the kernel resets it while
            # the port still listens.
            connection, _ = listening.accept()
            connection.close()

        assert asyncio.run(_send_and_read(port, drop)) is False
    finally:
        listening.close()
