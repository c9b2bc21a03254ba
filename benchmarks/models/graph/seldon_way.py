"""The benchmark chain served the Seldon way: three seldon-core-microservices and an orchestrator.

In Seldon Core 1.x each node of a graph is its own `seldon-core-microservice` (gunicorn + Flask,
a gRPC process and a metrics process), and a separate orchestrator (the Go executor) walks the
graph over REST: for chain.yaml that is transform-input on `input`, predict on `model`,
transform-output on `output`, each answer's body becoming the next request's body. This script
reproduces that on one machine so that `unitserve graph` can be measured against it:

- it starts the three microservices with their defaults (each in its node's folder, on free
  ports it picks itself), waits until each answers, and only then listens on --http-port;
- it answers POST /api/v1.0/predictions (and /ready, /live) on that port, calling the three
  nodes in turn over keep-alive HTTP/1.1 connections that it pools per node, and passes a
  node's error status and body back unchanged.

The orchestrator does less work per request than the Go executor (it never parses the bodies,
adds no puid and no routing meta), and runs in the same process tree as the nodes, so the
whole tree's CPU is what serving the graph this way costs: the figure it gives for the Seldon
way is, if anything, flattering. It needs nothing but the standard library, so that it runs on
the seldon-core virtual environment's own interpreter (which has neither aiohttp nor uvicorn).

On SIGTERM it stops listening, sends SIGTERM to the microservices it started (by their process
ids), and SIGKILL to any of them still alive after two seconds: seldon-core-microservice's main
process waits for its gRPC process, which does not exit on SIGTERM.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# chain.yaml walked as the executor walks it: the root `output` (OUTPUT_TRANSFORMER) has no
# input step, so the walk goes down to `input` (TRANSFORMER: transform-input), then to `model`
# (MODEL: predict), and comes back up to `output` for transform-output.
STEPS = (
    ("input", "TRANSFORMER", "/transform-input"),
    ("model", "MODEL", "/predict"),
    # the Python wrapper has no OUTPUT_TRANSFORMER service type; its REST app serves
    # /transform-output whatever the type, and Seldon runs output transformers as TRANSFORMER
    ("output", "TRANSFORMER", "/transform-output"),
)
START_TIMEOUT = 120.0
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One microservice: its process and a pool of idle keep-alive connections to it."""

    def __init__(self, name: str, service_type: str, path: str, seldon_bin: str):
        self.name, self.path = name, path
        self.port = free_port()
        argv = [
            seldon_bin,
            "Node",
            "--service-type",
            service_type,
            "--http-port",
            str(self.port),
            "--grpc-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
        ]
        # A process group of its own, so that stopping it reaches its gunicorn, gRPC and
        # metrics processes too, and nothing else.
        self.proc = subprocess.Popen(
            argv, cwd=HERE / name, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.exited():
                raise SystemExit(f"node {self.name} exited before it answered")
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, ValueError):
                status, _, _ = await self.call("GET", "/health/ping", b"")
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        raise SystemExit(f"node {self.name} did not answer within {START_TIMEOUT:.0f} s")

    async def call(self, method: str, path: str, body: bytes) -> tuple[int, bytes, bytes]:
        """(status, content type, body). A pooled connection the node closed meanwhile (its
        keep-alive timeout) is retried once on a fresh one."""
        for attempt in range(2):
            reused = bool(self.idle)
            reader, writer = (
                self.idle.pop() if reused else await asyncio.open_connection("127.0.0.1", self.port)
            )
            try:
                return await self._exchange(reader, writer, method, path, body)
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                if not reused or attempt:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        path: str,
        body: bytes,
    ) -> tuple[int, bytes, bytes]:
        writer.write(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip()
        if b"content-length" in headers:
            answer = await reader.readexactly(int(headers[b"content-length"]))
        else:  # no length: the body runs to the end of the connection
            answer = await reader.read()
            headers[b"connection"] = b"close"
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status, headers.get(b"content-type", b"application/json"), answer

    def exited(self) -> bool:
        """Whether the node's main process has exited, without reaping it: while it is
        unreaped its process group id cannot be reused, so signal() never hits a stranger."""
        if self.proc.returncode is not None:
            return True
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.proc.pid, flags) is not None

    def signal(self, sig: int) -> None:
        if self.proc.returncode is None:  # not reaped yet: the group id is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)


class Orchestrator:
    def __init__(self, nodes: list[Node]):
        self.nodes = nodes

    async def walk(self, body: bytes) -> tuple[int, bytes, bytes]:
        status, ctype = 200, b"application/json"
        for node in self.nodes:
            status, ctype, body = await node.call("POST", node.path, body)
            if status != 200:  # a node's error goes back to the client as it gave it
                break
        return status, ctype, body

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                lines = head.split(b"\r\n")
                method, path, _ = lines[0].split(b" ", 2)
                length, close = 0, False
                for line in lines[1:]:
                    key, _, value = line.partition(b":")
                    key = key.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"connection":
                        close = value.strip().lower() == b"close"
                body = await reader.readexactly(length) if length else b""
                path = path.split(b"?", 1)[0]
                if method == b"POST" and path == b"/api/v1.0/predictions":
                    try:
                        status, ctype, answer = await self.walk(body)
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        status, ctype = 502, b"application/json"
                        answer = f'{{"error": "a node did not answer: {exc!r}"}}'.encode()
                elif method == b"GET" and path in (b"/ready", b"/live"):
                    status, ctype, answer = 200, b"text/plain", b"ready"
                else:
                    status, ctype, answer = 404, b"application/json", b'{"error": "not found"}'
                reason = REASONS.get(status, "Status").encode()
                writer.write(
                    b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                    % (status, reason, ctype, len(answer))
                    + answer
                )
                if close:
                    return
                await writer.drain()
        finally:
            writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument(
        "--seldon-bin",
        default=str(Path(sys.executable).parent / "seldon-core-microservice"),
        help="the seldon-core-microservice script (default: next to this interpreter)",
    )
    args = ap.parse_args()
    nodes = [Node(name, kind, path, args.seldon_bin) for name, kind, path in STEPS]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        ready = asyncio.gather(*(node.wait_ready(deadline) for node in nodes))
        stop_wait = asyncio.ensure_future(stopping.wait())
        await asyncio.wait([ready, stop_wait], return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            ready.cancel()
            return
        ready.result()
        orchestrator = Orchestrator(nodes)
        server = await asyncio.start_server(
            orchestrator.serve, "127.0.0.1", args.http_port, backlog=1024
        )
        print(
            f"orchestrating {', '.join(n.name for n in nodes)} on port {args.http_port}",
            flush=True,
        )
        async with server:
            await stop_wait
    finally:
        for node in nodes:
            node.signal(signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not all(n.exited() for n in nodes):
            await asyncio.sleep(0.05)
        for node in nodes:  # the whole group: the gRPC process outlives SIGTERM
            node.signal(signal.SIGKILL)
            node.proc.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
