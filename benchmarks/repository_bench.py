"""The model repository server, `unitserve start`, side by side with MLServer 1.7 (same run).

Both servers are started the way Seldon Core 2 starts them (MLServer's environment
variables, one worker, models not loaded at start) on the same models folder, pinned to
one core with the client on the other, and driven over REST from this process:

1. rest: a 10-model repository, all loaded; wrk posts a small Open Inference Protocol
   request to one of them over 8 connections. req/s, and the server's CPU per request
   (its whole process tree, from /proc), whose ratio is the per-core ratio.
2. many: N small scikit-learn models loaded one after another through the REST load
   route, up to --time-limit; resident memory per model ((RSS after - RSS before) /
   models loaded) and the time per load. Each load is a load in an N-model repository.
3. startup: the same N models, all loaded at start (MLSERVER_LOAD_MODELS_AT_STARTUP),
   against the same server started on an empty folder: resident memory per model
   ((RSS with N loaded - RSS of the empty server) / N, so scikit-learn's import is in
   it, as a server of N models pays it) and the time from the process's start until
   the index lists every model READY, less the empty server's time until it is live.
4. cycles: a ~50 MB scikit-learn model loaded and unloaded C times while a second client
   keeps calling a small model; RSS at the start and the end, failed requests, and the
   time and server CPU of one cycle past the first.

The models are trained on tiny random data by this script, with the scikit-learn of
MLServer's environment (so that both servers read files written by their own version).

    make bench-repository                          # or, for a shorter run:
    .venv/bin/python benchmarks/repository_bench.py --models 200 --cycles 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

from unitbench import load, procs  # noqa: E402
from unitbench.payloads import Body  # noqa: E402

from tests.client_venvs import client_python  # noqa: E402

MIB = 1024 * 1024
SCRATCH = BENCH_DIR / "results" / "raw" / "scratch" / "repository"
SMALL_REQUEST = {
    "inputs": [
        {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}
    ]
}
SKLEARN_RUNTIME = "mlserver_sklearn.SKLearnModel"

# Trained in MLServer's environment: argv = out folder, number of small models, big rows.
TRAIN = r"""
import sys, joblib, numpy as np
from pathlib import Path
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
out, count, big_rows = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
out.mkdir(parents=True, exist_ok=True)
for i in range(count):
    x = rng.normal(size=(30, 4)); y = (x[:, 0] + x[:, i % 4] > 0).astype(int)
    joblib.dump(LogisticRegression().fit(x, y), out / f"small-{i:04d}.joblib")
if big_rows:
    # brute-force neighbours keep their training data: the file is that data's size
    x = rng.normal(size=(big_rows, 4)); y = (x[:, 0] > 0).astype(np.int8)
    big = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(x, y)
    joblib.dump(big, out / f"big-{big_rows * 40 // 1_000_000}mb.joblib")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_repository(folder: Path, models: dict[str, Path]) -> None:
    """One MLServer model folder per name, its model-settings.json naming the model file."""
    shutil.rmtree(folder, ignore_errors=True)
    for name, model_file in models.items():
        (folder / name).mkdir(parents=True)
        settings = {
            "name": name,
            "implementation": SKLEARN_RUNTIME,
            "parameters": {"uri": str(model_file)},
        }
        (folder / name / "model-settings.json").write_text(json.dumps(settings))


class Server:
    """One repository server on 127.0.0.1, pinned, measured as its process tree."""

    def __init__(
        self, kind: str, models_dir: Path, cpus: str, log: Path, load_at_startup: bool = False
    ) -> None:
        self.kind = kind
        self.http_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSERVER_", "UNITSERVE_"))}
        env.update(
            {
                "MLSERVER_HTTP_PORT": str(self.http_port),
                "MLSERVER_GRPC_PORT": str(free_port()),
                "MLSERVER_METRICS_PORT": str(free_port()),
                "MLSERVER_MODELS_DIR": str(models_dir),
                "MLSERVER_PARALLEL_WORKERS": "1",
                "MLSERVER_LOAD_MODELS_AT_STARTUP": "true" if load_at_startup else "false",
                "MLSERVER_GRPC_MAX_MESSAGE_LENGTH": "1048576000",
                "MLSERVER_DEBUG": "false",
                "MLSERVER_HOST": "127.0.0.1",
            }
        )
        if kind == "mlserver":
            argv = [
                str(client_python("mlserver-runtimes").parent / "mlserver"),
                "start",
                str(models_dir),
            ]
        else:
            argv = [sys.executable, "-m", "unitserve", "start"]
        self.process = procs.ServerProcess(argv, models_dir, env, cpus, log)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=120)

    def wait_live(self, limit: float = 120) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"{self.kind} exited:\n{self.process.log_tail()}")
            try:
                if self.client.get("/v2/health/live").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.kind} not live after {limit:g} s:\n{self.process.log_tail()}")

    def rss(self) -> int:
        return procs.rss_bytes(self.process.pids())

    def pss(self) -> int:
        return procs.pss_bytes(self.process.pids())

    def ready_count(self) -> int | None:
        """How many models the index lists READY (None: not answering yet)."""
        try:
            reply = self.client.post("/v2/repository/index", json={})
        except httpx.HTTPError:
            return None
        if reply.status_code != 200:
            return None
        return sum(entry.get("state") == "READY" for entry in reply.json())

    def cpu(self) -> dict[int, procs.Stat]:
        return procs.cpu_snapshot(self.process.pids())

    def load(self, name: str) -> None:
        reply = self.client.post(f"/v2/repository/models/{name}/load")
        if reply.status_code != 200:
            raise RuntimeError(f"{self.kind}: load {name}: {reply.status_code} {reply.text[:300]}")

    def unload(self, name: str) -> None:
        reply = self.client.post(f"/v2/repository/models/{name}/unload")
        if reply.status_code != 200:
            raise RuntimeError(
                f"{self.kind}: unload {name}: {reply.status_code} {reply.text[:300]}"
            )

    def infer(self, name: str, client: httpx.Client | None = None) -> httpx.Response:
        return (client or self.client).post(f"/v2/models/{name}/infer", json=SMALL_REQUEST)

    def stop(self) -> None:
        self.client.close()
        self.process.stop(grace=20)


@dataclass
class Args:
    servers: list[str]
    parts: list[str]
    models: int
    cycles: int
    big_mb: int
    duration: float
    time_limit: float
    server_cpus: str
    load_cpus: str
    out: Path
    results: dict[str, dict[str, object]] = field(default_factory=dict)


def settle(server: Server) -> int:
    """RSS once the server has been idle a moment (a finished request frees its buffers)."""
    time.sleep(1.0)
    return server.rss()


def bench_rest(args: Args, kind: str, small: list[Path]) -> dict[str, object]:
    folder = SCRATCH / f"rest-{kind}"
    write_repository(folder, {f"m{i:02d}": small[i] for i in range(10)})
    body_file = SCRATCH / "small-request.json"
    body_file.write_text(json.dumps(SMALL_REQUEST))
    server = Server(kind, folder, args.server_cpus, args.out / "logs" / f"rest-{kind}.log")
    try:
        server.wait_live()
        for i in range(10):
            server.load(f"m{i:02d}")
        reply = server.infer("m03")
        if reply.status_code != 200:
            raise RuntimeError(f"{kind}: infer m03: {reply.status_code} {reply.text[:300]}")
        body = Body("small", "rest", "v2", "v2", "/v2/models/m03/infer", body_file)
        load.wrk(server.http_port, body, 8, 2, args.load_cpus, 10)  # warm-up
        before = server.cpu()
        run = load.wrk(server.http_port, body, 8, args.duration, args.load_cpus, 10)
        cpu_s = procs.cpu_seconds_between(before, server.cpu())
        return {
            "rps": round(run.rps, 1),
            "requests": run.requests,
            "errors": run.errors,
            "p50_ms": run.p50_ms,
            "p99_ms": run.p99_ms,
            "server_cpu_s": round(cpu_s, 3),
            "cpu_us_per_request": round(cpu_s / run.requests * 1e6, 1) if run.requests else None,
        }
    finally:
        server.stop()


def bench_many(args: Args, kind: str, small: list[Path]) -> dict[str, object]:
    folder = SCRATCH / f"many-{kind}"
    names = [f"m{i:04d}" for i in range(args.models)]
    write_repository(folder, {name: small[i] for i, name in enumerate(names)})
    server = Server(kind, folder, args.server_cpus, args.out / "logs" / f"many-{kind}.log")
    try:
        server.wait_live()
        rss_before = settle(server)
        started = time.monotonic()
        deadline = started + args.time_limit
        loaded = 0
        rss_first = 0
        first_load_s = 0.0
        for name in names:
            if time.monotonic() > deadline:
                break
            server.load(name)
            loaded += 1
            if loaded == 1:
                # The first model also imports scikit-learn, a fixed cost that the per-model
                # figure of a 1,000-model server hardly sees: measured apart (not timed).
                paused = time.monotonic()
                first_load_s = paused - started
                rss_first = settle(server)
                started += time.monotonic() - paused
        load_s = time.monotonic() - started
        # every model answers: the loads were real
        failed = sum(server.infer(name).status_code != 200 for name in names[:loaded])
        rss_after = settle(server)
        return {
            "models": len(names),
            "models_loaded": loaded,
            "load_all_s": round(load_s, 2),
            "load_ms_per_model": round(load_s / loaded * 1e3, 2) if loaded else None,
            "first_load_s": round(first_load_s, 2),
            "load_ms_per_model_after_first": (
                round((load_s - first_load_s) / (loaded - 1) * 1e3, 2) if loaded > 1 else None
            ),
            "rss_before_mib": round(rss_before / MIB, 1),
            "rss_after_mib": round(rss_after / MIB, 1),
            "rss_after_first_mib": round(rss_first / MIB, 1),
            "rss_per_model_kib": round((rss_after - rss_before) / loaded / 1024, 1)
            if loaded
            else None,
            "rss_per_model_after_first_kib": (
                round((rss_after - rss_first) / (loaded - 1) / 1024, 1) if loaded > 1 else None
            ),
            "failed_infer_after_load": failed,
        }
    finally:
        server.stop()


def bench_startup(args: Args, kind: str, small: list[Path]) -> dict[str, object]:
    logs = args.out / "logs"
    empty = SCRATCH / f"startup-empty-{kind}"
    shutil.rmtree(empty, ignore_errors=True)
    empty.mkdir(parents=True)
    server = Server(kind, empty, args.server_cpus, logs / f"startup-empty-{kind}.log", True)
    try:
        server.wait_live()
        empty_live_s = time.monotonic() - server.process.started
        rss_empty, pss_empty = settle(server), server.pss()
    finally:
        server.stop()
    folder = SCRATCH / f"startup-{kind}"
    names = [f"m{i:04d}" for i in range(args.models)]
    write_repository(folder, {name: small[i] for i, name in enumerate(names)})
    server = Server(kind, folder, args.server_cpus, logs / f"startup-{kind}.log", True)
    try:
        deadline = server.process.started + args.time_limit
        ready = 0
        while time.monotonic() < deadline:
            if not server.process.alive():
                raise RuntimeError(f"{kind} exited:\n{server.process.log_tail()}")
            ready = server.ready_count() or 0
            if ready == len(names):
                break
            time.sleep(1.0)  # the index of N models is not free to build: asked once a second
        all_ready_s = time.monotonic() - server.process.started
        rss_full, pss_full = settle(server), server.pss()
        # every 50th model answers: the loads were real
        checked = names[::50]
        failed = sum(server.infer(name).status_code != 200 for name in checked)
        per_model = (rss_full - rss_empty) / len(names) / 1024
        return {
            "models": len(names),
            "models_ready": ready,
            "empty_start_to_live_s": round(empty_live_s, 2),
            "start_to_all_ready_s": round(all_ready_s, 2),
            "load_all_at_start_s": round(all_ready_s - empty_live_s, 2),
            "rss_empty_mib": round(rss_empty / MIB, 1),
            "rss_all_loaded_mib": round(rss_full / MIB, 1),
            "rss_per_model_kib": round(per_model, 1) if ready == len(names) else None,
            "pss_empty_mib": round(pss_empty / MIB, 1),
            "pss_all_loaded_mib": round(pss_full / MIB, 1),
            "pss_per_model_kib": (
                round((pss_full - pss_empty) / len(names) / 1024, 1)
                if ready == len(names)
                else None
            ),
            "failed_infer_of_checked": f"{failed} of {len(checked)}",
        }
    finally:
        server.stop()


def bench_cycles(args: Args, kind: str, small: list[Path], big: Path) -> dict[str, object]:
    folder = SCRATCH / f"cycles-{kind}"
    write_repository(folder, {"steady": small[0], "big": big})
    server = Server(kind, folder, args.server_cpus, args.out / "logs" / f"cycles-{kind}.log")
    stop = threading.Event()
    calls = {"ok": 0, "failed": 0}
    failures: list[str] = []

    def steady_client() -> None:
        # a bounded loop: it ends with the cycles, or at the time limit
        deadline = time.monotonic() + args.time_limit + 60
        with httpx.Client(base_url=server.client.base_url, timeout=30) as client:
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    reply = server.infer("steady", client)
                    ok = reply.status_code == 200
                    if not ok and len(failures) < 5:
                        failures.append(f"{reply.status_code} {reply.text[:200]}")
                except httpx.HTTPError as error:
                    ok = False
                    if len(failures) < 5:
                        failures.append(repr(error))
                calls["ok" if ok else "failed"] += 1
                time.sleep(0.005)

    try:
        server.wait_live()
        server.load("steady")
        client = threading.Thread(target=steady_client)
        client.start()
        rss_start = settle(server)
        started = time.monotonic()
        done = 0
        rss_after_first = rss_after_ten = 0
        peak = rss_start
        # The time and server CPU of the cycles after the first (which imports the
        # model's library and waits a settle): what one more load and unload costs.
        steady_started = started
        cpu_before = server.cpu()
        steady_ok_before = 0
        try:
            while done < args.cycles and time.monotonic() - started < args.time_limit:
                server.load("big")
                peak = max(peak, server.rss())
                server.unload("big")
                done += 1
                if done == 1:
                    rss_after_first = settle(server)
                    steady_started = time.monotonic()
                    cpu_before = server.cpu()
                    steady_ok_before = calls["ok"]
                elif done == 10:
                    # The first cycles may still start threads or import modules (a step
                    # of memory, paid once): growth per cycle is measured from here.
                    rss_after_ten = server.rss()
        finally:
            stop.set()
            client.join(timeout=60)
        cycles_s = time.monotonic() - started
        later_s = time.monotonic() - steady_started
        later_cpu_s = procs.cpu_seconds_between(cpu_before, server.cpu())
        later = done - 1
        rss_end = settle(server)
        return {
            "cycles": done,
            "cycles_s": round(cycles_s, 1),
            "cycle_ms": round(later_s / later * 1e3, 1) if later > 0 else None,
            "server_cpu_ms_per_cycle": round(later_cpu_s / later * 1e3, 1) if later > 0 else None,
            "steady_requests_per_cycle": (
                round((calls["ok"] - steady_ok_before) / later, 1) if later > 0 else None
            ),
            "big_model_mib": round(big.stat().st_size / MIB, 1),
            "rss_start_mib": round(rss_start / MIB, 1),
            "rss_after_first_cycle_mib": round(rss_after_first / MIB, 1),
            "rss_peak_mib": round(peak / MIB, 1),
            "rss_end_mib": round(rss_end / MIB, 1),
            "rss_end_minus_start_mib": round((rss_end - rss_start) / MIB, 1),
            "rss_after_ten_cycles_mib": round(rss_after_ten / MIB, 1),
            "rss_end_minus_after_ten_mib": (
                round((rss_end - rss_after_ten) / MIB, 1) if rss_after_ten else None
            ),
            "steady_requests_ok": calls["ok"],
            "steady_requests_failed": calls["failed"],
            "first_failures": failures,
        }
    finally:
        stop.set()
        server.stop()


def train(count: int, big_mb: int) -> tuple[list[Path], Path]:
    models = SCRATCH / "models"
    big = models / f"big-{big_mb}mb.joblib"
    have = len(list(models.glob("small-*.joblib"))) if models.exists() else 0
    # 4 float64 features and an 8-byte label a row
    big_rows = big_mb * 1_000_000 // 40 if big_mb and not big.exists() else 0
    if have < count or big_rows:
        python = client_python("mlserver-runtimes")
        subprocess.run(
            [str(python), "-c", TRAIN, str(models), str(count), str(big_rows)], check=True
        )
    return [models / f"small-{i:04d}.joblib" for i in range(count)], big


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def ratio(a: object, b: object) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return round(a / b, 2)
    return None


def args_models(results: dict[str, dict[str, dict[str, object]]]) -> object:
    """The repository's size in the many-model parts (the startup part names it)."""
    for part in ("startup", "many"):
        for result in results.get(part, {}).values():
            if "models" in result:
                return result["models"]
    return "N"


def summarise(results: dict[str, dict[str, dict[str, object]]]) -> list[str]:
    """The lines against the targets: unitserve against MLServer, same run."""
    lines = []
    rest = results.get("rest", {})
    if "unitserve" in rest and "mlserver" in rest:
        u, m = rest["unitserve"], rest["mlserver"]
        per_core = ratio(m["cpu_us_per_request"], u["cpu_us_per_request"])
        lines.append(f"REST small c=8 req/s: {ratio(u['rps'], m['rps'])}x")
        lines.append(f"REST small c=8 per core (server CPU/request): {per_core}x (target >= 4x)")
    many = results.get("many", {})
    if "unitserve" in many and "mlserver" in many:
        u, m = many["unitserve"], many["mlserver"]
        api = f"loads through the API in a {args_models(results)}-model repository"
        for key, what, target in (
            ("rss_per_model_kib", f"{api}, memory per model", ""),
            ("rss_per_model_after_first_kib", f"{api}, memory per model past the first", ""),
        ):
            share = ratio(u[key], m[key])
            lines.append(
                f"{what}: unitserve {u[key]} KiB, MLServer {m[key]} KiB: "
                f"{share} of MLServer's{target}"
            )
        faster = ratio(m["load_ms_per_model"], u["load_ms_per_model"])
        lines.append(
            f"{api}: unitserve {u['models_loaded']} models in {u['load_all_s']} s, MLServer "
            f"{m['models_loaded']} in {m['load_all_s']} s: {faster}x faster per model"
        )
        key = "load_ms_per_model_after_first"
        lines.append(
            f"one load past the first: unitserve {u[key]} ms, MLServer {m[key]} ms: "
            f"{ratio(m[key], u[key])}x faster"
        )
    start = results.get("startup", {})
    if "unitserve" in start and "mlserver" in start:
        u, m = start["unitserve"], start["mlserver"]
        lines.append(
            f"{u['models']} models loaded at start, (RSS - RSS of the empty server) / models: "
            f"unitserve {u['rss_per_model_kib']} KiB, MLServer {m['rss_per_model_kib']} KiB: "
            f"{ratio(u['rss_per_model_kib'], m['rss_per_model_kib'])} of MLServer's "
            "(target <= 0.33)"
        )
        lines.append(
            f"  the same with PSS (shared pages counted once): unitserve "
            f"{u['pss_per_model_kib']} KiB, MLServer {m['pss_per_model_kib']} KiB: "
            f"{ratio(u['pss_per_model_kib'], m['pss_per_model_kib'])} of MLServer's"
        )
        lines.append(
            f"{u['models']} models loaded at start, seconds until all READY less the empty "
            f"server's start: unitserve {u['load_all_at_start_s']} s "
            f"({u['models_ready']} ready), MLServer {m['load_all_at_start_s']} s "
            f"({m['models_ready']} ready): "
            f"{ratio(m['load_all_at_start_s'], u['load_all_at_start_s'])}x faster (target >= 3x)"
        )
    for kind, c in results.get("cycles", {}).items():
        growth = c["rss_end_minus_start_mib"]
        lines.append(
            f"{kind}: {c['cycles']} load/unload cycles of a {c['big_model_mib']} MiB model: "
            f"RSS {c['rss_start_mib']} -> {c['rss_end_mib']} MiB ({growth} MiB, target "
            f"within 20), steady model {c['steady_requests_ok']} ok / "
            f"{c['steady_requests_failed']} failed (target 0)"
        )
        if c.get("rss_end_minus_after_ten_mib") is not None:
            lines.append(
                f"{kind}: RSS from the 10th cycle to the end: {c['rss_after_ten_cycles_mib']} -> "
                f"{c['rss_end_mib']} MiB ({c['rss_end_minus_after_ten_mib']} MiB)"
            )
        if c.get("cycle_ms") is not None:
            lines.append(
                f"{kind}: one cycle past the first: {c['cycle_ms']} ms, server CPU "
                f"{c['server_cpu_ms_per_cycle']} ms (with {c['steady_requests_per_cycle']} "
                "requests to the steady model)"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--servers", default="unitserve,mlserver", help="unitserve, mlserver or both"
    )
    parser.add_argument(
        "--parts",
        default="rest,many,startup,cycles",
        help="which measurements: rest, many, startup, cycles",
    )
    parser.add_argument(
        "--models", type=int, default=1000, help="small models loaded into one worker"
    )
    parser.add_argument(
        "--cycles", type=int, default=1000, help="load/unload cycles of the big model"
    )
    parser.add_argument("--big-mb", type=int, default=50, help="size of the big model's file")
    parser.add_argument(
        "--duration", type=float, default=10, help="seconds of the measured REST run"
    )
    parser.add_argument(
        "--time-limit", type=float, default=900, help="seconds after which a load loop stops early"
    )
    parser.add_argument("--server-cpus", default="0", help="taskset list for the servers")
    parser.add_argument("--load-cpus", default="1", help="taskset list for wrk")
    parser.add_argument("--json", type=Path, help="write the results here (JSON)")
    parser.add_argument(
        "--summarise", type=Path, metavar="JSON", help="print the target lines of a saved run"
    )
    ns = parser.parse_args()
    if ns.summarise:
        print("\n".join(summarise(json.loads(ns.summarise.read_text())["results"])))
        return
    args = Args(
        servers=ns.servers.split(","),
        parts=ns.parts.split(","),
        models=ns.models,
        cycles=ns.cycles,
        big_mb=ns.big_mb,
        duration=ns.duration,
        time_limit=ns.time_limit,
        server_cpus=ns.server_cpus,
        load_cpus=ns.load_cpus,
        out=SCRATCH,
    )
    SCRATCH.mkdir(parents=True, exist_ok=True)
    small, big = train(max(args.models, 10), args.big_mb if "cycles" in args.parts else 0)
    results: dict[str, dict[str, dict[str, object]]] = {}
    started = time.time()
    load_start = load_average()
    for part in args.parts:
        for kind in args.servers:
            print(
                f"{time.strftime('%H:%M:%S')} {part} {kind} (load average {load_average()})",
                flush=True,
            )
            if part == "rest":
                result = bench_rest(args, kind, small)
            elif part == "many":
                result = bench_many(args, kind, small)
            elif part == "startup":
                result = bench_startup(args, kind, small)
            elif part == "cycles":
                result = bench_cycles(args, kind, small, big)
            else:
                raise SystemExit(f"unknown part {part!r}: rest, many, startup or cycles")
            results.setdefault(part, {})[kind] = result
            print(json.dumps(result), flush=True)
    summary = summarise(results)
    report = {
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "args": {k: v for k, v in vars(ns).items() if k != "json"},
        "results": results,
        "summary": summary,
    }
    print("\n".join(summary))
    if ns.json:
        ns.json.parent.mkdir(parents=True, exist_ok=True)
        ns.json.write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
