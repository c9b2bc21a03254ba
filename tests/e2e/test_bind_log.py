"""The worker's ready line says where it listens, and the kernel agrees: on the default
wildcard host, REST listens on IPv4's 0.0.0.0 while grpcio takes IPv4 and IPv6 on one
`[::]` socket, and the line must name each as it is. No traffic is sent: the listening
sockets are read from /proc/net."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.conftest import Server, wait_until


def _listeners(port: int) -> set[str]:
    """The addresses listening on `port`, as `0.0.0.0:P`, `[::]:P`, `127.0.0.1:P`..."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            # /proc writes each 32-bit word of the address in host byte order.
            raw = b"".join(
                int(address[i : i + 8], 16).to_bytes(4, "little") for i in range(0, len(address), 8)
            )
            text = socket.inet_ntop(family, raw)
            found.add(f"[{text}]:{port}" if family == socket.AF_INET6 else f"{text}:{port}")
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp6").exists(), reason="needs Linux with IPv6")
def test_the_ready_line_names_what_each_port_listens_on() -> None:
    # The default host, as a user who gives no --host gets it.
    server = Server("Identity", "--host", "0.0.0.0")
    server.start()
    try:
        line = wait_until(lambda: re.search(r"worker 0 ready \(pid \d+\): (.*)", server.log()))
        said = dict(re.findall(r"(REST|gRPC) on ([^\s,]+)", line.group(1)))
        assert said == {
            "REST": f"0.0.0.0:{server.http_port}",
            "gRPC": f"[::]:{server.grpc_port}",
        }, line.group(0)
        assert "IPv4 and IPv6" in line.group(1)
        assert _listeners(server.http_port) == {said["REST"]}
        assert _listeners(server.grpc_port) == {said["gRPC"]}
    finally:
        assert server.stop() == 0
