"""Adaptive batching: the concurrent requests of one operation, one user call.

With ``--max-batch-size`` above 1, a request to predict, transform-input,
transform-output or the Open Inference Protocol's inference is decoded on the event
loop and its engine operation run up to the call of the user method. If the features
can be stacked with other requests' (a numeric or boolean array of two or more
dimensions; same payload kind, dtype, trailing shape and names), the request joins
the pending group of its kind. A group is due when its rows reach the limit or when
its oldest request has waited ``--max-batch-time``; it runs as soon as a user thread is
free (one group per ``--threads`` thread at a time), and while it waits for one it keeps
taking requests up to the limit. Under load the groups therefore fill up by themselves,
and at low load a request waits ``--max-batch-time`` at most. The features are
concatenated along the first axis, the user method is called once, and its answer is
split back by each request's row count. Every request then finishes its own operation
(its own meta merge, tags, metrics and encoding), on the thread that ran the call.

Anything else goes alone, exactly as without batching: a payload that is not such an
array, an operation with raw or deprecated methods, a request larger than the limit,
and a group that holds one request when it is sent (the user method then sees that
request as it came, meta included).

Waiting only pays off when another request might join, so a request that finds the
worker with no other request in flight (being read or decoded, waiting in a group or
running, for any operation) goes at once, as a group of one. "In flight" is the
transports' count of started and unfinished requests when the worker gives one, else
the batcher's own count of its requests. Requests that reach the worker together are
read in the same pass of the event loop but started one after the other, so the
decision is taken one pass later, once those have been counted: a lone request pays one
turn of the loop, not ``--max-batch-time``.

What the user method sees for a call of several requests: ``X`` the stacked rows,
``names`` the common names, and ``meta`` (when it takes one) a dict
``{"batch": [meta of each request, in row order], "rows": [rows of each request]}``.
A `SeldonResponse`'s tags go to every answer; its metrics to the first request's
answer only, so that they are recorded once per call.

With batching off the invoker never reaches this module.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from unitserve.drivers import Offload, finish_async, finish_sync, perform, perform_async, settle
from unitserve.engine import FELL_THROUGH, Call, Outcome, Steps
from unitserve.errors import BadModelOutput, Timeout
from unitserve.message import RuntimeOutputs
from unitserve.operations import INFER, PREDICT, TRANSFORM_INPUT, TRANSFORM_OUTPUT
from unitserve.user_model import SeldonResponse

#: The operations whose requests may be batched: the ones that hand one request's
#: features to one user method and answer with the result.
BATCHED_OPERATIONS = (PREDICT.name, TRANSFORM_INPUT.name, TRANSFORM_OUTPUT.name, INFER.name)

# numpy dtype kinds that stack: bool, signed and unsigned ints, floats, complex.
# Strings and objects go alone: a string array's dtype carries its longest item, so
# two requests would rarely match, and objects can be anything.
_STACKABLE_KINDS = frozenset("biufc")


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_rows: int  # rows of one call
    max_wait: float  # seconds the oldest request of a group may wait


def batch_limits(max_batch_size: int, max_batch_time_ms: float, user: Any) -> BatchLimits | None:
    """The limits for this user object, or None when batching is off: the flag is 0
    or 1, the class says ``batching = False``, or its own ``max_batch_size`` is 1."""
    rows = max_batch_size
    if getattr(user, "batching", True) is False:
        return None
    own = getattr(user, "max_batch_size", None)
    if isinstance(own, int) and not isinstance(own, bool) and own > 0:
        rows = min(rows, own)
    if rows <= 1:
        return None
    return BatchLimits(rows, max(0.0, max_batch_time_ms) / 1000.0)


class BatchObserver(Protocol):
    """Where a worker records its batches (the Prometheus side implements it)."""

    def batch_sent(self, operation: str, rows: int, waits: Sequence[float]) -> None: ...


class RowMismatch(BadModelOutput):
    """A batched call's answer that cannot be split back into one answer per request."""


# ----------------------------------------------------------------------------- stacking


def stack_key(op: str, call: Call) -> tuple[Any, ...] | None:
    """What requests must share to be stacked, or None: this one goes alone."""
    msg = call.msg
    if msg is None:
        return None
    features = msg.features
    if not isinstance(features, np.ndarray) or features.ndim < 2:
        # A 1-D request is often one sample written flat: its elements are not rows.
        return None
    if features.dtype.kind not in _STACKABLE_KINDS:
        return None
    try:
        names = tuple(msg.names or ())
        hash(names)
    except TypeError:
        return None
    return (
        op,
        call.method.name,
        msg.kind,
        features.dtype.str,
        features.shape[1:],
        names,
        call.kwargs is not None,
        # Open Inference requests that ask for different outputs get different answers
        # from a class that reads them (the prepackaged servers): not stacked together.
        _requested_outputs(call),
        # ...and requests that say different things of their inputs (a request
        # parameter ``content_type``) are read differently: not stacked either.
        _content_type(call),
    )


def _requested_outputs(call: Call) -> tuple[Any, ...] | None:
    meta = call.kwargs.get("meta") if call.kwargs else None
    outputs = meta.get("outputs") if isinstance(meta, dict) else None
    return tuple(outputs) if isinstance(outputs, list) else None


def _content_type(call: Call) -> Any:
    meta = call.kwargs.get("meta") if call.kwargs else None
    tags = meta.get("tags") if isinstance(meta, dict) else None
    found = tags.get("content_type") if isinstance(tags, dict) else None
    try:
        hash(found)
    except TypeError:
        return repr(found)
    return found


def split_result(result: Any, rows: list[int], op: str) -> list[Any]:
    """The batched call's answer → one answer per request, by row counts."""
    if result is FELL_THROUGH:  # the method said "not implemented": each falls back alone
        return [FELL_THROUGH] * len(rows)
    if isinstance(result, SeldonResponse):
        parts = split_result(result.data, rows, op)
        return [
            SeldonResponse(part, dict(result.tags) if result.tags else None, None)
            if i
            else SeldonResponse(part, result.tags, result.metrics)
            for i, part in enumerate(parts)
        ]
    total = sum(rows)
    bounds = np.cumsum(rows)[:-1].tolist()
    if op == INFER.name:
        # The Open Inference Protocol reads a list/tuple of arrays or a dict as several
        # outputs: each output is split by rows.
        if isinstance(result, dict) and result:
            columns = {k: split_result(v, rows, op) for k, v in result.items()}
            parts = [{k: columns[k][i] for k in result} for i in range(len(rows))]
            if isinstance(result, RuntimeOutputs):  # each part made as the whole was
                return [result.with_outputs(part) for part in parts]
            return parts
        if (
            isinstance(result, list | tuple)
            and result
            and all(isinstance(v, np.ndarray) for v in result)
        ):
            outputs = [split_result(v, rows, op) for v in result]
            return [type(result)(o[i] for o in outputs) for i in range(len(rows))]
    if isinstance(result, np.ndarray) and result.ndim >= 1:
        if result.shape[0] == total:
            return np.split(result, bounds)
        got = f"{result.shape[0]} rows"
    elif isinstance(result, list):
        if len(result) == total:
            return [result[a:b] for a, b in zip([0, *bounds], [*bounds, total], strict=True)]
        got = f"{len(result)} rows"
    else:
        got = f"a {type(result).__name__}"
    raise RowMismatch(
        "the model must return one row per input row when batching is on "
        f"(--max-batch-size): it returned {got} for a batch of {total} rows "
        f"from {len(rows)} requests"
    )


def batched_call(entries: list[_Entry]) -> Call:
    """The user call of a whole group (see the module's docstring for its meta)."""
    first = entries[0].call
    features = np.concatenate([e.call.args[0] for e in entries])
    kwargs = None
    if first.kwargs is not None:
        meta = {"batch": [e.call.kwargs["meta"] if e.call.kwargs else None for e in entries]}
        meta["rows"] = [e.rows for e in entries]
        kwargs = {"meta": meta}
    return Call(first.method, (features, first.args[1]), kwargs, first.fallthrough)


# ----------------------------------------------------------------------------- the batcher


@dataclass(slots=True)
class _Entry:
    steps: Steps  # the request's operation, waiting for its user call's result
    call: Call
    rows: int
    future: asyncio.Future[Outcome]
    since: float  # when it joined (time.perf_counter)


@dataclass(slots=True)
class _Group:
    key: tuple[Any, ...]
    op: str
    on_loop: bool  # the operation has async methods: the group runs on the event loop
    entries: list[_Entry] = field(default_factory=list)
    rows: int = 0
    # The pending wake-up: the look one loop pass later (a request that came alone),
    # or the deadline of the oldest request; None once due.
    timer: asyncio.Handle | None = None
    queued: bool = False  # due, waiting in Batcher.ready for a free user thread


class Batcher:
    """Groups one worker's batchable requests; lives on the worker's event loop."""

    def __init__(
        self,
        limits: BatchLimits,
        loop: asyncio.AbstractEventLoop,
        submit: Callable[[Callable[[], Any]], asyncio.Future[Any]],
        offload: Offload,
        gate: AbstractContextManager[Any],
        request_timeout: float | None,
        observer: BatchObserver | None = None,
        slots: int = 1,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.limits = limits
        self.slots = slots  # batches run at once: one per user thread
        self.loop = loop
        self.submit = submit  # to the user threads, with no request timeout
        self.offload = offload  # the same, with the request timeout
        self.gate = gate
        self.request_timeout = request_timeout
        self.observer = observer
        # The worker's requests in flight, this one included (the transports count them
        # from the moment they are read); without it, the batcher's own count.
        self.in_flight = in_flight
        self.inside = 0  # requests in `call`: grouped, running or finishing
        self.groups: dict[tuple[Any, ...], _Group] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # running groups of async methods
        self.running = 0  # groups handed to the user threads (or the loop) and not done
        self.ready: collections.deque[_Group] = collections.deque()  # due, waiting for a slot

    async def call(self, op: str, steps: Steps, on_loop: bool) -> Outcome:
        """Run operation `op` (its steps not started yet), batched with others if it can be."""
        self.inside += 1
        try:
            return await self._call(op, steps, on_loop)
        finally:
            self.inside -= 1

    def _others(self, mine: int) -> bool:
        """Whether requests other than `mine` ones are in flight in the worker."""
        count = self.inside if self.in_flight is None else max(self.in_flight(), self.inside)
        return count > mine

    async def _call(self, op: str, steps: Steps, on_loop: bool) -> Outcome:
        try:
            call = steps.send(None)  # decoding happens here, on the loop
        except StopIteration as stop:
            return stop.value
        key = stack_key(op, call)
        rows = call.args[0].shape[0] if key is not None else 0
        if key is None or rows >= self.limits.max_rows or rows == 0:
            return await self._alone(steps, call, on_loop)
        future: asyncio.Future[Outcome] = self.loop.create_future()
        entry = _Entry(steps, call, rows, future, time.perf_counter())
        group = self.groups.get(key)
        if group is not None and group.rows + rows > self.limits.max_rows:
            self._close(group)  # it cannot grow any more
            if group.timer is not None:
                group.timer.cancel()
                self._due(group)
            group = None
        if group is None:
            group = _Group(key, op, on_loop)
            self.groups[key] = group
            if self._others(1):
                group.timer = self.loop.call_later(self.limits.max_wait, self._due, group)
            else:
                group.timer = self.loop.call_soon(self._alone_now, group)
        group.entries.append(entry)
        group.rows += rows
        if group.rows >= self.limits.max_rows:
            self._close(group)
            if group.timer is not None:
                group.timer.cancel()
                self._due(group)
        # A request given up on (timeout, client gone) leaves its group if the group is
        # still waiting; once sent, the group drops its answer.
        try:
            if self.request_timeout is None:
                return await future
            return await asyncio.wait_for(future, self.request_timeout)
        except TimeoutError:
            self._leave(group, entry)
            raise Timeout(
                f"the model did not answer within the request timeout ({self.request_timeout:g} s)"
            ) from None
        except asyncio.CancelledError:
            self._leave(group, entry)
            raise

    def _alone_now(self, group: _Group) -> None:
        """One loop pass after `group` was opened with no other request in flight: the
        requests read in the same pass as its first one are counted by now. If none
        is in flight beyond the group's own, nobody can join it and waiting would be
        pure loss: it is due. Otherwise it waits as usual, from its first request's
        arrival."""
        if self._others(len(group.entries)):
            # A delay from perf_counter rather than `call_at`: uvloop's clock counts
            # whole milliseconds, too coarse for a wait of one or two.
            left = group.entries[0].since + self.limits.max_wait - time.perf_counter()
            group.timer = self.loop.call_later(max(0.0, left), self._due, group)
        else:
            self._due(group)

    def _leave(self, group: _Group, entry: _Entry) -> None:
        if self.groups.get(group.key) is not group:
            return  # already sent
        group.entries.remove(entry)
        group.rows -= entry.rows
        if not group.entries:
            del self.groups[group.key]
            if group.timer is not None:
                group.timer.cancel()

    async def _alone(self, steps: Steps, call: Call, on_loop: bool) -> Outcome:
        if on_loop:
            return await finish_async(steps, await perform_async(call, self.offload), self.offload)
        gate = self.gate
        outcome: Outcome = await self.offload(lambda: finish_sync(steps, perform(call, gate), gate))
        return outcome

    def flush(self) -> None:
        """Send every pending group now, threads free or not (the worker is stopping:
        nothing more will join them)."""
        for group in [*self.ready, *self.groups.values()]:
            self._dispatch(group)
        self.ready.clear()

    def _due(self, group: _Group) -> None:
        """`group` is full, or its oldest request has waited long enough: it runs now if a
        user thread is free, else it queues for the next free one and, unless full,
        keeps taking requests meanwhile. Handing a batch to busy threads would only make
        it wait behind the others while later requests form more small batches."""
        group.timer = None
        if self.running < self.slots and not self.ready:
            self._dispatch(group)
        elif not group.queued:
            group.queued = True
            self.ready.append(group)

    def _close(self, group: _Group) -> None:
        """No more requests join `group`."""
        if self.groups.get(group.key) is group:
            del self.groups[group.key]

    def _freed(self) -> None:
        self.running -= 1
        while self.ready and self.running < self.slots:
            group = self.ready.popleft()
            group.queued = False
            self._dispatch(group)

    def _dispatch(self, group: _Group) -> None:
        self._close(group)
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        live = [e for e in group.entries if not e.future.done()]
        group.entries = []
        if not live:
            return
        if self.observer is not None:
            now = time.perf_counter()
            waits = [now - e.since for e in live]
            self.observer.batch_sent(group.op, sum(e.rows for e in live), waits)
        self.running += 1
        if group.on_loop:
            self._tasks.add(task := self.loop.create_task(self._run_async(live, group.op)))
            task.add_done_callback(self._async_done)
            return
        done = self.submit(functools.partial(self._run_sync, live, group.op))
        done.add_done_callback(functools.partial(self._sync_done, live))

    def _async_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._freed()

    def _sync_done(self, entries: list[_Entry], done: asyncio.Future[Any]) -> None:
        try:
            _hand_out(entries, done)
        finally:
            self._freed()

    def _run_sync(self, entries: list[_Entry], op: str) -> list[tuple[bool, Any]]:
        """On a user thread: one call for the group, then each request's own ending."""
        gate = self.gate
        if len(entries) == 1:
            entry = entries[0]
            try:
                return [(True, finish_sync(entry.steps, perform(entry.call, gate), gate))]
            except Exception as exc:
                return [(False, exc)]
        try:
            result = perform(batched_call(entries), gate)
            parts = split_result(result, [e.rows for e in entries], op)
        except Exception as exc:
            for entry in entries:
                entry.steps.close()
            return [(False, exc)] * len(entries)
        answers: list[tuple[bool, Any]] = []
        for entry, part in zip(entries, parts, strict=True):
            if entry.future.done():  # given up on while the call ran
                entry.steps.close()
                answers.append((False, None))
                continue
            try:
                answers.append((True, finish_sync(entry.steps, part, gate)))
            except Exception as exc:
                answers.append((False, exc))
        return answers

    async def _run_async(self, entries: list[_Entry], op: str) -> None:
        """On the loop, for operations with ``async def`` methods."""
        offload = self.offload
        try:
            if len(entries) == 1:
                parts = [await perform_async(entries[0].call, offload)]
            else:
                result = await perform_async(batched_call(entries), offload)
                parts = split_result(result, [e.rows for e in entries], op)
        except Exception as exc:
            for entry in entries:
                entry.steps.close()
                settle(entry.future, False, exc)
            return
        for entry, part in zip(entries, parts, strict=True):
            if entry.future.done():
                entry.steps.close()
                continue
            try:
                settle(entry.future, True, await finish_async(entry.steps, part, offload))
            except Exception as exc:
                settle(entry.future, False, exc)


def _hand_out(entries: list[_Entry], done: asyncio.Future[list[tuple[bool, Any]]]) -> None:
    """On the loop: each request of a group gets its own answer or error."""
    if done.cancelled():
        return
    failure = done.exception()
    if failure is not None:  # the group's run itself failed: every request says so
        for entry in entries:
            settle(entry.future, False, failure)
        return
    for entry, (ok, value) in zip(entries, done.result(), strict=True):
        settle(entry.future, ok, value)
