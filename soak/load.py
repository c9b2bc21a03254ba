"""The soak's load generator: closed-loop clients on one asyncio loop, one protocol per
process (so that REST and gRPC clients each get a core's worth of Python).

    python -m soak.load rest --target 127.0.0.1:9000 --connections 32 --seconds 600
    python -m soak.load grpc --target 127.0.0.1:5000 --connections 32 --seconds 600

Each connection sends one request at a time, cycling through a few request kinds
(ndarray, tensor, strData, feedback), and is replaced by a fresh one every
`RECONNECT_EVERY` requests so that connection set-up and tear-down are soaked too.
An error is anything but a 2xx answer with a well-formed body (REST) or an OK answer
that parses (gRPC): refused or dropped connections, timeouts, error statuses.

Output, one JSON object per line on stdout: a ``tick`` every ``--every`` seconds with
the running totals, then one ``done`` with the totals, per-kind counts, latency
percentiles and the first few errors. The exit status is 0 if the run completed
(whatever the errors: the runner judges them), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = 30.0  # seconds one request may take before it counts as an error
RECONNECT_EVERY = 2000  # requests per connection before it is replaced
MAX_ERROR_SAMPLES = 20


@dataclass
class Stats:
    ok: int = 0
    errors: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    # Latencies in seconds (4 bytes each: 10 minutes at 5000/s is 12 MB).
    latencies: array = field(default_factory=lambda: array("f"))
    connections_opened: int = 0

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        self.latencies.append(seconds)
        if error is None:
            self.ok += 1
            self.by_kind[kind] += 1
            return
        self.errors += 1
        self.error_kinds[f"{kind}: {error.split(':', 1)[0]}"] += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(f"{kind}: {error}"[:300])

    def totals(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": self.errors}

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else None

        return {
            **self.totals(),
            "by_kind": dict(self.by_kind),
            "error_kinds": dict(self.error_kinds),
            "error_samples": self.samples,
            "latency_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": pct(1.0)},
            "connections_opened": self.connections_opened,
        }


def emit(event: str, **values: Any) -> None:
    print(json.dumps({"event": event, **values}), flush=True)


class Pacer:
    """At most `rate` requests per second from one connection (0: no limit)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        self.next = max(self.next + self.interval, now - 1.0)  # no burst after a stall
        if self.next > now:
            await asyncio.sleep(self.next - now)


# ---------------------------------------------------------------------------- REST


def _rest_requests(host: str) -> list[tuple[str, bytes, Callable[[dict[str, Any]], bool]]]:
    def post(path: str, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    values = [float(i) / 4 for i in range(16)]
    return [
        (
            "ndarray",
            post(
                "/api/v1.0/predictions",
                {"data": {"names": ["a", "b", "c", "d"], "ndarray": [[1, 2, 3, 4], [5, 6, 7, 8]]}},
            ),
            lambda a: a["data"]["ndarray"][1][0] == 5 * 0.5,
        ),
        (
            "tensor",
            post("/predict", {"data": {"tensor": {"shape": [2, 8], "values": values}}}),
            lambda a: a["data"]["tensor"]["shape"] == [2, 8],
        ),
        (
            "strData",
            post("/api/v1.0/predictions", {"strData": "soak"}),
            lambda a: a["strData"] == "soak" and a["meta"]["tags"] == {"model": "soak"},
        ),
        (
            "feedback",
            post("/api/v1.0/feedback", {"request": {"data": {"ndarray": [[1, 2]]}}, "reward": 1}),
            lambda a: "data" in a,
        ),
    ]


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection") != "close"


async def rest_client(index: int, host: str, port: int, stop_at: float, rate: float, stats: Stats):
    requests = _rest_requests(f"{host}:{port}")
    pacer = Pacer(rate)
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    sent_here = 0
    i = index
    while time.monotonic() < stop_at:
        await pacer.wait()
        kind, raw, check = requests[i % len(requests)]
        i += 1
        started = time.perf_counter()
        error: str | None = None
        keep = True
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), TIMEOUT
                )
                stats.connections_opened += 1
                sent_here = 0
            assert reader is not None and writer is not None
            writer.write(raw)
            status, body, keep = await asyncio.wait_for(_read_response(reader), TIMEOUT)
            if not 200 <= status < 300:
                error = f"HTTP {status}: {body[:200]!r}"
            elif not check(json.loads(body)):
                error = f"unexpected answer: {body[:200]!r}"
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            error, keep = f"{type(exc).__name__}: {exc}", False
        except (KeyError, IndexError, TypeError) as exc:
            error = f"unexpected answer ({exc!r})"
        stats.record(kind, time.perf_counter() - started, error)
        sent_here += 1
        if writer is not None and (not keep or sent_here >= RECONNECT_EVERY):
            writer.close()
            writer = reader = None
    if writer is not None:
        writer.close()


# ---------------------------------------------------------------------------- gRPC


def _grpc_requests() -> list[tuple[str, str, bytes, Callable[[bytes], bool]]]:
    from google.protobuf import json_format

    from unitserve.proto import prediction_pb2 as pb

    def message(body: dict[str, Any], kind: Any = pb.SeldonMessage) -> bytes:
        return json_format.ParseDict(body, kind()).SerializeToString()

    def has_data(answer: bytes) -> bool:
        return pb.SeldonMessage.FromString(answer).WhichOneof("data_oneof") is not None

    values = [float(i) / 4 for i in range(16)]
    return [
        (
            "ndarray",
            "/seldon.protos.Model/Predict",
            message({"data": {"ndarray": [[1, 2, 3, 4], [5, 6, 7, 8]]}}),
            has_data,
        ),
        (
            "tensor",
            "/seldon.protos.Seldon/Predict",
            message({"data": {"tensor": {"shape": [2, 8], "values": values}}}),
            has_data,
        ),
        ("strData", "/seldon.protos.Model/Predict", message({"strData": "soak"}), has_data),
        (
            "feedback",
            "/seldon.protos.Model/SendFeedback",
            message({"request": {"data": {"ndarray": [[1, 2]]}}, "reward": 1}, pb.Feedback),
            lambda answer: True,
        ),
    ]


async def grpc_client(index: int, target: str, stop_at: float, rate: float, stats: Stats):
    import grpc

    requests = _grpc_requests()
    pacer = Pacer(rate)
    # A local subchannel pool: one TCP connection per client (channels to the same
    # target share one by default).
    options = [("grpc.use_local_subchannel_pool", 1)]
    i = index
    while time.monotonic() < stop_at:
        async with grpc.aio.insecure_channel(target, options=options) as channel:
            stats.connections_opened += 1
            calls = {
                path: channel.unary_unary(
                    path, request_serializer=_same, response_deserializer=_same
                )
                for _, path, _, _ in requests
            }
            for _ in range(RECONNECT_EVERY):
                if time.monotonic() >= stop_at:
                    break
                await pacer.wait()
                kind, path, raw, check = requests[i % len(requests)]
                i += 1
                started = time.perf_counter()
                error: str | None = None
                try:
                    answer = await calls[path](raw, timeout=TIMEOUT)
                    if not check(answer):
                        error = "unexpected answer"
                except grpc.aio.AioRpcError as exc:
                    error = f"{exc.code().name}: {exc.details()}"
                except Exception as exc:  # a malformed answer: an error like any other
                    error = f"unexpected answer ({exc!r})"
                stats.record(kind, time.perf_counter() - started, error)


def _same(data: bytes) -> bytes:
    return data


# ---------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> None:
    stats = Stats()
    host, port = args.target.rsplit(":", 1)
    stop_at = time.monotonic() + args.seconds
    per_connection = args.rate / args.connections if args.rate else 0.0
    if args.protocol == "rest":
        clients = [
            rest_client(i, host, int(port), stop_at, per_connection, stats)
            for i in range(args.connections)
        ]
    else:
        clients = [
            grpc_client(i, args.target, stop_at, per_connection, stats)
            for i in range(args.connections)
        ]

    async def ticks() -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(args.every)
            emit("tick", t=round(time.monotonic() - started, 3), **stats.totals())

    emit("start", protocol=args.protocol, connections=args.connections, seconds=args.seconds)
    ticker = asyncio.create_task(ticks())
    # Every client stops by itself at stop_at, its last request bounded by TIMEOUT.
    await asyncio.wait_for(asyncio.gather(*clients), args.seconds + TIMEOUT + 30)
    ticker.cancel()
    emit("done", protocol=args.protocol, **stats.summary())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m soak.load", description=__doc__)
    parser.add_argument("protocol", choices=("rest", "grpc"))
    parser.add_argument("--target", required=True, help="HOST:PORT")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=0, help="requests/s in all (0: no limit)")
    parser.add_argument("--every", type=float, default=10, help="seconds between ticks")
    args = parser.parse_args(argv)
    if args.protocol == "rest":
        import uvloop  # unitserve's own dependency: the fastest loop for plain sockets

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))  # grpc.aio runs on the standard loop
    return 0


if __name__ == "__main__":
    sys.exit(main())
