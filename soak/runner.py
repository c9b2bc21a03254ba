"""One soak run: start `unitserve serve` with 2 workers on loopback, load it with REST
and gRPC clients (two `soak.load` processes), sample every server process's memory
from /proc every `sample_every` seconds, stop everything by PID, judge, report.

The run fails on any of:

* a client error (any non-2xx or malformed REST answer, any gRPC failure, any dropped
  or refused connection, any timeout), or a non-2xx/non-OK code in the server's own
  ``unitserve_requests_total``;
* a server process whose resident memory grew, between the end of the warm-up and the
  end of the load, by more than `rss_growth_mib` (see `result.RSS_BOUND_WHY`);
* a worker replaced during the run (a crash), the server not stopping with status 0
  after SIGTERM, or a load generator that did not complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from . import procs, report
from .result import MIB, Sample, SoakResult

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = Path(__file__).resolve().parent / "model"

# Environment variables that configure a Seldon/unitserve server: not inherited, so the
# soak measures the defaults whatever the shell has set.
_SCRUB_PREFIXES = (
    "PREDICTIVE_UNIT_",
    "PREDICTOR_",
    "SELDON_",
    "GUNICORN_",
    "GRPC_",
    "FLASK_",
    "UNITSERVE_",
    "MODEL_",
)


@dataclass(frozen=True)
class SoakConfig:
    seconds: float = 600.0
    warmup: float | None = None  # default: a quarter of the run, at most 60 s
    sample_every: float = 10.0
    rest_connections: int = 32
    grpc_connections: int = 32
    rate: float = 0.0  # requests/s per protocol, in all; 0: as fast as the clients go
    workers: int = 2
    rss_growth_mib: float = 16.0  # per process, end of warm-up → end of load
    model: str = "SoakModel"  # another class may be soaked: it must answer the same
    model_dir: str = str(MODEL_DIR)  # requests (soak/load.py) like SoakModel does

    @property
    def warmup_seconds(self) -> float:
        return self.warmup if self.warmup is not None else min(60.0, self.seconds / 4)


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _metric_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _reader(stream: IO[str], into: queue.Queue[tuple[str, dict[str, Any]]], name: str) -> None:
    for line in stream:
        try:
            into.put((name, json.loads(line)))
        except ValueError:
            continue


class _Run:
    def __init__(self, config: SoakConfig, out_dir: Path) -> None:
        self.config = config
        self.out = out_dir
        self.raw = out_dir / "raw"
        self.raw.mkdir(parents=True, exist_ok=True)
        self.result = SoakResult(config=asdict(config))
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.server: subprocess.Popen[bytes] | None = None
        self.loads: dict[str, subprocess.Popen[str]] = {}
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.seen: set[int] = set()  # every pid ever seen in the server tree
        self.roles: dict[int, str] = {}

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> SoakResult:
        started = time.monotonic()
        self.result.started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        self.result.host = {
            "cpus": os.cpu_count(),
            "loadavg_at_start": list(os.getloadavg()),
            "python": sys.version.split()[0],
        }
        try:
            self._start_server()
            self._load_and_sample()
            self._server_counts()
        except _Abort as exc:
            self.result.failures.append(str(exc))
        finally:
            self._stop_everything()
            self.result.wall_seconds = round(time.monotonic() - started, 1)
        self._judge()
        return self.result

    def _start_server(self) -> None:
        command = [
            sys.executable,
            "-m",
            "unitserve",
            "serve",
            self.config.model,
            "--workers",
            str(self.config.workers),
            "--host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--grpc-port",
            str(self.grpc_port),
            "--metrics-port",
            str(self.metrics_port),
        ]
        log = open(self.raw / "server.log", "wb")  # noqa: SIM115 (closed by the child's exit)
        self.server = subprocess.Popen(
            command,
            cwd=self.config.model_dir,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise _Abort(f"the server exited with {self.server.returncode} at start")
            if _get(f"http://127.0.0.1:{self.http_port}/ready", 2)[0] == 200 and (
                len(self._worker_pids()) == self.config.workers
            ):
                self._sample(0.0)  # memory before any load
                return
            time.sleep(0.2)
        raise _Abort("the server was not ready within 90 s")

    def _worker_pids(self) -> dict[int, str]:
        status, text = _get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        if status != 200:
            return {}
        return {
            int(labels["pid"]): f"worker {labels['worker_id']}"
            for name, labels, _ in _metric_samples(text)
            if name == "unitserve_worker_info"
        }

    def _start_load(self, protocol: str, target: str, connections: int) -> None:
        if connections <= 0:
            return
        command = [
            sys.executable,
            "-m",
            "soak.load",
            protocol,
            "--target",
            target,
            "--connections",
            str(connections),
            "--seconds",
            str(self.config.seconds),
            "--every",
            str(self.config.sample_every),
        ]
        if self.config.rate:
            command += ["--rate", str(self.config.rate)]
        stderr = open(self.raw / f"load-{protocol}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        stderr.close()
        assert proc.stdout is not None
        threading.Thread(
            target=_reader, args=(proc.stdout, self.events, protocol), daemon=True
        ).start()
        self.loads[protocol] = proc
        self.result.ticks[protocol] = []

    def _load_and_sample(self) -> None:
        cfg = self.config
        self._start_load("rest", f"127.0.0.1:{self.http_port}", cfg.rest_connections)
        self._start_load("grpc", f"127.0.0.1:{self.grpc_port}", cfg.grpc_connections)
        t0 = time.monotonic()
        next_sample = t0 + cfg.sample_every
        # Bounded: the load generators stop themselves after `seconds` (plus their own
        # bounded drain); anything still running at the hard deadline is killed.
        hard_deadline = t0 + cfg.seconds + 120
        while time.monotonic() < hard_deadline:
            self._drain_events()
            if all(p.poll() is not None for p in self.loads.values()):
                break
            now = time.monotonic()
            if now >= next_sample:
                self._sample(now - t0)
                next_sample += cfg.sample_every
            time.sleep(min(0.2, max(0.0, next_sample - time.monotonic())))
        else:
            raise _Abort(f"the load generators did not finish within {cfg.seconds + 120:g} s")
        self._sample(time.monotonic() - t0)  # the end of the load
        for protocol, proc in self.loads.items():
            if proc.returncode != 0:
                raise _Abort(f"the {protocol} load generator exited with {proc.returncode}")
        # Their last lines may still be in the pipes.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and set(self.result.requests) != set(self.loads):
            self._drain_events()
            time.sleep(0.05)

    def _drain_events(self) -> None:
        while True:
            try:
                protocol, event = self.events.get_nowait()
            except queue.Empty:
                return
            if event.get("event") == "tick":
                self.result.ticks[protocol].append((event["t"], event["ok"], event["errors"]))
            elif event.get("event") == "done":
                self.result.requests[protocol] = event
                ticks = self.result.ticks[protocol]
                if not ticks or ticks[-1][0] < self.config.seconds:  # close the curve
                    ticks.append((self.config.seconds, event["ok"], event["errors"]))

    def _sample(self, t: float) -> None:
        assert self.server is not None
        supervisor = self.server.pid
        # A scrape per sample, as Prometheus would: it names the workers, and it keeps
        # the supervisor's exposition path under the soak too.
        status, text = _get(f"http://127.0.0.1:{self.metrics_port}/metrics")
        if status != 200:
            self.result.failures.append(f"the metrics endpoint answered {status} at {t:.0f} s")
        else:
            self.roles.update(
                {
                    int(labels["pid"]): f"worker {labels['worker_id']}"
                    for name, labels, _ in _metric_samples(text)
                    if name == "unitserve_worker_info"
                }
            )
        self.roles[supervisor] = "supervisor"
        found: dict[str, dict[str, int]] = {}
        for pid in procs.tree(supervisor):
            s = procs.sample(pid)
            if s is None:
                continue
            self.seen.add(pid)
            role = self.roles.get(pid, f"process {pid}")
            found[role] = {"pid": pid, "rss_kib": s.rss_kib, "threads": s.threads, "fds": s.fds}
        self.result.samples.append(Sample(round(t, 2), found))

    def _server_counts(self) -> None:
        """The server's own tally of answers by code, once it has counted every
        request the clients saw (request metrics are flushed a few times a second)."""
        sent = sum(r.get("ok", 0) + r.get("errors", 0) for r in self.result.requests.values())
        counts: dict[str, float] = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            status, text = _get(f"http://127.0.0.1:{self.metrics_port}/metrics")
            if status == 200:
                counts = {}
                for name, labels, value in _metric_samples(text):
                    if name == "unitserve_requests_total":
                        key = f"{labels['protocol']} {labels['code']}"
                        counts[key] = counts.get(key, 0) + value
                if sum(counts.values()) >= sent:
                    break
            time.sleep(0.2)
        self.result.server_counts = counts

    def _stop_everything(self) -> None:
        """Every process we started, by PID: load generators first, then SIGTERM to the
        server (its graceful stop is part of what is judged), SIGKILL if it lingers."""
        for proc in self.loads.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        if self.server is None:
            return
        if self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            try:
                self.result.exit_code = self.server.wait(60)
            except subprocess.TimeoutExpired:
                for pid in procs.tree(self.server.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.server.wait(10)
                self.result.exit_code = None
        else:
            self.result.exit_code = self.server.returncode
        # Workers die with their supervisor (PR_SET_PDEATHSIG); make sure of it. Only
        # processes still in the server's session: a pid may have been reused meanwhile.
        for pid in self.seen - {self.server.pid}:
            if procs.session_of(pid) == self.server.pid and procs.sample(pid) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self.result.failures.append(f"process {pid} outlived the server")

    # ------------------------------------------------------------------ verdict

    def _judge(self) -> None:
        r, cfg = self.result, self.config
        for protocol in self.loads:
            done = r.requests.get(protocol)
            if done is None:
                r.failures.append(f"no totals from the {protocol} load generator")
                continue
            if done["errors"]:
                r.failures.append(
                    f"{done['errors']} {protocol} errors, e.g. {done['error_samples'][:3]}"
                )
            if not done["ok"]:
                r.failures.append(f"no successful {protocol} request")
        bad = {k: v for k, v in r.server_counts.items() if k.split()[1] not in ("200", "OK")}
        if bad:
            r.failures.append(f"the server counted non-2xx answers: {bad}")
        if r.exit_code != 0:
            r.failures.append(f"the server's exit status after SIGTERM was {r.exit_code}")
        workers = {
            p["pid"] for s in r.samples for role, p in s.processes.items() if role != "supervisor"
        }
        if len(workers) != cfg.workers:
            r.failures.append(f"worker processes changed during the run: pids {sorted(workers)}")
        r.rss = rss_figures(r.samples, cfg.warmup_seconds)
        for role, fig in r.rss.items():
            if fig["growth_mib"] is not None and fig["growth_mib"] > cfg.rss_growth_mib:
                r.failures.append(
                    f"{role} grew {fig['growth_mib']:.1f} MiB after the warm-up "
                    f"(bound {cfg.rss_growth_mib:g} MiB)"
                )
        r.passed = not r.failures


def rss_figures(samples: list[Sample], warmup: float) -> dict[str, dict[str, Any]]:
    """Per process: RSS at the start, at the end of the warm-up, at the end and at its
    peak (MiB), and the growth that is judged (end minus end of warm-up)."""
    out: dict[str, dict[str, Any]] = {}
    roles = sorted({role for s in samples for role in s.processes})
    for role in roles:
        series = [(s.t, s.processes[role]) for s in samples if role in s.processes]
        after = [p for t, p in series if t >= warmup]
        first, last = series[0][1], series[-1][1]
        base = after[0] if after else None
        out[role] = {
            "pid": last["pid"],
            "start_mib": round(first["rss_kib"] / MIB, 1),
            "after_warmup_mib": round(base["rss_kib"] / MIB, 1) if base else None,
            "end_mib": round(last["rss_kib"] / MIB, 1),
            "peak_mib": round(max(p["rss_kib"] for _, p in series) / MIB, 1),
            "growth_mib": round((last["rss_kib"] - base["rss_kib"]) / MIB, 1) if base else None,
            "fds_start": first["fds"],
            "fds_end": last["fds"],
            "threads_end": last["threads"],
        }
    return out


class _Abort(Exception):
    """The run cannot go on: recorded as a failure."""


def run(config: SoakConfig, out_dir: Path) -> SoakResult:
    """Run one soak, write its report (and plot) into `out_dir`, return the result."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result = _Run(config, out_dir).run()
    report.write(result, out_dir)
    return result
