"""Reading a process tree's memory from /proc (Linux), by PID."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcSample:
    pid: int
    rss_kib: int  # resident set size (VmRSS)
    threads: int
    fds: int  # open file descriptors: sockets included, so a leak of either shows


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from every thread's children list)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found.extend(int(x) for x in text.split())
    return found


def tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now (depth-first, bounded)."""
    out: list[int] = []
    todo = [root]
    while todo and len(out) < 10_000:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children(pid))
    return out


def sample(pid: int) -> ProcSample | None:
    """The process's memory, threads and descriptors; None if it is gone or a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    if fields.get("State", "").startswith("Z") or "VmRSS" not in fields:
        return None
    return ProcSample(
        pid=pid,
        rss_kib=int(fields["VmRSS"].split()[0]),
        threads=int(fields.get("Threads", "0")),
        fds=fds,
    )


def session_of(pid: int) -> int | None:
    """The session id of `pid`, None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses
    return int(stat.rsplit(")", 1)[1].split()[3])
