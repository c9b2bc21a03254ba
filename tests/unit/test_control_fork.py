"""The control channel across real processes, wired as the supervisor wires it: a
socketpair made before each fork, the hub on the parent's selector loop, and each
child running the worker's channel on uvloop. One child is killed in the middle of an
operation, and its replacement replays what the others had done before it is ready."""

from __future__ import annotations

import asyncio
import contextlib
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from unitserve.runtime.control import SupervisedChannel
from unitserve.runtime.control_hub import ControlHub

# It forks: not one of the in-process tests that `make test-fast` runs.
pytestmark = pytest.mark.e2e


class Parent:
    """The supervisor's part: fork workers, run the hub, read what children report."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.hub = ControlHub(self.selector)
        self.report_r, self.report_w = os.pipe()
        os.set_blocking(self.report_r, False)
        self.selector.register(self.report_r, selectors.EVENT_READ, self._read_reports)
        self.reports: list[str] = []
        self.pending = b""
        self.pids: dict[int, int] = {}  # slot → pid

    def spawn(self, slot: int) -> int:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                self.selector.close()
                self.hub.close_in_child()
                os.close(self.report_r)
                code = uvloop.run(_worker(theirs, slot, self.report_w))
            finally:
                os._exit(code)
        theirs.close()
        self.hub.attach(pid, ours, f"worker {slot} (pid {pid})")
        self.pids[slot] = pid
        return pid

    def _read_reports(self, _fd: Any) -> None:
        with contextlib.suppress(BlockingIOError):
            self.pending += os.read(self.report_r, 65536)
        *lines, self.pending = self.pending.split(b"\n")
        self.reports += [line.decode() for line in lines]

    def run_until(self, done: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done in time; reports: {self.reports}"
            for key, _ in self.selector.select(0.2):
                key.data(key.fileobj)
            self.hub.expire(time.monotonic())
            self.reap()

    def reap(self) -> None:
        """Our children only: pytest's process may have others."""
        for slot, pid in list(self.pids.items()):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                self.hub.detach(pid)
                del self.pids[slot]

    def stop(self) -> None:
        for pid in self.pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.pids.values():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.hub.close()
        self.selector.close()
        os.close(self.report_r)
        os.close(self.report_w)


async def _worker(sock: socket.socket, slot: int, report_w: int) -> int:
    """A worker: report each operation it runs; worker 1 never finishes "hang";
    worker 0 asks for two operations once ready."""

    def report(line: str) -> None:
        os.write(report_w, f"{line}\n".encode())

    async def handler(op: str, args: dict[str, Any]) -> dict[str, Any]:
        report(f"{slot} ran {op} {args['name']}")
        if op == "hang" and slot == 1:
            await asyncio.Event().wait()
        return {"slot": slot, "pid": os.getpid()}

    channel = SupervisedChannel(sock, f"worker {slot}")
    channel.set_handler(handler)
    await channel.start()
    await channel.replay()
    report(f"{slot} ready")
    if slot == 0:
        loaded = await channel.broadcast("load", {"name": "x"})
        report(f"0 answered load {loaded['slot']}")
        hung = await channel.broadcast("hang", {"name": "h"}, timeout=30)
        report(f"0 answered hang {hung['slot']}")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await channel.close()
    return 0


def test_fan_out_survives_a_killed_worker_and_its_replacement_replays() -> None:
    parent = Parent()
    try:
        parent.spawn(0)
        parent.spawn(1)
        parent.run_until(lambda: "1 ran hang h" in parent.reports)
        assert {"0 ran load x", "1 ran load x", "0 answered load 0"} <= set(parent.reports)
        assert "0 answered hang 0" not in parent.reports  # worker 1 holds it

        os.kill(parent.pids[1], signal.SIGKILL)
        parent.run_until(lambda: "0 answered hang 0" in parent.reports)

        parent.spawn(2)
        parent.run_until(lambda: "2 ready" in parent.reports)
        mine = [line for line in parent.reports if line.startswith("2 ")]
        assert mine == ["2 ran load x", "2 ran hang h", "2 ready"]
        assert list(parent.hub.replay_log) == ["x", "h"]

        for pid in list(parent.pids.values()):
            os.kill(pid, signal.SIGTERM)
        parent.run_until(lambda: not parent.pids)
    finally:
        parent.stop()
