"""Server CPU per request with tracing off and on, measured on real servers.

Each configuration is one `unitserve serve IdentityModel --workers 1` process tree on
127.0.0.1, sent the benchmark's small Seldon REST predict one request at a time over a
kept-alive connection. What is measured is the CPU time (user + system, every thread:
the span exporter's too) of the server's processes, read from /proc before and after
each round, divided by the round's requests. The configurations take turns round by
round and the best round of each is kept, so that other work on a shared machine
disturbs the comparison as little as it can.

    .venv/bin/python benchmarks/tracing_cpu.py [--requests 3000] [--rounds 5]
        [--other-src PATH]   # also measure the tree at PATH (its src/), tracing off

Configurations: ``off`` (this tree), ``on-collector`` (OTLP over HTTP to a collector in
this process, which keeps nothing), ``on-unreachable`` (an endpoint that refuses
connections: spans are dropped once the export queue is full, the cheapest case), and
with --other-src ``other-off`` and ``other-on-collector`` (the same, for another tree,
e.g. ``git archive main src | tar -x -C /tmp/main``). Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
before a run (``env -u``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

MODEL_DIR = Path(__file__).parent / "models" / "seldon"
BODY = json.dumps({"data": {"names": ["a", "b", "c", "d"], "ndarray": [[1.0, 2.0, 3.0, 4.0]]}})
PATH = "/api/v1.0/predictions"
TICKS = os.sysconf("SC_CLK_TCK")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class _Sink:
    """An OTLP/HTTP endpoint that answers every export with an empty success."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Server:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.http, grpc_port, metrics = _free_ports(3)
        self.log = (log_dir / f"{name}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unitserve",
                "serve",
                "IdentityModel",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--http-port",
                str(self.http),
                "--grpc-port",
                str(grpc_port),
                "--metrics-port",
                str(metrics),
            ],
            cwd=MODEL_DIR,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.conn: http.client.HTTPConnection | None = None

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log.name}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=5)
                conn.request("GET", "/ready")
                if conn.getresponse().status == 200:
                    conn.close()
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout} s")

    def send(self, n: int) -> None:
        # A new connection each time: the last one may have idled past the server's
        # keep-alive timeout while the other servers had their turn.
        if self.conn is not None:
            self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=30)
        headers = {"content-type": "application/json"}
        for _ in range(n):
            self.conn.request("POST", PATH, body=BODY, headers=headers)
            answer = self.conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"{self.name}: status {answer.status}")

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's processes (the supervisor and its workers)."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime
        return total

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "JAEGER_")) and k not in ("TRACING", "PYTHONPATH")
    }
    env.update(extra)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="per round and server")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--other-src", type=Path, help="another tree's src/, also measured")
    parser.add_argument("--only", help="comma-separated configurations to run")
    args = parser.parse_args()

    sink = _Sink()
    with socket.socket() as refused:
        refused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        unreachable = f"http://127.0.0.1:{refused.getsockname()[1]}"
        configs = {
            "off": _env(),
            "on-collector": _env(TRACING="1", OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint),
            "on-unreachable": _env(TRACING="1", OTEL_EXPORTER_OTLP_ENDPOINT=unreachable),
        }
        if args.other_src is not None:
            other = str(args.other_src)
            configs["other-off"] = _env(PYTHONPATH=other)
            configs["other-on-collector"] = _env(
                PYTHONPATH=other, TRACING="1", OTEL_EXPORTER_OTLP_ENDPOINT=sink.endpoint
            )
        if args.only:
            configs = {k: v for k, v in configs.items() if k in args.only.split(",")}
        log_dir = Path(tempfile.mkdtemp(prefix="tracing-cpu-"))
        servers = [Server(name, env, log_dir) for name, env in configs.items()]
        try:
            for server in servers:
                server.wait_ready()
                server.send(args.warmup)
            best: dict[str, list[float]] = {s.name: [] for s in servers}
            for _ in range(args.rounds):
                for server in servers:
                    before = server.cpu_seconds()
                    server.send(args.requests)
                    best[server.name].append((server.cpu_seconds() - before) / args.requests)
            for name, per_request in best.items():
                rounds = " ".join(f"{v * 1e6:.0f}" for v in per_request)
                best_us = min(per_request) * 1e6
                print(f"{name:18} best {best_us:6.1f} µs/request  (rounds: {rounds})")
        finally:
            for server in servers:
                server.stop()
            sink.close()


if __name__ == "__main__":
    main()
