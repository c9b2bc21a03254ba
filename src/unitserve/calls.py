"""Where user code runs.

REST: synchronous user methods run on the worker's user threads (``--threads``),
so the event loop keeps answering health probes, metrics and new connections
while a slow ``predict`` runs. The whole request — parsing, decoding, the user
call and encoding — moves to the thread in one hand-off. Operations whose user
methods are ``async def`` run on the loop instead and only offload the
synchronous helpers (tags, metrics) they may call.

gRPC: requests arrive on the gRPC server's own threads, which run the operation
directly (`call_blocking`). A semaphore shared by both transports keeps at most
``--threads`` synchronous user calls running at once in a worker, as a model
written for one thread expects.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from unitserve.engine import Engine, Outcome, run_async, run_sync
from unitserve.errors import NotReady, Timeout
from unitserve.offload import Offloader
from unitserve.protocol.message import Codec

log = logging.getLogger("unitserve")

# Engine operations, by name, and the user methods each may call.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "predict": ("predict", "predict_raw", "predict_rest", "predict_grpc"),
    "transform_input": (
        "transform_input",
        "transform_input_raw",
        "transform_input_rest",
        "transform_input_grpc",
    ),
    "transform_output": (
        "transform_output",
        "transform_output_raw",
        "transform_output_rest",
        "transform_output_grpc",
    ),
    "route": ("route", "route_raw", "route_rest", "route_grpc"),
    "aggregate": ("aggregate", "aggregate_raw", "aggregate_rest", "aggregate_grpc"),
    "send_feedback": (
        "send_feedback",
        "send_feedback_raw",
        "send_feedback_rest",
        "send_feedback_grpc",
    ),
    "health_status": ("health_status", "health_status_raw"),
}


def user_call_gate(threads: int) -> AbstractContextManager[Any]:
    """A context manager letting at most `threads` user calls in at once.

    Entered on every request: a plain lock (one thread, the default) or a queue of
    tokens costs ~0.2-0.4 µs, where `threading.BoundedSemaphore`, written in Python
    over a condition variable, costs ~1.7 µs."""
    return threading.Lock() if threads == 1 else _TokenGate(threads)


class _TokenGate:
    def __init__(self, tokens: int) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(tokens):
            self._tokens.put(None)

    def __enter__(self) -> None:
        self._tokens.get()

    def __exit__(self, *exc_info: object) -> None:
        self._tokens.put(None)


class Invoker:
    """Runs engine operations for the transports of one worker."""

    def __init__(self, engine: Engine, threads: int, request_timeout: float = 0.0) -> None:
        self.engine = engine
        self.loop = asyncio.get_running_loop()
        self.offloader = Offloader(self.loop, threads)
        self.gate = user_call_gate(threads)
        self.request_timeout = request_timeout or None
        self.on_loop = {op: engine.is_async(*methods) for op, methods in OPERATIONS.items()}
        self.ready = asyncio.Event()
        self.settled = asyncio.Event()  # ready, or load() failed: nothing more to wait for
        self.not_ready_reason = "the model is loading: load() has not finished"

    async def offload(self, fn: Callable[[], Any]) -> Any:
        future = self.offloader.submit(fn)
        if self.request_timeout is None:
            return await future
        try:
            return await asyncio.wait_for(future, self.request_timeout)
        except TimeoutError:
            raise Timeout(
                f"the model did not answer within the request timeout ({self.request_timeout:g} s)"
            ) from None

    def mark_ready(self) -> None:
        self.ready.set()
        self.settled.set()

    def mark_failed(self, reason: str) -> None:
        """load() failed: requests waiting for it (and later ones) are answered 503."""
        self.not_ready_reason = reason
        self.settled.set()

    async def wait_ready(self) -> None:
        if not self.settled.is_set():
            if self.request_timeout is None:
                await self.settled.wait()
            else:
                try:
                    await asyncio.wait_for(self.settled.wait(), self.request_timeout)
                except TimeoutError:
                    raise NotReady(self.not_ready_reason) from None
        if not self.ready.is_set():
            raise NotReady(self.not_ready_reason)

    async def call(self, op: str, make_request: Callable[[], Any] | None, codec: Codec) -> Outcome:
        """Run engine operation `op` on the request that `make_request()` builds (parsing
        happens where the user code runs, off the loop for synchronous models)."""
        if not self.ready.is_set():
            await self.wait_ready()
        if self.on_loop[op]:
            request = make_request() if make_request is not None else None
            return await run_async(self._operation(op, request, codec), self.offload)
        return await self.offload(functools.partial(self._run_sync, op, make_request, codec))

    def _operation(self, op: str, request: Any, codec: Codec) -> Any:
        if op == "health_status":
            return self.engine.health_status(codec)
        return getattr(self.engine, op)(request, codec)

    def call_blocking(
        self, op: str, make_request: Callable[[], Any] | None, codec: Codec
    ) -> Outcome:
        """`call` for a thread that is not the event loop's: the operation runs right
        here, unless it needs the loop (async user methods) or a request timeout (the
        call then goes to the user threads, which can be given up on)."""
        if self.on_loop[op] or self.request_timeout is not None:
            future = asyncio.run_coroutine_threadsafe(self.call(op, make_request, codec), self.loop)
            return future.result()
        return self._run_sync(op, make_request, codec)

    def _run_sync(self, op: str, make_request: Callable[[], Any] | None, codec: Codec) -> Outcome:
        request = make_request() if make_request is not None else None
        return run_sync(self._operation(op, request, codec), self.gate)

    def close(self) -> None:
        self.offloader.close()
