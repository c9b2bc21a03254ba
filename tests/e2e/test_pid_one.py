"""The server started as pid 1, as a container engine and Kubernetes start it.

A new pid namespace (`unshare --pid --fork`) makes the supervisor pid 1 without any
container engine: its workers must recognise pid 1 as their own supervisor and serve,
not take it for the init process that adopts orphans and kill themselves.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ..conftest import Server, wait_until


def _unshare_works() -> str | None:
    """Why a new pid namespace cannot be made here, or None."""
    if shutil.which("unshare") is None:
        return "no unshare command (util-linux)"
    probe = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    if probe.returncode != 0:
        return f"cannot make a pid namespace here: {probe.stderr.strip()}"
    return None


def _only_child(pid: int) -> int:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_supervisor_as_pid_one_serves_and_stops_cleanly():
    reason = _unshare_works()
    if reason is not None:
        pytest.skip(reason)
    server = Server("Identity", "--workers", "2")
    # --mount-proc gives the namespace its own /proc, so that the server sees itself
    # as pid 1 there; unshare stays outside, waits for it and returns its status.
    server.command = ["unshare", "--pid", "--fork", "--mount-proc", *server.command]
    try:
        server.start(wait="/ready", timeout=30)
        r = server.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}})
        assert r.status_code == 200, r.text
        assert r.json()["data"]["ndarray"] == [[1, 2]]
        assert "died" not in server.log()
        # SIGTERM the supervisor itself (pid 1 inside, a plain pid outside): it drains
        # and exits 0, and unshare passes that status on.
        assert server.proc is not None
        supervisor = wait_until(lambda: _only_child(server.proc.pid) if server.proc else None)
        os.kill(supervisor, signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.log()
    finally:
        server.stop()
