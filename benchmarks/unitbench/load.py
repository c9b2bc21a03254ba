"""Load generators: wrk (HTTP/1.1, keep-alive) for REST, h2load (h2c) for gRPC.

Both run closed-loop: C connections, each with one request in flight, for a fixed duration, one
load thread, pinned with taskset to the load core(s). A run is also killed if it outlives its
duration by `HARD_MARGIN` seconds, so no run can hang the matrix.

gRPC failures: h2load counts HTTP statuses only, and a failed gRPC call is an HTTP 200 whose
trailers carry a non-zero grpc-status and no message. Such calls are counted from the bytes: every
successful identity reply carries exactly one reply frame of a known size (measured by the
verification call), so `requests - DATA bytes / frame size` replies carried no message.
"""

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unitbench.paths import LUA_SCRIPT, SCRATCH_DIR
from unitbench.payloads import Body

WRK = os.environ.get("WRK", "wrk")
H2LOAD = os.environ.get("H2LOAD", "h2load")
HARD_MARGIN = 30.0


@dataclass
class LoadResult:
    tool: str
    conc: int
    seconds: float
    requests: int  # completed with a 2xx (and for gRPC: a reply message)
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    load_cpu_s: float = 0.0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict:
        return {**asdict(self), "error_total": self.error_total}


def _pinned(argv: list[str], cpus: str) -> list[str]:
    return (["taskset", "-c", cpus] if cpus else []) + argv


def _run(argv: list[str], limit: float) -> tuple[int, str, float]:
    """Run a tool to completion (or kill it after `limit` s); (rc, output, its CPU seconds)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + limit
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return proc.returncode, text, usage.ru_utime + usage.ru_stime


def wrk(port: int, body: Body, conc: int, duration: float, cpus: str, timeout: float) -> LoadResult:
    url = f"http://127.0.0.1:{port}{body.path}"
    argv = [
        WRK,
        "-t",
        "1",
        "-c",
        str(conc),
        "-d",
        f"{duration:g}s",
        "--timeout",
        f"{timeout:g}s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(body.file),
        body.content_type,
        *(f"{name}: {value}" for name, value in body.headers),
    ]
    rc, text, cpu = _run(_pinned(argv, cpus), duration + HARD_MARGIN)
    match = re.search(r"^UNITBENCH (\{.*\})$", text, re.M)
    if not match:
        raise RuntimeError(f"wrk gave no result (rc={rc}): {text[-1200:]}")
    j = json.loads(match.group(1))
    seconds = j["duration_us"] / 1e6
    errors = {k: j[k] for k in ("connect", "read", "write", "status", "timeout") if j[k]}
    # wrk counts non-2xx/3xx replies in `requests` too; report only good ones as completed
    good = max(0, j["requests"] - j["status"])
    return LoadResult(
        "wrk",
        conc,
        seconds,
        good,
        good / seconds if seconds else 0.0,
        j["p50_us"] / 1e3,
        j["p90_us"] / 1e3,
        j["p99_us"] / 1e3,
        j["max_us"] / 1e3,
        errors,
        cpu,
    )


def _percentile(ordered: list[int], q: float) -> float:
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, int(q / 100 * len(ordered) + 0.5) - 1))
    return float(ordered[rank])


def h2load(
    port: int, body: Body, conc: int, duration: float, cpus: str, timeout: float, reply_frame: int
) -> LoadResult:
    """`reply_frame`: bytes of DATA in one successful reply (5-byte prefix + message)."""
    url = f"http://127.0.0.1:{port}{body.path}"
    SCRATCH_DIR.mkdir(parents=True, exist_ok=True)  # not /tmp: other tenants may clean it
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log", dir=SCRATCH_DIR) as log:
        argv = [
            H2LOAD,
            "-t",
            "1",
            "-c",
            str(conc),
            "-m",
            "1",
            "-D",
            f"{duration:g}",
            "-N",
            f"{timeout:g}",
            "-d",
            str(body.file),
            "-H",
            "te: trailers",
            "-H",
            f"content-type: {body.content_type}",
            *(arg for name, value in body.headers for arg in ("-H", f"{name}: {value}")),
            "--log-file",
            log.name,
            url,
        ]
        rc, text, cpu = _run(_pinned(argv, cpus), duration + HARD_MARGIN)
        latencies = sorted(
            int(cols[2])
            for line in Path(log.name).read_text().splitlines()
            if len(cols := line.split("\t")) >= 3 and cols[1] != "-1"
        )
    finished = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    counts = re.search(
        r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
    )
    statuses = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    traffic = re.search(
        r"traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers .*?\((\d+)\) data", text
    )
    if not (finished and counts):
        raise RuntimeError(f"h2load gave no result (rc={rc}): {text[-1200:]}")
    seconds = float(finished.group(1)) / (1000.0 if finished.group(2) == "ms" else 1.0)
    # h2load: "succeeded" = streams completed, whatever their status; "failed" = streams that did
    # not complete (it includes "errored" and "timeout")
    completed = int(counts.group(4))
    non2xx = sum(int(x) for x in statuses.groups()[1:]) if statuses else 0
    ok_http = completed - non2xx
    missing = 0
    if traffic and reply_frame > 0:
        missing = max(0, ok_http - round(int(traffic.group(3)) / reply_frame))
    errors = {"failed": int(counts.group(5)), "non2xx": non2xx, "grpc_status": missing}
    errors = {k: v for k, v in errors.items() if v}
    good = ok_http - missing
    return LoadResult(
        "h2load",
        conc,
        seconds,
        good,
        good / seconds if seconds else 0.0,
        _percentile(latencies, 50) / 1e3,
        _percentile(latencies, 90) / 1e3,
        _percentile(latencies, 99) / 1e3,
        (latencies[-1] if latencies else 0) / 1e3,
        errors,
        cpu,
    )
