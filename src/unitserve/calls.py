"""Where and how user code runs.

REST: synchronous user methods run on the worker's user threads (``--threads``),
so the event loop keeps answering health probes, metrics and new connections
while a slow ``predict`` runs. The whole request — parsing, decoding, the user
call and encoding — moves to the thread in one hand-off. Operations whose user
methods are ``async def`` run on the loop instead and only offload the
synchronous helpers (tags, metrics) they may call.

gRPC: requests arrive on the gRPC server's own threads, which run the operation
directly (`Invoker.call_blocking`). A gate shared by both transports keeps at
most ``--threads`` synchronous user calls running at once in a worker, as a
model written for one thread expects.

``--request-timeout`` bounds how long a request waits for its answer (and for
``load()`` to finish); a user call that overruns it is given up on, not stopped.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from unitserve import tracing
from unitserve.batching import BATCHED_OPERATIONS, Batcher, BatchLimits, BatchObserver
from unitserve.drivers import run_async, run_sync, settle
from unitserve.engine import Engine, Outcome, Steps
from unitserve.errors import Timeout
from unitserve.message import Codec
from unitserve.operations import ENGINE_OPERATIONS

__all__ = [
    "WIRE_GRPC",
    "WIRE_REST",
    "Invoker",
    "Lane",
    "Offloader",
    "Readiness",
    "Request",
    "run_async",
    "run_sync",
]

log = logging.getLogger("unitserve")


# Which transport a request came by (a transport's request's `wire`): a graph, which
# decodes and encodes the messages itself, answers in that transport's forms.
WIRE_REST = "rest"
WIRE_GRPC = "grpc"


class Request(Protocol):
    """A request as a transport received it, with the codec that reads it.

    `read()` turns the received bytes into what the engine's operation takes (a
    JSON value, a protobuf message, or bytes the codec decodes itself). It is
    called where the user code runs, so that parsing a large body happens off the
    event loop for a synchronous model."""

    @property
    def codec(self) -> Codec: ...

    def read(self) -> Any: ...


# ----------------------------------------------------------------------------- the --threads gate


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


# ----------------------------------------------------------------------------- user threads

# `loop.run_in_executor` costs about 30 µs of CPU per call on one core
# (concurrent.futures bookkeeping, one wake-up per result). The `Offloader` feeds
# ``--threads`` threads from a plain `queue.SimpleQueue` (in C), and each result
# comes back with one `call_soon_threadsafe`: about 20 µs for a lone request and a
# few µs under concurrency, where a busy thread drains the queue without sleeping
# and the loop's wake-ups coalesce. User code still never runs on the event loop.

_STOP = None


class Offloader:
    """Runs zero-argument callables on `threads` daemon threads; `submit` returns an
    asyncio future of the loop it was created on.

    With `start` (fewer threads than `threads`), threads are added only when a call
    is submitted while every thread has one: idle threads waiting on the same queue
    cost a few µs per call (measured: three instead of one, about 8 µs per request
    answered one at a time), so a pool sized for concurrency that rarely comes
    starts small."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threads: int,
        name: str = "user",
        start: int | None = None,
    ) -> None:
        self.loop = loop
        self.name = name
        self.limit = threads
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        # Calls submitted and not yet answered; read and written on the loop only.
        self.in_flight = 0
        for _ in range(threads if start is None else max(1, min(start, threads))):
            self._add_thread()

    def _add_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}-{len(self.threads)}", daemon=True
        )
        self.threads.append(thread)
        thread.start()

    def submit(self, fn: Callable[[], Any], lane: Lane | None = None) -> asyncio.Future[Any]:
        """Run `fn` on one of the threads; `lane` (when it is one of the pool's lanes)
        is told when it is answered."""
        future = self.loop.create_future()
        self.enqueue(fn, future, lane)
        return future

    def enqueue(
        self, fn: Callable[[], Any], future: asyncio.Future[Any], lane: Lane | None
    ) -> None:
        """`submit`, answering `future` (a future of the pool's loop)."""
        self.in_flight += 1
        if self.in_flight > len(self.threads) < self.limit:
            self._add_thread()
        self.queue.put((fn, future, lane))

    def _answered(
        self, future: asyncio.Future[Any], ok: bool, value: Any, lane: Lane | None
    ) -> None:
        self.in_flight -= 1
        settle(future, ok, value)
        if lane is not None:
            lane.answered()

    def _work(self) -> None:
        get, call_back, answered = self.queue.get, self.loop.call_soon_threadsafe, self._answered
        while True:
            item = get()
            if item is _STOP:
                return
            fn, future, lane = item
            if future.cancelled():  # given up on (request timeout) while it waited: skip
                value, ok = None, True
            else:
                try:
                    value, ok = fn(), True
                except BaseException as exc:  # handed to the awaiting request, not lost
                    value, ok = exc, False
            # Before answering: an idle thread must hold nothing of the call it ran (a
            # bound method keeps its model alive, and a model unloaded just after
            # would stay in memory until this thread runs another call).
            item = fn = None
            try:
                call_back(answered, future, ok, value, lane)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            future = value = lane = None

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(_STOP)


class Lane:
    """One model's share of an `Offloader` that many models share (`unitserve start`'s
    worker: a thousand models need not keep a thousand idle threads).

    At most `limit` of the model's calls are on the pool's threads at once (the model's
    ``--threads``); the others wait their turn here, in order, on the loop. A model
    that is slow, or that gets many requests at once, therefore holds no more than
    `limit` of the shared threads, and the other models keep the rest. Submitting and
    answering happen on the loop, as with the pool itself."""

    def __init__(self, pool: Offloader, limit: int) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.limit = max(1, limit)
        self.running = 0
        # Made when a call first has to wait: most models of a large repository are
        # called one at a time, if at all, and an empty deque is 600 bytes.
        self.waiting: collections.deque[tuple[Callable[[], Any], asyncio.Future[Any]]] | None = None

    @property
    def in_flight(self) -> int:
        """Calls submitted and not yet answered (running or waiting their turn)."""
        return self.running + (len(self.waiting) if self.waiting else 0)

    def submit(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        if self.running < self.limit:
            self.running += 1
            return self.pool.submit(fn, self)
        future = self.loop.create_future()
        if self.waiting is None:
            self.waiting = collections.deque()
        self.waiting.append((fn, future))
        return future

    def answered(self) -> None:
        """One of the model's calls was answered: the next one waiting takes its turn."""
        self.running -= 1
        while self.waiting and self.running < self.limit:
            fn, future = self.waiting.popleft()
            if future.cancelled():  # given up on (request timeout) while it waited
                continue
            self.running += 1
            self.pool.enqueue(fn, future, self)

    def close(self) -> None:
        """Nothing to stop: the threads are the pool's. Calls still waiting run in turn
        (requests accepted before an unload are answered)."""


# ----------------------------------------------------------------------------- invoker


class Readiness(Protocol):
    """Whether the model can answer (`unitserve.models.state.ModelState` owns it; the
    invoker only reads it, and waits on it while the model loads)."""

    is_ready: bool

    async def wait_ready(self, timeout: float | None = None) -> None: ...


class _AlwaysReady:
    is_ready = True

    async def wait_ready(self, timeout: float | None = None) -> None:
        return None


class Invoker:
    """Runs engine operations for the transports of one model. It only executes: the
    model's state (`state`) says whether it may, and is kept by its owner."""

    batcher: Batcher | None = None
    # Adaptive batching (unitserve.batching): the operations whose requests go through
    # the batcher. Empty when batching is off, so that a request costs one set lookup.
    batched: frozenset[str] = frozenset()

    def __init__(
        self,
        engine: Engine | None,
        threads: int,
        request_timeout: float = 0.0,
        batching: BatchLimits | None = None,
        batch_observer: BatchObserver | None = None,
        in_flight: Callable[[], int] | None = None,
        *,
        state: Readiness | None = None,
        offloader: Offloader | Lane | None = None,
    ) -> None:
        """`engine` None: an invoker whose subclass runs requests its own way (a
        graph's); `offloader`: threads other than `threads` plain user threads of its
        own (a graph's walkers, or a lane of a pool that many models share)."""
        self.engine = engine
        self.state: Readiness = state if state is not None else _AlwaysReady()
        self.loop = asyncio.get_running_loop()
        self.offloader: Offloader | Lane = offloader or Offloader(self.loop, threads)
        self.gate = user_call_gate(threads)
        self.request_timeout = request_timeout or None
        # Decided once per operation: its engine method, and whether it runs on the loop.
        self.entries: dict[str, Callable[[Any, Codec], Steps]] = {}
        self.on_loop: dict[str, bool] = {}
        if engine is not None:
            for op in ENGINE_OPERATIONS:
                self.entries[op.name] = getattr(engine, op.name)
                self.on_loop[op.name] = engine.is_async(*op.user_methods)
        if batching is not None and engine is not None:
            self.batcher = Batcher(
                batching,
                self.loop,
                self.offloader.submit,
                self.offload,
                self.gate,
                self.request_timeout,
                batch_observer,
                threads,
                in_flight,
            )
            self.batched = frozenset(op for op in BATCHED_OPERATIONS if engine.batchable(op))
        if tracing.ACTIVE is not None:
            self._trace(tracing.ACTIVE)

    def _trace(self, active: tracing.Tracing) -> None:
        """With tracing on: reading, decoding and encoding run in child spans (the engine
        traces the user methods), and work handed to the user threads keeps the
        request's span as its parent. The traced variants are instance attributes, so
        that with tracing off the methods run as written, without a test per request."""
        plain_call, plain_run_sync, plain_offload = self.call, self._run_sync, self.offload

        async def call(op: str, request: Request) -> Outcome:
            return await plain_call(op, tracing.TracedRequest.of(request, active))

        def run_sync_(op: str, request: Request) -> Outcome:
            return plain_run_sync(op, tracing.TracedRequest.of(request, active))

        async def offload(fn: Callable[[], Any]) -> Any:
            return await plain_offload(active.bind(fn))

        self.call = call  # type: ignore[method-assign]
        self._run_sync = run_sync_  # type: ignore[method-assign]
        self.offload = offload  # type: ignore[method-assign]

    def wants_message(self, op: str) -> bool:
        """True if `op` hands the request to a user method as a protobuf message."""
        return self.engine is not None and self.engine.wants_message(op)

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

    async def wait_ready(self) -> None:
        """Return once the model is ready (NotReady, saying why, if it does not become
        ready within the request timeout)."""
        await self.state.wait_ready(self.request_timeout)

    async def call(self, op: str, request: Request) -> Outcome:
        """Run engine operation `op` on `request` (read where the user code runs: off
        the loop for synchronous models)."""
        if not self.state.is_ready:
            await self.state.wait_ready(self.request_timeout)
        if op in self.batched:
            assert self.batcher is not None
            steps = self.entries[op](request.read(), request.codec)
            return await self.batcher.call(op, steps, self.on_loop[op])
        if self.on_loop[op]:
            return await run_async(self.entries[op](request.read(), request.codec), self.offload)
        return await self.offload(functools.partial(self._run_sync, op, request))

    def call_blocking(self, op: str, request: Request) -> Outcome:
        """`call` for a thread that is not the event loop's: the operation runs right
        here, unless it needs the loop (async user methods, batching) or a request
        timeout (the call then goes to the user threads, which can be given up on)."""
        if (
            self.on_loop[op]
            or self.request_timeout is not None
            or op in self.batched
            or not self.state.is_ready
        ):
            future = asyncio.run_coroutine_threadsafe(self.call(op, request), self.loop)
            return future.result()
        return self._run_sync(op, request)

    def _run_sync(self, op: str, request: Request) -> Outcome:
        return run_sync(self.entries[op](request.read(), request.codec), self.gate)

    def flush_batches(self) -> None:
        """Send every pending batch at once (the worker is stopping)."""
        if self.batcher is not None:
            self.batcher.flush()

    def close(self) -> None:
        self.offloader.close()
