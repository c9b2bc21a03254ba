"""A port already in use: one clear error line, non-zero exit.

tests/e2e/test_process.py holds each port with another unitserve server. Here the
holder is a foreign socket of each kind that takes a port: a plain listener, a
listener with SO_REUSEPORT (what another gRPC server uses, and what our own gRPC
workers bind with: the one a careless check would share the port with), and a socket
that is bound without listening. unitserve must refuse before it forks anything.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ..conftest import free_ports, run_cli

PORTS = {"--http-port": "REST", "--grpc-port": "gRPC", "--metrics-port": "metrics"}


@pytest.fixture(params=["listening", "reuseport", "bound"])
def held_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A loopback port held by a socket of this test process."""
    (port,) = free_ports(1)
    with socket.socket() as holder:
        if request.param == "reuseport":
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", port))
        if request.param != "bound":
            holder.listen()
        yield port


def serve_on(flag: str, port: int) -> tuple[int, str]:
    others = {f: "0" for f in PORTS}  # 0: any free port, so only `flag` can collide
    others[flag] = str(port)
    args = [a for f, v in others.items() for a in (f, v)]
    result = run_cli("serve", "Identity", "--host", "127.0.0.1", *args, timeout=60)
    return result.returncode, result.stderr


@pytest.mark.parametrize("flag", list(PORTS))
def test_port_held_by_another_program(flag: str, held_port: int):
    code, stderr = serve_on(flag, held_port)
    assert code == 1
    assert f"{PORTS[flag]} port {held_port} is already in use on 127.0.0.1" in stderr
    assert f"(change it with {flag})" in stderr
    assert "Traceback" not in stderr
    assert "worker 0 started" not in stderr, "a worker was forked before the ports were checked"


@pytest.mark.parametrize("held_port", ["listening"], indirect=True)
def test_port_in_use_is_one_error_line(held_port: int):
    code, stderr = serve_on("--http-port", held_port)
    assert code == 1
    mentions = [line for line in stderr.splitlines() if "already in use" in line]
    assert len(mentions) == 1, mentions
