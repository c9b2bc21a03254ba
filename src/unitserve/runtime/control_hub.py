"""The supervisor's side of the control channel: fan an operation out to every
worker, gather the answers, and remember what a new worker must replay.

Each worker has a socketpair to the supervisor, made before the fork. The hub
reads and writes them without blocking from the supervisor's selector loop, so
a slow or stuck worker delays nothing but the operations waiting for it.

- A worker's ``broadcast`` becomes an operation sent to every attached worker
  (the asker included); the asker gets its own result once all have acknowledged,
  or one sentence naming every worker that failed and why.
- Operations for one model name run one after another; others run side by side.
- A worker that dies (its socket closes, or it is reaped) is no longer waited for.
- For each name the last operation that succeeded is kept, in the order they
  finished; a newly attached worker is sent these to replay, then any operation
  still in flight, whose answer then waits for it too.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from unitserve.runtime.control_wire import FramingError, LineBuffer, describe, encode, reason

log = logging.getLogger("unitserve")


@dataclass
class _Peer:
    """One worker's end of the channel, seen from the supervisor."""

    pid: int
    label: str  # "worker 1 (pid 4242)"
    sock: socket.socket
    lines: LineBuffer = field(default_factory=LineBuffer)
    unsent: bytearray = field(default_factory=bytearray)


@dataclass
class _Operation:
    number: int
    op: str
    args: dict[str, Any]
    asker: int  # pid
    request: int  # the asker's number for it
    timeout: float | None
    deadline: float | None
    started: float | None = None
    waiting: set[int] = field(default_factory=set)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # worker label → why

    @property
    def name(self) -> str:
        """What serializes it: the model name, or "" for operations without one."""
        name = self.args.get("name")
        return name if isinstance(name, str) else ""


class ControlHub:
    """The supervisor's end of every worker's control channel, on its selector."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        self._peers: dict[int, _Peer] = {}
        self._queues: dict[str, deque[_Operation]] = {}  # per name; the head is running
        self._running: dict[int, _Operation] = {}  # by number, for the answers
        self._numbers = 0
        # name → the last (op, args) that succeeded everywhere, oldest first.
        self.replay_log: dict[str, tuple[str, dict[str, Any]]] = {}

    # ------------------------------------------------------------------ workers

    def attach(self, pid: int, sock: socket.socket, label: str) -> None:
        """A new worker: send it the replay log, then what is in flight."""
        sock.setblocking(False)
        peer = _Peer(pid, label, sock)
        self._peers[pid] = peer
        self._selector.register(sock, selectors.EVENT_READ, lambda _sock: self._pump(pid))
        for op, args in self.replay_log.values():
            self._send(peer, {"kind": "replay", "op": op, "args": args})
        self._send(peer, {"kind": "replayed"})
        for queue in self._queues.values():
            running = queue[0]
            if running.started is not None:
                running.waiting.add(pid)
                self._send(peer, _op_message(running))

    def detach(self, pid: int) -> None:
        """The worker is gone: close its end and stop waiting for its answers."""
        peer = self._peers.pop(pid, None)
        if peer is None:
            return
        self._selector.unregister(peer.sock)
        peer.sock.close()
        for name, queue in list(self._queues.items()):
            running = queue[0]
            if pid in running.waiting:
                running.waiting.discard(pid)
                if not running.waiting:
                    self._finish(name)

    def expire(self, now: float) -> None:
        """Give up on operations past their timeout."""
        for name, queue in list(self._queues.items()):
            for late in [item for item in list(queue)[1:] if _past(item, now)]:
                queue.remove(late)
                self._fail_unstarted(late, name)
            running = queue[0]
            if _past(running, now):
                for pid in running.waiting:
                    label = self._peers[pid].label if pid in self._peers else f"pid {pid}"
                    running.failures[label] = f"no answer within {running.timeout:g} s"
                running.waiting.clear()
                self._finish(name)

    def close(self) -> None:
        for pid in list(self._peers):
            self.detach(pid)

    def close_in_child(self) -> None:
        """In a freshly forked process: the other workers' ends are not its own."""
        for peer in self._peers.values():
            peer.sock.close()
        self._peers.clear()

    # ------------------------------------------------------------------ messages

    def _pump(self, pid: int) -> None:
        """The selector says the worker's socket is readable or writable."""
        peer = self._peers.get(pid)
        if peer is None:
            return
        try:
            data = peer.sock.recv(65536)
        except BlockingIOError:
            data = None
        except OSError as exc:
            log.warning("control channel to %s failed: %s", peer.label, reason(exc))
            self.detach(pid)
            return
        if data == b"":  # the worker closed its end: it is exiting
            self.detach(pid)
            return
        if data:
            try:
                messages = peer.lines.feed(data)
            except FramingError as exc:
                log.error("control channel to %s: %s; closing it", peer.label, exc)
                self.detach(pid)
                return
            for message in messages:
                self._receive(peer, message)
        if pid in self._peers:
            self._flush(peer)

    def _receive(self, peer: _Peer, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "broadcast":
            self._request(peer, message)
        elif kind == "ack":
            self._acknowledged(peer, message)
        else:
            log.warning("control channel: %s sent an unknown message %.200r", peer.label, message)

    def _request(self, peer: _Peer, message: dict[str, Any]) -> None:
        op, args, timeout = message.get("op"), message.get("args"), message.get("timeout")
        if not isinstance(op, str) or not isinstance(args, dict):
            error = f"a malformed broadcast from {peer.label}: no op name, or args not an object"
            log.warning("control channel: %s", error)
            self._send(peer, {"kind": "done", "id": message.get("id"), "ok": False, "error": error})
            return
        if not isinstance(timeout, int | float) or timeout <= 0:
            timeout = None
        self._numbers += 1
        now = time.monotonic()
        operation = _Operation(
            self._numbers,
            op,
            args,
            peer.pid,
            message.get("id", 0),
            timeout,
            None if timeout is None else now + timeout,
        )
        queue = self._queues.setdefault(operation.name, deque())
        queue.append(operation)
        if len(queue) == 1:
            self._advance(operation.name)

    def _acknowledged(self, peer: _Peer, message: dict[str, Any]) -> None:
        running = self._running.get(message.get("id", 0))
        if running is None or peer.pid not in running.waiting:
            return  # an answer given up on (timeout), or not ours
        running.waiting.discard(peer.pid)
        result = message.get("result")
        if message.get("ok") is True and isinstance(result, dict):
            running.results[peer.pid] = result
        else:
            running.failures[peer.label] = str(message.get("error", "a malformed answer"))
        if not running.waiting:
            self._finish(running.name)

    # ------------------------------------------------------------------ operations

    def _advance(self, name: str) -> None:
        """Start the operation at the head of `name`'s queue (finishing at once any
        that has no worker left to wait for)."""
        queue = self._queues.get(name)
        while queue:
            head = queue[0]
            head.started = time.monotonic()
            self._running[head.number] = head
            head.waiting = set(self._peers)
            message = _op_message(head)
            for peer in list(self._peers.values()):
                self._send(peer, message)
            if head.waiting:
                return
            self._complete(queue.popleft())
        self._queues.pop(name, None)

    def _finish(self, name: str) -> None:
        queue = self._queues[name]
        self._complete(queue.popleft())
        if queue:
            self._advance(name)
        else:
            del self._queues[name]

    def _complete(self, operation: _Operation) -> None:
        self._running.pop(operation.number, None)
        what = describe(operation.op, operation.args)
        took = time.monotonic() - (operation.started or time.monotonic())
        if operation.failures:
            error = f"{what} failed in " + "; in ".join(
                f"{label}: {why}" for label, why in operation.failures.items()
            )
            log.warning("control: %s", error)
            answer: dict[str, Any] = {"ok": False, "error": error}
        else:
            self.replay_log.pop(operation.name, None)  # to the end: replays follow the order
            self.replay_log[operation.name] = (operation.op, operation.args)
            log.info(
                "control: %s done in %d worker(s) in %.3f s", what, len(operation.results), took
            )
            answer = {"ok": True, "result": operation.results.get(operation.asker, {})}
        asker = self._peers.get(operation.asker)
        if asker is not None:
            self._send(asker, {"kind": "done", "id": operation.request, **answer})

    def _fail_unstarted(self, operation: _Operation, name: str) -> None:
        error = (
            f"{describe(operation.op, operation.args)} did not start within "
            f"{operation.timeout:g} s: an earlier operation on {name!r} was still running"
        )
        log.warning("control: %s", error)
        asker = self._peers.get(operation.asker)
        if asker is not None:
            self._send(
                asker, {"kind": "done", "id": operation.request, "ok": False, "error": error}
            )

    # ------------------------------------------------------------------ output

    def _send(self, peer: _Peer, message: dict[str, Any]) -> None:
        peer.unsent += encode(message)
        self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        """Write what the socket takes now; wait for it to be writable for the rest.
        A write error is left to the reader, which sees the socket close."""
        if peer.unsent:
            try:
                sent = peer.sock.send(peer.unsent)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = len(peer.unsent)  # the worker is gone: nobody will read this
            del peer.unsent[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if peer.unsent else 0)
        key = self._selector.get_key(peer.sock)
        if key.events != events:
            self._selector.modify(peer.sock, events, key.data)


def _op_message(operation: _Operation) -> dict[str, Any]:
    return {"kind": "op", "id": operation.number, "op": operation.op, "args": operation.args}


def _past(operation: _Operation, now: float) -> bool:
    return operation.deadline is not None and now >= operation.deadline
