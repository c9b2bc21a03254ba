"""The parent process.

It builds the user object once (so that a start-up mistake is one clear line
before anything listens), binds the REST and metrics ports, reserves the gRPC
port, forks ``--workers`` workers that share the REST socket (and bind gRPC with
SO_REUSEPORT), and then only supervises: it replaces a worker that dies, serves
the Prometheus endpoint from every worker's metric files, recycles workers on
SIGHUP or when they reach ``--max-requests``, and on SIGTERM/SIGINT lets every
worker finish its in-flight requests before exiting 0. It also relays control
operations (a model load, an unload) from the worker that took one to every
worker (``runtime/control_hub.py``).

The supervisor is single-threaded and runs no event loop, so forking a worker
at any time is safe.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import math
import os
import random
import selectors
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from unitserve import component, tracing
from unitserve.errors import StartupError
from unitserve.metrics import supervisor as merged_metrics
from unitserve.metrics import worker as worker_metrics
from unitserve.metrics.endpoint import MetricsHttpServer
from unitserve.runtime.control_hub import ControlHub
from unitserve.runtime.sockets import bind, reserve_reuseport
from unitserve.runtime.worker import EXIT_LOAD_FAILED, Worker, call_load
from unitserve.settings import Settings

log = logging.getLogger("unitserve")

_TERMINATE = (signal.SIGTERM, signal.SIGINT)
_BACKOFF_MAX = 30.0


@dataclass
class _Child:
    slot: int
    started: float
    ready: bool = False
    retiring: bool = False  # replaced already: do not restart when it exits
    replaces: int | None = None  # the pid to stop once this worker is ready


@dataclass
class _Slot:
    failures: int = 0  # consecutive deaths before becoming ready
    restart_at: float | None = None
    reason: str = "start"
    # A replacement that died before it was ready hands the worker it was to retire on
    # to the next start of the slot: without this, that worker would keep serving
    # beside the new one for good, skipped by SIGHUP and --max-requests alike.
    replaces: int | None = None


@dataclass
class Supervisor:
    settings: Settings
    user: Any = None
    children: dict[int, _Child] = field(default_factory=dict)
    # Whether the user's metrics name their model in model_name (one per model of a
    # repository), so that the scrape leaves them out once no worker holds the model.
    user_metrics_by_model: ClassVar[bool] = False

    def run(self) -> int:
        settings = self.settings
        self.supervisor_pid = os.getpid()  # what a worker's parent must be, even when it is pid 1
        if settings.persistence:
            log.warning("Persistence: ignored, persistence is deprecated")
        if settings.tracing:
            problem = tracing.check()
            if problem is not None:
                raise StartupError(problem)
        self.metrics_dir = tempfile.mkdtemp(prefix="unitserve-metrics-")
        worker_metrics.use_directory(self.metrics_dir)
        log.debug("metrics directory %s", self.metrics_dir)
        sockets: list[socket.socket] = []
        try:
            self.user = self._load_user()
            served = self._served()
            if served is not None:
                log.info("serving %s with %d worker(s)", served, settings.workers)
            self.http_socket = bind(settings.host, settings.http_port, "REST", "--http-port")
            sockets.append(self.http_socket)
            if settings.grpc_enabled:
                self.grpc_reservation = reserve_reuseport(
                    settings.host, settings.grpc_port, "gRPC", "--grpc-port"
                )
                sockets.append(self.grpc_reservation)
            metrics_socket = bind(settings.host, settings.metrics_port, "metrics", "--metrics-port")
            sockets.append(metrics_socket)
            if settings.preload:
                log.info("--preload: running load() once before forking the workers")
                try:
                    call_load(self.user)
                except Exception:
                    log.exception("load() of %s failed; not serving", type(self.user).__name__)
                    return 1
            if settings.pidfile:
                with open(settings.pidfile, "w") as f:
                    f.write(f"{os.getpid()}\n")
            return self._supervise(metrics_socket)
        finally:
            for sock in sockets:
                sock.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
            if settings.pidfile:
                with contextlib.suppress(OSError):
                    os.remove(settings.pidfile)

    # ------------------------------------------------------------------ main loop

    def _supervise(self, metrics_socket: socket.socket) -> int:
        settings = self.settings
        self.own_metrics = merged_metrics.SupervisorMetrics()
        self.selector = selectors.DefaultSelector()
        self.control = ControlHub(self.selector)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.notes_r, self.notes_w = os.pipe()  # workers write "ready"/"recycle" notes here
        os.set_blocking(self.notes_r, False)
        self.metrics_server = MetricsHttpServer(
            metrics_socket,
            self.metrics_dir,
            settings.metrics_endpoint,
            self.selector,
            self.user_metrics_by_model,
        )

        self.selector.register(self.wake_r, selectors.EVENT_READ, "signal")
        self.selector.register(self.notes_r, selectors.EVENT_READ, "notes")
        self.signals: list[int] = []
        for sig in (*_TERMINATE, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self.wake_w)
        self.slots = {slot: _Slot() for slot in range(settings.workers)}
        self.ever_ready = False
        self.stopping_at: float | None = None
        self.exit_code = 0
        self._start_custom_service()
        for slot in self.slots:
            self._spawn(slot)
        buffer = b""
        try:
            while self.children or self.stopping_at is None:
                for key, _ in self.selector.select(timeout=0.5):
                    if callable(key.data):  # a metrics-port socket
                        key.data(key.fileobj)
                    elif key.data == "notes":
                        buffer = self._read_notes(buffer)
                    else:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.wake_r, 4096)
                self.metrics_server.expire(time.monotonic())
                self.control.expire(time.monotonic())
                self._handle_signals()
                self._reap()
                self._restart_due()
                self._enforce_deadline()
        finally:
            signal.set_wakeup_fd(-1)
            self._stop_custom_service()
            self.control.close()
            self.metrics_server.close()
            self.selector.close()
            for fd in (self.wake_r, self.wake_w, self.notes_r, self.notes_w):
                os.close(fd)
        log.info("unitserve stopped")
        return self.exit_code

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _handle_signals(self) -> None:
        while self.signals:
            sig = self.signals.pop(0)
            if sig in _TERMINATE:
                self._begin_stop(signal.Signals(sig).name)
            elif sig == signal.SIGHUP and self.stopping_at is None:
                log.info("SIGHUP: replacing every worker")
                for pid, child in list(self.children.items()):
                    if not child.retiring:
                        self._replace(pid, "reload")

    def _begin_stop(self, why: str) -> None:
        if self.stopping_at is not None:
            log.warning("%s again: stopping the workers now", why)
            self._signal_all(signal.SIGKILL)
            return
        grace = self.settings.graceful_timeout
        if grace:
            log.info("%s: stopping; in-flight requests have %g s to finish", why, grace)
            self.stopping_at = time.monotonic() + grace + 5.0
        else:  # --graceful-timeout 0: no limit, the workers are never killed for being slow
            log.info("%s: stopping; in-flight requests may take as long as they need", why)
            self.stopping_at = math.inf
        self._signal_all(signal.SIGTERM)
        # New connections are refused from now on instead of queueing on a socket no
        # worker will accept from again.
        self.http_socket.close()

    def _enforce_deadline(self) -> None:
        if self.stopping_at is not None and self.children and time.monotonic() > self.stopping_at:
            log.error(
                "workers %s did not stop in time: killing them", ", ".join(map(str, self.children))
            )
            self._signal_all(signal.SIGKILL)
            self.stopping_at = time.monotonic() + 5.0

    def _signal_all(self, sig: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # ------------------------------------------------------------------ workers

    def _spawn(self, slot: int, replaces: int | None = None) -> int:
        state = self.slots[slot]
        state.restart_at = None
        ours, theirs = socket.socketpair()  # the worker's control channel
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                ours.close()
                self._become_worker(slot)
                worker = self._new_worker(slot)
                worker.control_socket = theirs
                code = worker.run()
            except BaseException:
                logging.getLogger("unitserve").exception("worker %d crashed", slot)
            finally:
                os._exit(code)
        theirs.close()
        self.control.attach(pid, ours, f"worker {slot} (pid {pid})")
        self.children[pid] = _Child(slot, time.monotonic(), replaces=replaces)
        log.info("worker %d started (pid %d)", slot, pid)
        return pid

    def _served(self) -> str | None:
        """What the start-up line says is served (None: the command said it already)."""
        return f"{self.settings.interface_name} ({self.settings.service_type})"

    def _load_user(self) -> Any:
        """What every worker serves, built once before forking (a graph: its plan)."""
        return component.load_component(self.settings.interface_name, self.settings.parameters)

    def _new_worker(self, slot: int) -> Worker:
        return Worker(
            self.settings,
            self.user,
            self.http_socket,
            slot=slot,
            notes_fd=self.notes_w,
            loaded=self.settings.preload,
            metrics_dir=self.metrics_dir,
        )

    def _become_worker(self, slot: int) -> None:
        """In the forked child: drop the supervisor's signal set-up and descriptors."""
        signal.set_wakeup_fd(-1)
        for sig in (*_TERMINATE, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        self.selector.close()
        self.control.close_in_child()
        self.metrics_server.close_in_child()
        if getattr(self, "grpc_reservation", None) is not None:
            self.grpc_reservation.close()
        for fd in (self.wake_r, self.wake_w, self.notes_r):
            os.close(fd)
        _die_with_parent(self.supervisor_pid)
        worker_metrics.use_directory(self.metrics_dir)

    def _replace(self, pid: int, reason: str) -> None:
        """Start a new worker for `pid`'s slot; `pid` keeps serving until the new one is
        ready, then drains and exits (no gap in capacity)."""
        child = self.children.get(pid)
        if child is None or child.retiring:
            return
        child.retiring = True
        self.own_metrics.worker_restarted(reason)
        self._spawn(child.slot, replaces=pid)

    def _read_notes(self, buffer: bytes) -> bytes:
        with contextlib.suppress(BlockingIOError):
            buffer += os.read(self.notes_r, 65536)
        *lines, rest = buffer.split(b"\n")
        for line in lines:
            words = line.decode(errors="replace").split()
            if len(words) != 2 or not words[1].isdigit():
                continue
            note, pid = words[0], int(words[1])
            child = self.children.get(pid)
            if child is None:
                continue
            if note == "ready":
                child.ready = True
                self.ever_ready = True
                self.slots[child.slot].failures = 0
                if child.replaces is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child.replaces, signal.SIGTERM)
            elif note == "recycle" and self.stopping_at is None:
                log.info("worker %d (pid %d) reached --max-requests: replacing it", child.slot, pid)
                self._replace(pid, "max-requests")
        return rest

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.control.detach(pid)
            child = self.children.pop(pid, None)
            if child is None:
                continue
            merged_metrics.retire_worker(self.metrics_dir, pid)
            self._worker_exited(pid, child, status)

    def _worker_exited(self, pid: int, child: _Child, status: int) -> None:
        how = _describe_exit(status)
        self._forget_replaced(pid)
        if self.stopping_at is not None or child.retiring:
            log.info("worker %d (pid %d) stopped: %s", child.slot, pid, how)
            return
        state = self.slots[child.slot]
        if not child.ready and child.replaces is not None:
            state.replaces = child.replaces
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_LOAD_FAILED:
            if not self.ever_ready:
                log.error("worker %d could not load the model (see above): stopping", child.slot)
                self.exit_code = 1
                self._begin_stop("load() failed")
                return
            reason = "load-failed"
        else:
            reason = "crash"
        if not child.ready:
            state.failures += 1
        delay = 0.0 if not state.failures else min(_BACKOFF_MAX, 0.5 * 2 ** (state.failures - 1))
        delay *= 1 + random.random() * 0.1
        log.error(
            "worker %d (pid %d) died: %s; replacing it%s",
            child.slot,
            pid,
            how,
            f" in {delay:.1f} s" if delay else "",
        )
        self.own_metrics.worker_restarted(reason)
        state.restart_at = time.monotonic() + delay

    def _restart_due(self) -> None:
        if self.stopping_at is not None:
            return
        now = time.monotonic()
        for slot, state in self.slots.items():
            if state.restart_at is not None and now >= state.restart_at:
                replaces, state.replaces = state.replaces, None
                self._spawn(slot, replaces=replaces)

    def _forget_replaced(self, pid: int) -> None:
        """`pid` has exited: no worker may SIGTERM it any more (the pid could be reused)."""
        for state in self.slots.values():
            if state.replaces == pid:
                state.replaces = None
        for child in self.children.values():
            if child.replaces == pid:
                child.replaces = None

    # ------------------------------------------------------------------ custom_service

    def _start_custom_service(self) -> None:
        """Seldon runs a user's ``custom_service()`` in a process of its own."""
        self.custom_pid: int | None = None
        target = getattr(self.user, "custom_service", None)
        if not callable(target):
            return
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                self._become_worker(-1)
                target()
            except BaseException:
                logging.getLogger("unitserve").exception("custom_service() failed")
                code = 1
            finally:
                os._exit(code)
        self.custom_pid = pid
        log.info("custom_service() started (pid %d)", pid)

    def _stop_custom_service(self) -> None:
        if self.custom_pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.custom_pid, signal.SIGTERM)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.custom_pid, 0)


def _describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _die_with_parent(supervisor_pid: int) -> None:
    """Linux: SIGTERM this worker if the supervisor dies (e.g. SIGKILL), so that no
    orphan keeps serving. If it died before the death signal was armed, this worker has
    a new parent already. The comparison is with the supervisor's own pid, not with 1:
    in a container the supervisor is pid 1."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def run(settings: Settings) -> int:
    """Start serving `settings.interface_name`; returns the exit status."""
    try:
        return Supervisor(settings).run()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(str(exc)) from None
        raise
