"""The matrix: for each protocol, payload and server, one server session of measured load runs.

A session starts the server (pinned), times it to the first verified answer, measures its memory
at rest, warms it up, then runs `repeats x concurrencies` load runs (repeat-major: 1, 8, 64, 1,
8, 64, ...), verifies one answer again and stops the server. Servers of the same protocol and
payload run back to back, so the ratios compare numbers taken minutes apart, not an hour apart.
Every run and every session is one JSON line (see README.md for the fields).
"""

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unitbench import checks, load, procs
from unitbench.payloads import Body, is_large
from unitbench.procs import MIB, ServerProcess
from unitbench.servers import Ports, ServerSpec

Emit = Callable[[dict], None]


@dataclass(frozen=True)
class Options:
    protos: tuple[str, ...]
    payloads: tuple[str, ...]
    concs: tuple[int, ...]
    large_concs: tuple[int, ...]
    duration: float
    large_duration: float
    repeats: int
    warmup: float
    server_cpus: str
    load_cpus: str
    port_base: int
    startup_timeout: float
    stop_grace: float
    request_timeout: float
    settle_limit: float
    log_dir: Path


def cpu_names(cpus: str) -> list[str]:
    """taskset list ("0", "0,2", "0-3") -> /proc/stat names ("cpu0", ...)."""
    names = []
    for part in filter(None, cpus.split(",")):
        lo, _, hi = part.partition("-")
        names += [f"cpu{i}" for i in range(int(lo), int(hi or lo) + 1)]
    return names


class RssSampler(threading.Thread):
    """Samples the RSS of the server tree every `interval` s; `peak` since the last reset()."""

    def __init__(self, server: ServerProcess, interval: float = 0.25):
        super().__init__(daemon=True)
        self.server, self.interval = server, interval
        self.peak = 0
        self._stop_event = threading.Event()
        self._pids: list[int] = []
        self._refreshed = 0.0

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            if time.monotonic() - self._refreshed > 1.0:  # re-walk /proc once a second
                self._pids, self._refreshed = self.server.pids(), time.monotonic()
            self.peak = max(self.peak, procs.rss_bytes(self._pids))

    def reset(self) -> int:
        peak, self.peak = self.peak, 0
        return peak

    def stop(self) -> None:
        self._stop_event.set()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def wait_idle(server: ServerProcess, limit: float, window: float = 0.3) -> float:
    """Wait until the tree uses < 5% of a core (it may still answer requests that the previous
    run's connections left queued); returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        pids = server.pids()
        before = procs.cpu_snapshot(pids)
        time.sleep(window)
        if procs.cpu_seconds_between(before, procs.cpu_snapshot(pids)) <= 0.05 * window:
            break
    return round(time.monotonic() - t0, 2)


def wait_ready(
    server: ServerProcess, port: int, req: Body, check: str, timeout: float
) -> tuple[checks.Answer, float]:
    """Poll until one verified answer; (last answer, seconds from start to it)."""
    answer = checks.Answer(False, "port never opened")
    while time.monotonic() - server.started < timeout:
        if not server.alive():
            return checks.Answer(False, f"server exited (rc={server.proc.returncode})"), 0.0
        if port_free(port):
            time.sleep(0.02)
            continue
        left = timeout - (time.monotonic() - server.started)
        answer = checks.verify(port, req, check, timeout=max(1.0, min(30.0, left)))
        if answer.ok:
            return answer, time.monotonic() - server.started
        time.sleep(0.05)
    return answer, 0.0


class Session:
    """One server, one protocol, one payload."""

    def __init__(self, spec: ServerSpec, req: Body, opts: Options, ports: Ports, emit: Emit):
        self.spec, self.req, self.opts, self.ports, self.emit = spec, req, opts, ports, emit
        self.port = ports.grpc if req.proto == "grpc" else ports.http
        large = is_large(req.payload)
        self.concs = opts.large_concs if large else opts.concs
        self.duration = opts.large_duration if large else opts.duration
        self.ident = {
            "server": spec.name,
            "role": spec.role,
            "proto": req.proto,
            "payload": req.payload,
            "form": req.form,
            "body_bytes": req.size,
        }

    def log(self, text: str) -> None:
        print(f"[{self.spec.name} {self.req.proto} {self.req.payload}] {text}", flush=True)

    def load(self, conc: int, seconds: float, reply_frame: int) -> load.LoadResult:
        o = self.opts
        if self.req.proto == "grpc":
            return load.h2load(
                self.port, self.req, conc, seconds, o.load_cpus, o.request_timeout, reply_frame
            )
        return load.wrk(self.port, self.req, conc, seconds, o.load_cpus, o.request_timeout)

    def measure(
        self, server: ServerProcess, sampler: RssSampler, conc: int, rep: int, reply_frame: int
    ) -> dict:
        settle = wait_idle(server, self.opts.settle_limit)
        pids = server.pids()
        before, cores_before = procs.cpu_snapshot(pids), procs.core_ticks()
        sampler.reset()
        result = self.load(conc, self.duration, reply_frame)
        after, cores_after = procs.cpu_snapshot([*pids, *server.pids()]), procs.core_ticks()
        cpu_s = procs.cpu_seconds_between(before, after)
        busy = {k: cores_after[k][0] - cores_before[k][0] for k in cores_after}
        total = {k: cores_after[k][1] - cores_before[k][1] for k in cores_after}
        server_cores = cpu_names(self.opts.server_cpus)
        core_busy = None
        if server_cores:
            span = max(1, sum(total[c] for c in server_cores))
            core_busy = sum(busy[c] for c in server_cores) / span
        other = sum(busy.values()) / procs.HZ - cpu_s - result.load_cpu_s
        return {
            "kind": "run",
            **self.ident,
            "conc": conc,
            "rep": rep,
            **result.as_dict(),
            "server_cpu_s": round(cpu_s, 3),
            "cpu_us_per_req": round(cpu_s / result.requests * 1e6, 1) if result.requests else None,
            "server_core_busy": round(core_busy, 3) if core_busy is not None else None,
            "other_cpu_s": round(max(0.0, other), 2),
            "settle_s": settle,
            "rss_peak_mib": round(sampler.reset() / MIB, 1),
            "nprocs": len(pids),
        }

    def run(self) -> None:
        spec, opts = self.spec, self.opts
        log_file = opts.log_dir / f"{spec.name}-{self.req.proto}-{self.req.payload}.log"
        spec.cwd.mkdir(parents=True, exist_ok=True)
        server = ServerProcess(
            spec.command(self.ports),
            spec.cwd,
            spec.environment(self.ports),
            opts.server_cpus,
            log_file,
        )
        sampler = RssSampler(server)
        session: dict = {"kind": "session", **self.ident, "status": "failed", "log": str(log_file)}
        try:
            # start-up is timed with the small body, so that it does not include a large request
            probe = spec.request("small", self.req.proto) or self.req
            ready, startup = wait_ready(server, self.port, probe, spec.check, opts.startup_timeout)
            if not ready.ok:
                session |= {"verify": ready.detail, "log_tail": server.log_tail(1500)}
                self.log(f"NOT READY: {ready.detail}\n{session['log_tail']}")
                return
            session["startup_s"] = round(startup, 3)
            answer = ready if probe == self.req else checks.verify(self.port, self.req, spec.check)
            session["verify"] = answer.detail
            if not answer.ok:
                self.log(f"session body not served: {answer.detail}")
                return
            reply_frame = answer.reply_bytes + 5
            wait_idle(server, opts.settle_limit)
            pids = server.pids()
            session |= {
                "nprocs": len(pids),
                "rss_rest_mib": round(procs.rss_bytes(pids) / MIB, 1),
                "pss_rest_mib": round(procs.pss_bytes(pids) / MIB, 1),
            }
            self.log(
                f"ready after {startup:.2f}s, {answer.detail}; {len(pids)} processes, "
                f"RSS {session['rss_rest_mib']} MiB"
            )
            sampler.start()
            if opts.warmup > 0:
                self.load(min(8, max(self.concs)), opts.warmup, reply_frame)
            peak = 0.0
            for rep in range(opts.repeats):
                for conc in self.concs:
                    rec = self.measure(server, sampler, conc, rep, reply_frame)
                    peak = max(peak, rec["rss_peak_mib"])
                    self.emit(rec)
                    self.log(
                        f"c={conc} rep={rep}: {rec['rps']:,.1f} req/s, p50 {rec['p50_ms']:.2f}"
                        f" p99 {rec['p99_ms']:.2f} ms, {rec['cpu_us_per_req'] or 0:,.0f} us"
                        f" CPU/req, errors {rec['error_total']}"
                    )
                    if not server.alive():
                        session["log_tail"] = server.log_tail(1500)
                        rc = server.proc.returncode
                        raise RuntimeError(f"server exited during load (rc={rc})")
            after = checks.verify(self.port, self.req, spec.check, timeout=60)
            session |= {
                "rss_peak_mib": peak,
                "verify_after": after.detail,
                "status": "ok" if after.ok else "failed",
            }
            if not after.ok:
                self.log(f"verify after load FAILED: {after.detail}")
        except Exception as exc:  # a broken server or tool must not stop the matrix
            session["error"] = f"{type(exc).__name__}: {exc}"
            self.log(f"ERROR {session['error']}\n{session.get('log_tail', '')}")
        finally:
            sampler.stop()
            stop_s, clean = server.stop(opts.stop_grace)
            session |= {"stop_s": round(stop_s, 2), "stopped_on_sigterm": clean}
            self.emit(session)


def run_matrix(servers: list[ServerSpec], opts: Options, emit: Emit) -> None:
    index = 0
    for proto in opts.protos:
        for payload in opts.payloads:
            for spec in servers:
                if not spec.runs(proto, payload):
                    continue
                req = spec.request(payload, proto)
                if req is None:
                    continue
                if why := spec.missing():
                    emit(
                        {
                            "kind": "session",
                            "server": spec.name,
                            "role": spec.role,
                            "proto": proto,
                            "payload": payload,
                            "status": "skipped",
                            "error": why,
                        }
                    )
                    continue
                ports = next_ports(opts.port_base, index)
                index += 1
                Session(spec, req, opts, ports, emit).run()


def next_ports(base: int, index: int) -> Ports:
    """Fresh ports for every session (a killed server's sockets may linger), skipping busy ones."""
    for step in range(index, index + 200):
        http = base + 3 * (step % 300)
        if all(port_free(p) for p in (http, http + 1, http + 2)):
            return Ports(http, http + 1, http + 2)
    raise RuntimeError(f"no free ports above {base}")


def jsonl_writer(path: Path) -> Emit:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")

    def emit(record: dict) -> None:
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    return emit
