"""The control channel in a real server with two workers: an operation one worker
broadcasts runs in both before it is answered, and a worker started later (here the
replacement of a killed one) replays it before it reports ready.

The workers come from tests/e2e/control_launcher.py, which gives them a handler and a
signal to broadcast on, since nothing in the package broadcasts yet."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

from ..conftest import Server, wait_until

LAUNCHER = Path(__file__).with_name("control_launcher.py")


def started(server: Server, slot: int) -> list[int]:
    """The pids of `slot`'s workers, in the order they started."""
    return [int(pid) for pid in re.findall(rf"worker {slot} started \(pid (\d+)\)", server.log())]


def test_an_operation_reaches_both_workers_and_a_replacement_replays_it() -> None:
    server = Server("Identity", "--workers", "2")
    server.command = [sys.executable, str(LAUNCHER), *server.command[3:]]
    try:
        server.start()
        wait_until(lambda: server.log().count(" ready (pid ") == 2)
        [first], [second] = started(server, 0), started(server, 1)

        os.kill(first, signal.SIGUSR1)
        wait_until(lambda: "the broadcast was answered" in server.log())
        log = server.log()
        assert f"worker 0 (pid {first}) ran load x" in log
        assert f"worker 1 (pid {second}) ran load x" in log
        assert "control: load 'x' done in 2 worker(s)" in log
        assert f"worker 0: the broadcast was answered with {{'pid': {first}}}" in log

        os.kill(second, signal.SIGKILL)
        wait_until(lambda: len(started(server, 1)) == 2)
        replacement = started(server, 1)[1]
        wait_until(lambda: f"worker 1 ready (pid {replacement})" in server.log())
        log = server.log()
        ran = log.index(f"worker 1 (pid {replacement}) ran load x")
        replayed = log.index("worker 1 replayed 1 control operation(s)")
        assert ran < replayed < log.index(f"worker 1 ready (pid {replacement})")
    finally:
        assert server.stop() == 0
