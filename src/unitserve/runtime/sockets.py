"""Binding the listening sockets, with a clear error when a port is taken."""

from __future__ import annotations

import errno
import socket

from unitserve.errors import StartupError


def bind(host: str, port: int, what: str, flag: str) -> socket.socket:
    """A listening TCP socket on (host, port), shared by forked workers."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise _port_error(exc, host, port, what, flag, "listen on") from None
    sock.set_inheritable(True)
    return sock


def reserve_reuseport(host: str, port: int, what: str, flag: str) -> socket.socket:
    """Hold `port` with SO_REUSEPORT without listening: other programs cannot take it,
    our workers (which bind it with SO_REUSEPORT too) can, and no connection is ever
    queued on this socket."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    # First without SO_REUSEPORT: that fails if anyone listens on the port, even a
    # process of ours (same-user SO_REUSEPORT sockets would silently share it).
    bind(host, port, what, flag).close()
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise _port_error(exc, host, port, what, flag, "use") from None
    return sock


def _port_error(
    exc: OSError, host: str, port: int, what: str, flag: str, doing: str
) -> StartupError:
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"{what} port {port} is already in use on {host} (change it with {flag})"
        )
    return StartupError(f"cannot {doing} {host}:{port} for {what} ({flag}): {exc.strerror}")
