"""Server processes: start pinned in their own process group, measure through /proc, stop by PID.

A server is measured as its whole process tree (Seldon runs ~7 processes: gunicorn master and
worker, a multiprocessing Manager, gRPC parent and worker, metrics master and worker). CPU time is
utime + stime of every process of the tree from /proc/PID/stat; memory is the sum of the tree's
RSS (/proc/PID/statm) and, at rest, its PSS (/proc/PID/smaps_rollup), which counts pages shared
between forked processes once. Nothing is ever signalled by name: stop() sends SIGTERM to the
server's main process, then SIGKILL to every descendant seen and to the process group if anything
is still alive after a grace period; each PID is checked against its start time first, so that a
recycled PID is never hit.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Stat:
    pid: int
    comm: str
    state: str
    ppid: int
    ticks: int  # utime + stime, all threads
    start: int  # start time since boot, in ticks: identifies the process together with the pid


def read_stat(pid: int) -> Stat | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = data[data.find("(") + 1 : data.rfind(")")]
    rest = data[data.rfind(")") + 2 :].split()
    return Stat(pid, comm, rest[0], int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[19]))


def tree(root: int) -> list[int]:
    """The root and all its live (non-zombie) descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st and st.state != "Z":
                children.setdefault(st.ppid, []).append(st.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if read_stat(pid) is not None:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def cpu_snapshot(pids: Iterable[int]) -> dict[int, Stat]:
    return {st.pid: st for st in map(read_stat, pids) if st is not None}


def cpu_seconds_between(before: dict[int, Stat], after: dict[int, Stat]) -> float:
    """CPU used by the tree between two snapshots; processes born in between count from zero."""
    ticks = 0
    for pid, st in after.items():
        old = before.get(pid)
        ticks += st.ticks - (old.ticks if old and old.start == st.start else 0)
    return ticks / HZ


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    return total


def pss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError):
            pass
    return total


def core_ticks() -> dict[str, tuple[int, int]]:
    """{"cpu0": (busy, total), ...} from /proc/stat (busy excludes idle, iowait and steal)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            name, *fields = line.split()
            v = [int(x) for x in fields[:8]]
            total = sum(v)
            out[name] = (total - v[3] - v[4] - v[7], total)
    return out


class ServerProcess:
    """One server command, pinned with taskset, in a new session (process group == its PID)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], cpus: str, log: Path):
        self.argv = (["taskset", "-c", cpus] if cpus else []) + argv
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = log.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.seen: dict[int, int] = {}  # pid -> start time of every process of the tree seen

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pids(self) -> list[int]:
        pids = tree(self.pid)
        for st in cpu_snapshot(pids).values():
            self.seen.setdefault(st.pid, st.start)
        return pids

    def log_tail(self, size: int = 2500) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace")

    def _signal_all(self, sig: int, victims: dict[int, int]) -> int:
        sent = 0
        for pid, start in victims.items():
            st = read_stat(pid)
            if st and st.start == start and st.state != "Z":
                try:
                    os.kill(pid, sig)
                    sent += 1
                except ProcessLookupError:
                    pass
        return sent

    def stop(self, grace: float) -> tuple[float, bool]:
        """SIGTERM to the server's main process (as Kubernetes does), wait up to `grace` s for the
        whole tree to exit, then SIGKILL what is left: the descendants seen and the process group.
        Returns (seconds until the tree was gone, whether it exited on SIGTERM alone)."""
        t0 = time.monotonic()
        self.pids()
        victims = dict(self.seen)
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        clean = True
        while True:  # no reaping here: the unreaped main process keeps its PID and group ours
            left = {
                p: s
                for p, s in victims.items()
                if (st := read_stat(p)) and st.start == s and st.state != "Z"
            }
            if not left:
                break
            if time.monotonic() - t0 > grace:
                clean = False
                self._signal_all(signal.SIGKILL, left)
                break
            time.sleep(0.05)
        if self.proc.returncode is None:  # not reaped yet, so the group id is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # stragglers that left the tree, not the group
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            clean = False
        self._log.close()
        return time.monotonic() - t0, clean
