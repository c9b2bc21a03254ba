"""The worker's side of the control channel: run an operation in every worker.

A model load or unload that one worker receives must reach every worker of the
server before it is answered, or the next request, taken by another worker,
would find the model missing. The worker calls ``broadcast(op, args)``; the
supervisor (``runtime/control_hub.py``) sends the operation to every live worker,
this one included, where it runs the handler set with ``set_handler``, and
answers once all have acknowledged it.

Operations for one model name (``args["name"]``; those without one count as one
name) run one after another, and the supervisor keeps the last one that
succeeded for each name: a worker started later replays them before it reports
ready. So:

- handlers are idempotent (loading a loaded model is no error);
- the handler is set before the worker's own model has loaded (the replay runs
  then), and a worker broadcasts only once it is ready: until its replay has run,
  the operations sent to it wait, its own included;
- a handler never broadcasts (it would wait for its own name's turn);
- a broadcast waits for workers still starting too, their ``load()`` included:
  pass a timeout, so that a worker stuck starting fails the operation by name.

Without a supervisor (in-process use), ``LocalChannel`` runs the handler only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from unitserve.runtime.control_wire import FramingError, LineBuffer, describe, encode, reason

log = logging.getLogger("unitserve")

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

# How long past its own timeout a worker waits for the supervisor, which gives up at the
# timeout and says which workers did not answer; this is only for a supervisor gone mute.
_SUPERVISOR_SLACK = 5.0


class ControlError(Exception):
    """An operation failed in one or more workers; the message says which and why."""


class ControlChannel:
    """How a worker runs a control operation in every worker of its server."""

    def __init__(self) -> None:
        self._handler: Handler | None = None

    def set_handler(self, handler: Handler) -> None:
        """What runs an operation in this worker: ``await handler(op, args)`` returns a
        JSON-able dict, or raises to say the operation failed here."""
        self._handler = handler

    async def broadcast(
        self, op: str, args: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Run ``handler(op, args)`` in every live worker, this one included; returns
        this worker's result once all have answered, or raises ControlError if any
        failed or did not answer within `timeout` seconds."""
        raise NotImplementedError

    async def start(self) -> None:
        """Begin taking operations from the supervisor (on the worker's loop)."""

    async def replay(self) -> int:
        """Run what the server's earlier operations left in place (before the worker
        reports ready); returns how many operations were replayed."""
        return 0

    async def close(self) -> None:
        """Stop taking operations."""

    async def _run(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        if self._handler is None:
            raise ControlError(f"this worker has no handler for control operations ({op!r})")
        return await self._handler(op, args)


class LocalChannel(ControlChannel):
    """No supervisor: this process is the only worker, so the handler alone runs."""

    async def broadcast(
        self, op: str, args: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._run(op, args), timeout)
        except ControlError:
            raise
        except TimeoutError:
            raise ControlError(
                f"{describe(op, args)} did not finish within {timeout:g} s"
            ) from None
        except Exception as exc:
            raise ControlError(f"{describe(op, args)} failed: {reason(exc)}") from exc


class SupervisedChannel(ControlChannel):
    """A worker's end of its socketpair to the supervisor."""

    def __init__(self, sock: socket.socket, worker: str) -> None:
        super().__init__()
        sock.setblocking(False)
        self._sock = sock
        self._worker = worker  # "worker 1", for log lines
        self._lines = LineBuffer()
        self._send_lock = asyncio.Lock()
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0
        self._replay_log: list[tuple[str, dict[str, Any]]] = []
        self._replay_received = asyncio.Event()
        # Operations that arrive before the replay has run wait here: they come after it.
        self._held: list[tuple[int, str, dict[str, Any]]] | None = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._gone: str | None = None  # why the supervisor can no longer be reached

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def broadcast(
        self, op: str, args: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        if self._gone is not None:
            raise ControlError(f"{describe(op, args)} cannot reach the other workers: {self._gone}")
        self._next_request += 1
        request = self._next_request
        message = {"kind": "broadcast", "id": request, "op": op, "args": args, "timeout": timeout}
        data = encode(message)  # arguments JSON cannot carry are the caller's mistake
        answer = asyncio.get_running_loop().create_future()
        self._requests[request] = answer
        try:
            await self._send(data)
            wait = None if timeout is None else timeout + _SUPERVISOR_SLACK
            return await asyncio.wait_for(answer, wait)
        except TimeoutError:
            raise ControlError(
                f"{describe(op, args)}: the supervisor did not answer within {wait:g} s"
            ) from None
        except OSError as exc:
            raise ControlError(
                f"{describe(op, args)} cannot reach the other workers: {reason(exc)}"
            ) from exc
        finally:
            self._requests.pop(request, None)

    async def replay(self) -> int:
        await self._replay_received.wait()
        done, self._replay_log = self._replay_log, []
        for op, args in done:
            try:
                await self._run(op, args)
            except Exception:
                log.exception("%s: replaying %s failed", self._worker, describe(op, args))
        if done:
            log.info("%s replayed %d control operation(s)", self._worker, len(done))
        # Then what arrived meanwhile, before the worker reports ready. These are for
        # different names: the supervisor sends a name's next operation only once this
        # worker has answered the one before.
        held, self._held = self._held or [], None
        await asyncio.gather(*(self._answer(*item) for item in held))
        return len(done)

    async def close(self) -> None:
        self._gone = "this worker has closed its control channel"
        tasks = [task for task in (self._reader, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # off the socket before it closes
        self._sock.close()

    # ------------------------------------------------------------------ internals

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        why = "the supervisor closed the control channel"
        try:
            while True:
                data = await loop.sock_recv(self._sock, 65536)
                if not data:
                    break
                for message in self._lines.feed(data):
                    self._dispatch(message)
        except (OSError, FramingError) as exc:
            why = f"the control channel failed ({reason(exc)})"
            log.error("%s: %s", self._worker, why)
        finally:
            self._gone = self._gone or why
            self._replay_received.set()  # nothing more is coming: do not wait for it
            for answer in self._requests.values():
                if not answer.done():
                    answer.set_exception(ControlError(why))

    def _dispatch(self, message: dict[str, Any]) -> None:
        try:
            kind = message["kind"]
            if kind == "op":
                item = (int(message["id"]), str(message["op"]), dict(message["args"]))
                if self._held is not None:
                    self._held.append(item)
                else:
                    self._spawn(self._answer(*item))
            elif kind == "replay":
                self._replay_log.append((str(message["op"]), dict(message["args"])))
            elif kind == "replayed":
                self._replay_received.set()
            elif kind == "done":
                answer = self._requests.get(message["id"])
                if answer is not None and not answer.done():
                    _settle(answer, message)
            else:
                log.warning("%s: unknown control message %r", self._worker, kind)
        except (KeyError, TypeError, ValueError):
            log.warning("%s: malformed control message %.200r", self._worker, message)

    async def _answer(self, request: int, op: str, args: dict[str, Any]) -> None:
        try:
            result = await self._run(op, args)
            if result is None:
                result = {}
            elif not isinstance(result, dict):
                raise TypeError(f"the handler returned a {type(result).__name__}, not a dict")
            data = encode({"kind": "ack", "id": request, "ok": True, "result": result})
        except Exception as exc:
            data = encode({"kind": "ack", "id": request, "ok": False, "error": reason(exc)})
        with contextlib.suppress(OSError):  # the supervisor is gone: the reader says so
            await self._send(data)

    async def _send(self, data: bytes) -> None:
        async with self._send_lock:  # whole lines: concurrent answers must not interleave
            await asyncio.get_running_loop().sock_sendall(self._sock, data)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _settle(answer: asyncio.Future[dict[str, Any]], message: dict[str, Any]) -> None:
    """The supervisor's answer to a broadcast: this worker's result, or why it failed."""
    result = message.get("result")
    if message.get("ok") is True and isinstance(result, dict):
        answer.set_result(result)
    elif message.get("ok") is False:
        answer.set_exception(ControlError(str(message.get("error"))))
    else:
        answer.set_exception(
            ControlError(f"malformed answer from the supervisor: {message!r:.200}")
        )
