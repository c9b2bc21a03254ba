"""Bounded, closed-loop client traffic for the fault tests, with every answer classified.

Three kinds of client, each on its own thread, each sending one request at a time:

* ``rest-keepalive``: one HTTP/1.1 connection reused for every request (httpx);
* ``rest-close``: a new connection per request (``Connection: close``), so that the
  accept path is exercised all the time;
* ``grpc``: one channel (one HTTP/2 connection of its own) calling ``Model/Predict``;
* ``raw-keepalive`` / ``raw-close``: the same two REST patterns from asyncio coroutines
  on raw sockets, all on one event loop thread: many more requests per second than
  threads can send, enough to keep the server saturated, so that its accept backlog
  and its connections are never idle at the moment a fault strikes.

Every request ends in one `Result` whose ``kind`` says what happened to it:

* ``ok``: a 2xx (REST) or OK (gRPC) answer;
* ``refused``: the connection could not be made (nothing listens any more, or the
  handshake was reset): the request never reached the server, so it is not a loss.
  So is a raw client's connection that the kernel completed but the server never
  accepted: when the listening socket's last copy closes, the kernel resets the
  connections still waiting in its accept queue (see `_reset_by_closed_port`);
* ``failed``: anything else: a non-2xx answer, or a connection that was made and then
  dropped without an answer. These are the requests a fault must not cost.

Each client stops at the first of: `stop()`, `max_requests` requests, `max_seconds`,
or (with ``stop_when_refused``) its first refusal. No client loop is unbounded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import httpx
import orjson

from unitserve.proto import prediction_pb2 as pb

REST_BODY = orjson.dumps({"data": {"ndarray": [[1.0, 2.0]]}})
GRPC_BODY = pb.SeldonMessage(
    data=pb.DefaultData(tensor=pb.Tensor(shape=[1, 2], values=[1.0, 2.0]))
).SerializeToString()
GRPC_PREDICT = "/seldon.protos.Model/Predict"
# gRPC's words when no connection could be made to the address: nothing was sent.
_GRPC_REFUSED = ("connection refused", "failed to connect", "connect failed")


@dataclass(frozen=True)
class Result:
    client: str
    kind: str  # ok | refused | failed
    detail: str  # HTTP status / gRPC code, or the error
    sent: float  # time.monotonic() when the request was started
    done: float  # ... and when it ended
    pid: int | None = None  # the answering worker, for models that say so (WhoAmI)


@dataclass
class Traffic:
    """Start with `start()`; `stop()` joins every client and returns the results."""

    rest_url: str
    grpc_target: str
    rest_keepalive: int = 4
    rest_close: int = 4
    grpc_clients: int = 4
    raw_keepalive: int = 0
    raw_close: int = 0
    max_requests: int = 20_000  # per client
    max_seconds: float = 60.0  # per client
    stop_when_refused: bool = False
    request_timeout: float = 20.0
    results: list[Result] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ control

    def clients(self) -> list[tuple[str, Callable[[str], None]]]:
        """(name, loop) of every client."""
        return [
            *((f"rest-keepalive-{i}", self._rest_keepalive) for i in range(self.rest_keepalive)),
            *((f"rest-close-{i}", self._rest_close) for i in range(self.rest_close)),
            *((f"grpc-{i}", self._grpc) for i in range(self.grpc_clients)),
        ]

    def _raw_names(self) -> list[tuple[str, bool]]:
        return [
            *((f"raw-keepalive-{i}", True) for i in range(self.raw_keepalive)),
            *((f"raw-close-{i}", False) for i in range(self.raw_close)),
        ]

    @property
    def names(self) -> set[str]:
        return {name for name, _ in self.clients()} | {n for n, _ in self._raw_names()}

    def start(self) -> Traffic:
        for name, loop in self.clients():
            thread = threading.Thread(target=loop, args=(name,), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        if self._raw_names():
            thread = threading.Thread(target=self._raw_loop, name="raw-clients", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> list[Result]:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"clients still running after {timeout} s: {alive}"
        return self.snapshot()

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def wait_for(self, predicate: Callable[[list[Result]], bool], timeout: float = 60.0) -> None:
        """Until `predicate(results so far)` holds (polled; bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return
            if not any(t.is_alive() for t in self._threads):
                break  # nothing more will come; the last results may still satisfy it
            time.sleep(0.02)
        results = self.snapshot()
        if not predicate(results):
            raise AssertionError(f"traffic condition not met in {timeout} s: {summary(results)}")

    # ------------------------------------------------------------------ clients

    def _record(self, result: Result) -> bool:
        """Keep `result`; False when this client should stop."""
        with self._lock:
            self.results.append(result)
        return not (self.stop_when_refused and result.kind == "refused")

    def _running(self, started: float, sent: int) -> bool:
        return (
            not self._stop.is_set()
            and sent < self.max_requests
            and time.monotonic() - started < self.max_seconds
        )

    def _rest_keepalive(self, name: str) -> None:
        self._rest(name, {})

    def _rest_close(self, name: str) -> None:
        self._rest(name, {"connection": "close"})

    def _rest(self, name: str, headers: dict[str, str]) -> None:
        started, sent = time.monotonic(), 0
        headers = {"content-type": "application/json", **headers}
        limits = httpx.Limits(max_connections=1)
        with httpx.Client(timeout=self.request_timeout, limits=limits) as client:
            while self._running(started, sent):
                sent += 1
                t0 = time.monotonic()
                try:
                    r = client.post(f"{self.rest_url}/predict", content=REST_BODY, headers=headers)
                except httpx.ConnectError as exc:
                    result = Result(name, "refused", repr(exc), t0, time.monotonic())
                except httpx.TransportError as exc:
                    result = Result(name, "failed", repr(exc), t0, time.monotonic())
                else:
                    ok = 200 <= r.status_code < 300
                    result = Result(
                        name,
                        "ok" if ok else "failed",
                        f"HTTP {r.status_code}" if ok else f"HTTP {r.status_code}: {r.text[:200]}",
                        t0,
                        time.monotonic(),
                        pid_of(r.content) if ok else None,
                    )
                if not self._record(result):
                    return

    def _grpc(self, name: str) -> None:
        started, sent = time.monotonic(), 0
        # A local subchannel pool gives each client a connection of its own (by default
        # channels to the same target share one).
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(self.grpc_target, options=options) as channel:
            predict = channel.unary_unary(
                GRPC_PREDICT, request_serializer=_same, response_deserializer=_same
            )
            while self._running(started, sent):
                sent += 1
                t0 = time.monotonic()
                try:
                    answer = predict(GRPC_BODY, timeout=self.request_timeout)
                except grpc.RpcError as exc:
                    code, details = exc.code(), exc.details() or ""
                    refused = code == grpc.StatusCode.UNAVAILABLE and any(
                        w in details.lower() for w in _GRPC_REFUSED
                    )
                    result = Result(
                        name,
                        "refused" if refused else "failed",
                        f"{code.name}: {details}",
                        t0,
                        time.monotonic(),
                    )
                else:
                    message = pb.SeldonMessage.FromString(answer)
                    pid = pid_of(message.jsonData) if message.HasField("jsonData") else None
                    result = Result(name, "ok", "OK", t0, time.monotonic(), pid)
                if not self._record(result):
                    return

    def _raw_loop(self) -> None:
        asyncio.run(self._raw_clients())

    async def _raw_clients(self) -> None:
        await asyncio.gather(*(self._raw(name, keep) for name, keep in self._raw_names()))

    async def _raw(self, name: str, keepalive: bool) -> None:
        """One client on a raw socket: HTTP/1.1 written and read by hand (the server
        always sends Content-Length)."""
        host, port = self.rest_url.removeprefix("http://").rsplit(":", 1)
        request = (
            f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(REST_BODY)}\r\n"
            + ("" if keepalive else "Connection: close\r\n")
            + "\r\n"
        ).encode() + REST_BODY
        started, sent = time.monotonic(), 0
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while self._running(started, sent):
            sent += 1
            t0 = time.monotonic()
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(
                        asyncio.open_connection(host, int(port)), self.request_timeout
                    )
            except (OSError, TimeoutError) as exc:  # no connection: nothing was sent
                result = Result(name, "refused", f"connect: {exc!r}", t0, time.monotonic())
            else:
                assert reader is not None and writer is not None
                try:
                    writer.write(request)
                    result = await asyncio.wait_for(
                        self._raw_answer(name, reader, t0), self.request_timeout
                    )
                    again = keepalive and b"connection: close" not in result.detail.encode()
                except ConnectionResetError as exc:
                    kind = "refused" if await _reset_by_closed_port(host, int(port)) else "failed"
                    result = Result(name, kind, f"reset: {exc!r}", t0, time.monotonic())
                    again = False
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    result = Result(name, "failed", repr(exc), t0, time.monotonic())
                    again = False
                if not again:
                    writer.close()
                    reader = writer = None
            if not self._record(result):
                break
        if writer is not None:
            writer.close()

    async def _raw_answer(self, name: str, reader: asyncio.StreamReader, t0: float) -> Result:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        status = int(head.split(" ", 2)[1])
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        body = await reader.readexactly(length)
        ok = 200 <= status < 300
        closing = "connection: close" in head
        detail = f"HTTP {status}" + ("" if ok else f": {body[:200]!r}")
        return Result(
            name,
            "ok" if ok else "failed",
            detail + (" connection: close" if closing else ""),
            t0,
            time.monotonic(),
            pid_of(body) if ok else None,
        )


async def _reset_by_closed_port(host: str, port: int) -> bool:
    """Whether a connection reset before any answer was one the server never accepted.

    A server stops listening by closing its listening socket, and the kernel then resets
    every connection still waiting in that socket's accept queue: the handshake had
    completed, so the client's connect returned and its request was written, but no
    process accepted the connection or read a byte of it. No server can avoid this: a
    connection can complete its handshake between the last accept and the close. Such a
    reset comes from the close, so from then on the port refuses connections.

    A reset while something still listens (another worker, say) is the server dropping
    a connection it had accepted, and counts as a loss.
    """
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5.0)
    except ConnectionRefusedError:
        return True
    except (OSError, TimeoutError):
        return False
    writer.close()
    return False


def _same(data: bytes) -> bytes:
    return data


def pid_of(body: object) -> int | None:
    """The ``pid`` a WhoAmI answer carries (REST JSON bytes or a protobuf Value)."""
    try:
        if isinstance(body, bytes):
            value = orjson.loads(body).get("jsonData", {}).get("pid")
        else:
            value = body.struct_value.fields["pid"].number_value  # type: ignore[attr-defined]
        return int(value) if value else None
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def summary(results: list[Result]) -> str:
    """Counts by client kind and outcome, and the first few failures, for messages."""
    counts = Counter((r.client.rsplit("-", 1)[0], r.kind) for r in results)
    failures = [f"{r.client}: {r.detail}" for r in results if r.kind == "failed"][:8]
    text = ", ".join(f"{c} {k}: {n}" for (c, k), n in sorted(counts.items()))
    return text + ("; failures: " + " | ".join(failures) if failures else "")
