"""A TCP proxy on 127.0.0.1 that cuts some connections in the middle of a request.

It forwards bytes both ways between a client and a server, and every `every`-th chunk a
client sends is not forwarded: both sockets are closed instead, so the client sees its
connection dropped with a request on it (before the server saw that request). With
`after_server=True` the chunk is forwarded first and the connection cut once the server
starts answering, so the server has done the work and the answer is lost. Threads, not
asyncio: the tests that use it drive blocking clients and subprocesses.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class DroppingProxy:
    def __init__(self, target_port: int, every: int, *, after_server: bool = False) -> None:
        self.target = ("127.0.0.1", target_port)
        self.every = max(1, every)
        self.after_server = after_server
        self.chunks = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        # accept() wakes up now and then to see whether the proxy was stopped.
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> DroppingProxy:
        thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            server.settimeout(None)
            cut = threading.Event()  # set when a forwarded chunk must cost the answer
            with self._lock:
                self._sockets += [client, server]
            for args in ((client, server, True, cut), (server, client, False, cut)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(
        self, src: socket.socket, dst: socket.socket, from_client: bool, cut: threading.Event
    ) -> None:
        try:
            while chunk := src.recv(65536):
                if from_client:
                    with self._lock:
                        self.chunks += 1
                        drop = self.chunks % self.every == 0
                        if drop:
                            self.dropped += 1
                    if drop and not self.after_server:
                        break
                    if drop:
                        cut.set()
                elif cut.is_set():
                    break  # the server has answered a request whose answer is to be lost
                dst.sendall(chunk)
        except OSError:
            pass
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
