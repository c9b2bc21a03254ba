"""The drivers of an engine operation: they run its user calls and send each result
back into it, until it returns its outcome (see `unitserve.engine`).

Written once for the plain requests (`unitserve.calls`) and for the batched ones
(`unitserve.batching`, which starts an operation, runs one call for many requests,
and finishes each operation from its share of the answer).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from unitserve.engine import FELL_THROUGH, Call, Outcome, Steps
from unitserve.errors import is_not_implemented

Offload = Callable[[Callable[[], Any]], Awaitable[Any]]

_NO_GATE = nullcontext()


def perform(call: Call, gate: AbstractContextManager[Any] = _NO_GATE) -> Any:
    """One synchronous user call inside `gate` (the worker's limit on concurrent user
    calls); a fall-through call that says "not implemented" answers FELL_THROUGH."""
    try:
        with gate:
            return call.method.fn(*call.args, **(call.kwargs or {}))
    except Exception as exc:
        if call.fallthrough and is_not_implemented(exc):
            return FELL_THROUGH
        raise


async def perform_async(call: Call, offload: Offload) -> Any:
    """One user call from the event loop: ``async def`` methods are awaited here,
    synchronous ones handed to `offload` (the worker's user threads)."""
    try:
        if call.method.is_async:
            return await call.method.fn(*call.args, **(call.kwargs or {}))
        return await offload(functools.partial(call.method.fn, *call.args, **(call.kwargs or {})))
    except Exception as exc:
        if call.fallthrough and is_not_implemented(exc):
            return FELL_THROUGH
        raise


def finish_sync(steps: Steps, sent: Any, gate: AbstractContextManager[Any] = _NO_GATE) -> Outcome:
    """Run the rest of an operation on this thread, `sent` being its pending call's
    result (None: the operation has not started)."""
    try:
        while True:
            sent = perform(steps.send(sent), gate)
    except StopIteration as stop:
        return stop.value


async def finish_async(steps: Steps, sent: Any, offload: Offload) -> Outcome:
    """`finish_sync` on the event loop."""
    try:
        while True:
            sent = await perform_async(steps.send(sent), offload)
    except StopIteration as stop:
        return stop.value


def run_sync(steps: Steps, gate: AbstractContextManager[Any] = _NO_GATE) -> Outcome:
    """Run a whole operation calling every user method directly on this thread."""
    return finish_sync(steps, None, gate)


async def run_async(steps: Steps, offload: Offload) -> Outcome:
    """Run a whole operation on the event loop."""
    return await finish_async(steps, None, offload)


def settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Give `future` its result (or exception), unless it was given up on meanwhile
    (request timeout, client gone)."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
