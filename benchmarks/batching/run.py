"""Adaptive batching benchmark: a scikit-learn random forest (100 trees, trained at start-up
on generated data: examples/batching_sklearn), one-row predict_proba requests, wrk closed-loop.

Sessions, each a fresh server on 127.0.0.1 measured at 64 connections and at 1:

- unitserve, batching off, Seldon REST (/api/v1.0/predictions);
- unitserve, batching on (--max-batch-size, --max-batch-time), Seldon REST;
- unitserve, batching on, Open Inference Protocol REST (/v2/models/ForestClassifier/infer);
- MLServer 1.7, adaptive batching at the same settings, the same forest, same V2 body.

Targets checked at the end: at 64 connections batching on serves >= 5x the requests per second
of batching off with a lower p99; at 1 connection it adds <= 1 ms of p50; and unitserve's V2
serves >= 2x MLServer's requests per second.

    python benchmarks/batching/run.py                 # the real measurement (30 s per run)
    python benchmarks/batching/run.py --duration 3    # a smoke test

scikit-learn is a benchmark-only dependency: it is installed into this interpreter's
environment and into MLServer's when missing (`pip install scikit-learn`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLE = ROOT / "examples" / "batching_sklearn"
LUA = ROOT / "benchmarks" / "lua" / "post.lua"
MLSERVER_VENV = Path(
    os.environ.get("MLSERVER_VENV", Path.home() / ".cache" / "unitserve" / "venvs" / "mlserver")
)
FEATURES = 16  # the example's ForestClassifier.FEATURES
ROW = [round(0.1 * ((i * 7) % 13) - 0.6, 3) for i in range(FEATURES)]


@dataclass
class Run:
    session: str
    conc: int
    seconds: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float


# ----------------------------------------------------------------------------- helpers


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def ensure_sklearn(python: str) -> None:
    found = subprocess.run([python, "-c", "import sklearn"], capture_output=True).returncode == 0
    if not found:
        print(f"installing scikit-learn into {python}'s environment", flush=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "scikit-learn"], check=True)


def http(url: str, body: bytes | None = None, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


@contextlib.contextmanager
def server(argv: list[str], cwd: Path, env: dict[str, str], ready_url: str) -> Iterator[None]:
    """A server in its own process group, stopped (SIGTERM, then SIGKILL) when done."""
    log = tempfile.NamedTemporaryFile(prefix="batching-bench-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 180
        while http(ready_url, timeout=2)[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start; log: {log.name}")
            time.sleep(0.2)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def wrk(url: str, body_file: Path, conc: int, seconds: float) -> dict:
    # A long timeout: without batching, 64 queued one-row calls of a slow forest take
    # seconds, and wrk would count them as errors instead of measuring them.
    argv = ["wrk", "-t1", f"-c{conc}", f"-d{seconds:g}s", "--timeout", "60s"]
    argv += ["--latency", "-s", str(LUA), url]
    out = subprocess.run(
        [*argv, "--", str(body_file)], capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    found = re.search(r"^UNITBENCH (\{.*\})$", out, re.M)
    if not found:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    return json.loads(found.group(1))


def measure(session: str, url: str, body: Path, concs: list[int], seconds: float) -> list[Run]:
    runs = []
    for conc in concs:
        wrk(url, body, conc, min(2.0, seconds))  # warm-up: connections, caches, first batches
        got = wrk(url, body, conc, seconds)
        errors = sum(got[k] for k in ("connect", "read", "write", "status", "timeout"))
        elapsed = got["duration_us"] / 1e6
        run = Run(
            session,
            conc,
            elapsed,
            got["requests"],
            errors,
            (got["requests"] - got["status"]) / elapsed,
            got["p50_us"] / 1000,
            got["p99_us"] / 1000,
        )
        print(
            f"  {session:<28} c={conc:<3} {run.rps:9.1f} req/s  p50 {run.p50_ms:7.2f} ms  "
            f"p99 {run.p99_ms:7.2f} ms  errors {errors}",
            flush=True,
        )
        runs.append(run)
    return runs


def check_answer(url: str, body: bytes, v2: bool) -> None:
    status, answer = http(url, body, timeout=30)
    if status != 200:
        raise RuntimeError(f"{url} answered {status}: {answer[:300]!r}")
    parsed = json.loads(answer)
    rows = parsed["outputs"][0]["shape"] if v2 else [len(parsed["data"]["ndarray"])]
    if rows[0] != 1:
        raise RuntimeError(f"{url}: expected one row of probabilities, got {answer[:300]!r}")


# ----------------------------------------------------------------------------- sessions


def unitserve_session(
    name: str, flags: list[str], path: str, body: Path, concs: list[int], seconds: float
) -> list[Run]:
    http_port, grpc_port, metrics_port = free_ports(3)
    argv = [
        sys.executable,
        "-m",
        "unitserve",
        "serve",
        "ForestClassifier",
        "--host",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--metrics-port",
        str(metrics_port),
        *flags,
    ]
    base = f"http://127.0.0.1:{http_port}"
    with server(argv, EXAMPLE, dict(os.environ), f"{base}/ready"):
        check_answer(base + path, body.read_bytes(), "v2" in path)
        return measure(name, base + path, body, concs, seconds)


def mlserver_session(
    name: str, rows: int, wait_ms: float, body: Path, concs: list[int], seconds: float
) -> list[Run]:
    python = str(MLSERVER_VENV / "bin" / "python")
    ensure_sklearn(python)
    http_port, grpc_port, metrics_port = free_ports(3)
    with tempfile.TemporaryDirectory(prefix="batching-bench-mlserver-") as scratch:
        models = Path(scratch) / "models"
        model = models / "forest"
        model.mkdir(parents=True)
        shutil.copy(HERE / "mlserver_forest" / "runtime.py", model)
        shutil.copy(EXAMPLE / "ForestClassifier.py", model)
        settings = {
            "name": "forest",
            "implementation": "runtime.Forest",
            "max_batch_size": rows,
            "max_batch_time": wait_ms / 1000.0,  # MLServer takes seconds
        }
        (model / "model-settings.json").write_text(json.dumps(settings))
        env = {
            **os.environ,
            "MLSERVER_HOST": "127.0.0.1",
            "MLSERVER_HTTP_PORT": str(http_port),
            "MLSERVER_GRPC_PORT": str(grpc_port),
            "MLSERVER_METRICS_PORT": str(metrics_port),
            "MLSERVER_METRICS_DIR": str(Path(scratch) / "metrics"),
        }
        env.pop("VIRTUAL_ENV", None)
        argv = [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(models)]
        base = f"http://127.0.0.1:{http_port}"
        with server(argv, Path(scratch), env, f"{base}/v2/models/forest/ready"):
            url = f"{base}/v2/models/forest/infer"
            check_answer(url, body.read_bytes(), True)
            return measure(name, url, body, concs, seconds)


# ----------------------------------------------------------------------------- targets


def targets(runs: list[Run]) -> list[tuple[str, bool | None, str]]:
    by = {(r.session, r.conc): r for r in runs}
    found: list[tuple[str, bool | None, str]] = []

    def pair(a: tuple[str, int], b: tuple[str, int]) -> tuple[Run, Run] | None:
        """Both runs, if both completed requests (a run too short to finish one is no data)."""
        if a in by and b in by and by[a].requests and by[b].requests:
            return by[a], by[b]
        return None

    if p := pair(("unitserve batching on", 64), ("unitserve batching off", 64)):
        on, off = p
        ratio = on.rps / off.rps if off.rps else float("inf")
        found.append(("c=64: on >= 5x off req/s", ratio >= 5, f"{ratio:.2f}x"))
        found.append(
            (
                "c=64: on p99 < off p99",
                on.p99_ms < off.p99_ms,
                f"{on.p99_ms:.2f} vs {off.p99_ms:.2f} ms",
            )
        )
    if p := pair(("unitserve batching on", 1), ("unitserve batching off", 1)):
        on, off = p
        extra = on.p50_ms - off.p50_ms
        found.append(("c=1: on adds <= 1 ms p50", extra <= 1.0, f"{extra:+.2f} ms"))
    if p := pair(("unitserve batching on (V2)", 64), ("mlserver adaptive batching", 64)):
        ours, theirs = p
        ratio = ours.rps / theirs.rps if theirs.rps else float("inf")
        found.append(("c=64: unitserve V2 >= 2x MLServer req/s", ratio >= 2, f"{ratio:.2f}x"))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per measured run")
    parser.add_argument("--conc", default="64,1", help="connections, comma-separated")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-batch-time", type=float, default=1.0, help="milliseconds")
    parser.add_argument("--skip-mlserver", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = parser.parse_args()
    concs = [int(c) for c in args.conc.split(",")]
    ensure_sklearn(sys.executable)
    batching = ["--max-batch-size", str(args.max_batch_size)]
    batching += ["--max-batch-time", f"{args.max_batch_time:g}"]

    with tempfile.TemporaryDirectory(prefix="batching-bench-") as scratch:
        seldon_body = Path(scratch) / "seldon.json"
        seldon_body.write_text(json.dumps({"data": {"ndarray": [ROW]}}))
        v2_body = Path(scratch) / "v2.json"
        v2_input = {"name": "x", "shape": [1, FEATURES], "datatype": "FP64", "data": ROW}
        v2_body.write_text(json.dumps({"inputs": [v2_input]}))
        seldon_path, v2_path = "/api/v1.0/predictions", "/v2/models/ForestClassifier/infer"
        d = args.duration
        runs = unitserve_session("unitserve batching off", [], seldon_path, seldon_body, concs, d)
        runs += unitserve_session(
            "unitserve batching on", batching, seldon_path, seldon_body, concs, d
        )
        runs += unitserve_session(
            "unitserve batching on (V2)", batching, v2_path, v2_body, concs, d
        )
        if not args.skip_mlserver:
            if (MLSERVER_VENV / "bin" / "mlserver").exists():
                runs += mlserver_session(
                    "mlserver adaptive batching",
                    args.max_batch_size,
                    args.max_batch_time,
                    v2_body,
                    concs,
                    d,
                )
            else:
                print(f"MLServer not found in {MLSERVER_VENV}: its session is skipped")

    print("\ntargets:")
    checked = targets(runs)
    for what, ok, detail in checked:
        print(f"  {'PASS' if ok else 'FAIL'}  {what}: {detail}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "duration_s": args.duration,
        "max_batch_size": args.max_batch_size,
        "max_batch_time_ms": args.max_batch_time,
    }
    report = {
        "settings": settings,
        "runs": [asdict(r) for r in runs],
        "targets": [{"target": w, "met": ok, "value": v} for w, ok, v in checked],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
