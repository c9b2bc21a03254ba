"""The tools rows: `unitserve batch` vs seldon-batch-processor, and the client's CPU per call.

Both measurements use one `unitserve serve IdentityModel` (defaults: one worker) pinned to the
server core(s), and run the tool on the load core(s), so that what is timed is the tool:

- **batch**: the same file of small lines (`[[a, b, c, d]]`, seeded; `--batch-lines`, 100,000 in
  `make bench`) is sent by `unitserve batch` and then by seldon-batch-processor (seldon-core's
  venv), both `-g seldon` (the microservice's own route) with the same `--workers`. lines/s =
  input lines / wall seconds of the tool's process from start to exit. The two outputs are then
  compared line by line after normalising what must differ (the puid, the per-run `batch_id`
  and `batch_instance_id` tags) and after putting the original's lines back in input order (it
  writes them in completion order) by their `batch_index` tag.
- **client**: `client_cost.py` (see there) on the load core against the same server.

Each measurement is one JSON line of `kind: "tool"` in results.jsonl; the report judges the
targets on them.
"""

import json
import random
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from unitbench import checks, procs
from unitbench.paths import VENVS_DIR
from unitbench.payloads import body
from unitbench.runner import Emit, Options, next_ports, wait_idle, wait_ready
from unitbench.servers import SERVERS, UNITSERVE_BIN, Ports

SELDON_BATCH = VENVS_DIR / "seldon" / "bin" / "seldon-batch-processor"
TOOLS = ("batch", "client")


@dataclass(frozen=True)
class ToolOptions:
    batch_lines: int
    batch_workers: int
    client_calls: int
    client_rounds: int


def batch_input(path: Path, lines: int) -> Path:
    """`lines` lines of four seeded numbers each, written once per size."""
    if path.exists() and sum(1 for _ in path.open()) == lines:
        return path
    rng = random.Random(13)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for _ in range(lines):
            f.write(json.dumps([[round(rng.uniform(-10, 10), 4) for _ in range(4)]]) + "\n")
    return path


def normalised(path: Path, by_index: bool) -> list[str]:
    """The answer lines without what differs between runs of any batch processor; ordered by
    their batch_index tag if `by_index` (the original writes lines in completion order)."""
    out: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text().splitlines()):
        answer = json.loads(line)
        meta = answer.get("meta") or {}
        meta.pop("puid", None)
        tags = meta.get("tags") or {}
        for key in ("batch_id", "batch_instance_id"):
            tags.pop(key, None)
        if "batch_index" in tags:
            # the original writes this tag as a float (2.0); the number is what matters
            tags["batch_index"] = int(tags["batch_index"])
        index = tags.get("batch_index", number) if by_index else number
        out.append((int(index), json.dumps(answer, sort_keys=True)))
    out.sort(key=lambda pair: pair[0])
    return [text for _, text in out]


def timed(argv: list[str], cpus: str, log: Path, timeout: float) -> dict:
    """Run a tool pinned to `cpus`, its output appended to `log`: wall seconds, exit status and
    the tool's CPU seconds (user + system, its threads and the children it waited for)."""
    full = (["taskset", "-c", cpus] if cpus else []) + argv
    started = time.monotonic()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(full)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            full, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    seconds = time.monotonic() - started
    # the tool is the only child reaped meanwhile (taskset execs it under the same pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(children, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime"))
    return {"seconds": round(seconds, 2), "rc": proc.returncode, "tool_cpu_s": round(cpu, 2)}


def run_batch(
    port: int,
    server: procs.ServerProcess,
    opts: Options,
    tool_opts: ToolOptions,
    emit: Emit,
    work: Path,
) -> None:
    source = batch_input(work / f"batch-{tool_opts.batch_lines}.txt", tool_opts.batch_lines)
    common = [
        "-g",
        "seldon",
        "-h",
        f"127.0.0.1:{port}",
        "-i",
        str(source),
        "-w",
        str(tool_opts.batch_workers),
    ]
    runs = {
        "unitserve batch": ([UNITSERVE_BIN, "batch", *common], work / "batch-unitserve.txt"),
        "seldon-batch-processor": (
            [str(SELDON_BATCH), "-d", "bench", *common],
            work / "batch-seldon.txt",
        ),
    }
    for _, out in runs.values():  # never compare an output left by an earlier run
        out.unlink(missing_ok=True)
    log = opts.log_dir / "tools-batch.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    for who, (argv, out) in runs.items():
        if who == "seldon-batch-processor" and not SELDON_BATCH.exists():
            emit(
                {
                    "kind": "tool",
                    "tool": "batch",
                    "who": who,
                    "status": "skipped",
                    "error": f"{SELDON_BATCH} not found",
                }
            )
            continue
        wait_idle(server, opts.settle_limit)
        pids = server.pids()
        before = procs.cpu_snapshot(pids)
        # 20 lines/s is far below either tool even on a busy machine (seldon-batch-processor
        # managed ~110 with the machine's load average at 9): a bound that only stops a hang
        result = timed(
            [*argv, "-o", str(out)], opts.load_cpus, log, 60 + tool_opts.batch_lines / 20
        )
        server_cpu = procs.cpu_seconds_between(before, procs.cpu_snapshot([*pids, *server.pids()]))
        written = sum(1 for _ in out.open()) if out.exists() else 0
        record = {
            "kind": "tool",
            "tool": "batch",
            "who": who,
            "lines": tool_opts.batch_lines,
            "workers": tool_opts.batch_workers,
            "written": written,
            **result,
            "lines_per_s": round(written / result["seconds"], 1) if result["seconds"] else None,
            "server_cpu_us_per_line": round(server_cpu / written * 1e6, 1) if written else None,
            "tool_cpu_us_per_line": round(result["tool_cpu_s"] / written * 1e6, 1)
            if written
            else None,
            "status": "ok" if result["rc"] == 0 and written == tool_opts.batch_lines else "failed",
        }
        emit(record)
        print(
            f"[tools batch] {who}: {record['lines_per_s']} lines/s, {written} lines,"
            f" rc={result['rc']}",
            flush=True,
        )
    ours, theirs = runs["unitserve batch"][1], runs["seldon-batch-processor"][1]
    if ours.exists() and theirs.exists():
        a, b = normalised(ours, by_index=False), normalised(theirs, by_index=True)
        differ = sum(x != y for x, y in zip(a, b, strict=False)) + abs(len(a) - len(b))
        emit(
            {
                "kind": "tool",
                "tool": "batch-compare",
                "lines": max(len(a), len(b)),
                "differences": differ,
                "same": differ == 0 and len(a) == tool_opts.batch_lines,
            }
        )
        print(f"[tools batch] outputs compared: {differ} lines differ", flush=True)


def run_client(port: int, opts: Options, tool_opts: ToolOptions, emit: Emit) -> None:
    argv = [
        sys.executable,
        "-m",
        "unitbench.client_cost",
        "--port",
        str(port),
        "--calls",
        str(tool_opts.client_calls),
        "--rounds",
        str(tool_opts.client_rounds),
    ]
    full = (["taskset", "-c", opts.load_cpus] if opts.load_cpus else []) + argv
    done = subprocess.run(
        full,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if done.returncode != 0:
        emit({"kind": "tool", "tool": "client", "status": "failed", "error": done.stderr[-1500:]})
        print(f"[tools client] FAILED\n{done.stderr[-1500:]}", flush=True)
        return
    result = json.loads(done.stdout.strip().splitlines()[-1])
    emit({"kind": "tool", "tool": "client", "status": "ok", **result})
    print(
        f"[tools client] client {result['client_us_per_call']} us/call, bare httpx"
        f" {result['httpx_us_per_call']} us/call ({result['ratio']}x)",
        flush=True,
    )


def run_tools(
    tools: tuple[str, ...],
    opts: Options,
    tool_opts: ToolOptions,
    emit: Emit,
    index: int,
    work: Path,
) -> None:
    """One unitserve session serving every tool measurement asked for."""
    spec = SERVERS["unitserve"]
    if why := spec.missing():
        for tool in tools:
            emit({"kind": "tool", "tool": tool, "status": "skipped", "error": why})
        return
    ports: Ports = next_ports(opts.port_base, index)
    log = opts.log_dir / "unitserve-tools.log"
    server = procs.ServerProcess(
        spec.command(ports), spec.cwd, spec.environment(ports), opts.server_cpus, log
    )
    try:
        probe = spec.request("small", "rest")
        assert probe is not None
        ready, _ = wait_ready(server, ports.http, probe, spec.check, opts.startup_timeout)
        if not ready.ok:
            for tool in tools:
                emit(
                    {
                        "kind": "tool",
                        "tool": tool,
                        "status": "failed",
                        "error": f"server not ready: {ready.detail}",
                    }
                )
            return
        if "batch" in tools:
            run_batch(ports.http, server, opts, tool_opts, emit, work)
        if "client" in tools:
            run_client(ports.http, opts, tool_opts, emit)
        small = body("small", "rest", "seldon")
        assert small is not None  # every family has the small payload over REST
        after = checks.verify(ports.http, small, spec.check)
        if not after.ok:
            print(f"[tools] server answer after the tools: {after.detail}", flush=True)
    finally:
        server.stop(opts.stop_grace)
