"""Test helpers: start the real `unitserve serve` on free 127.0.0.1 ports and talk to it.

`serve(model, *flags, env=...)` returns a running server (one per distinct set
of arguments per test session, stopped at the end by its PID); `fresh_server`
gives one a test owns alone. Servers run from tests/fixtures unless `cwd` says
otherwise, with the Seldon environment variables of this process removed.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType
from typing import Any, Literal, Self, TypeVar

import httpx
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
T = TypeVar("T")
_SCRUB_PREFIXES = (
    "PREDICTIVE_UNIT_",
    "PREDICTOR_",
    "SELDON_",
    "GUNICORN_",
    "GRPC_",
    "FLASK_",
    "UNITSERVE_",
    "MODEL_",
    "JAEGER_",
)
_SCRUB_NAMES = {
    "TRACING",
    "PAYLOAD_PASSTHROUGH",
    "INCLUDE_METRICS_IN_CLIENT_RESPONSE",
    "SERVICE_TYPE",
    "PERSISTENCE",
}


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
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


def wait_until(
    predicate: Callable[[], T | Literal[False] | None], timeout: float = 30.0, every: float = 0.05
) -> T:
    """The first truthy value of `predicate()`, polled for at most `timeout` seconds.
    (Its type leaves out the None and False a predicate answers while it waits.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM a process the tests started, and SIGKILL it if it lingers past `timeout`.

    A process started in a session of its own (``start_new_session=True``) leads a
    process group: the group gets the signals too, and is waited for, because some
    servers' children outlive their parent (seldon-core-microservice's master exits on
    SIGTERM and leaves its workers running)."""
    deadline = time.monotonic() + timeout
    _signal_tree(proc, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_tree(proc, signal.SIGKILL)
        proc.wait(10)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_alive(proc.pid):
        _signal_tree(proc, signal.SIGKILL)


def _signal_tree(proc: subprocess.Popen[bytes], sig: int) -> None:
    """`sig` to the group `proc` leads (no such group: `proc` was started in ours, or
    the group is gone), else to `proc` alone while it runs."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        if proc.poll() is None:
            proc.send_signal(sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(_SCRUB_PREFIXES) or k in _SCRUB_NAMES)
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class Server:
    """One `unitserve serve` process on loopback."""

    def __init__(
        self,
        model: str,
        *flags: str,
        env: dict[str, str] | None = None,
        cwd: Path | str = FIXTURES,
        grpc: bool = True,
    ) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.model = model
        self.cwd = Path(cwd)
        # The log file lives as long as the server; closed by the OS at exit.
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix=f"unitserve-{model}-", suffix=".log", delete=False
        )
        self.command = [
            sys.executable,
            "-m",
            "unitserve",
            "serve",
            model,
            "--host",
            "127.0.0.1",
            "--http-port",
            str(self.http_port),
            "--grpc-port",
            str(self.grpc_port),
            "--metrics-port",
            str(self.metrics_port),
            *flags,
        ]
        if not grpc:
            self.command += ["--grpc-workers", "0"]
        self.env = clean_env(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, wait: str | None = "/ready", timeout: float = 60) -> Self:
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if wait:
            self.wait_for(wait, timeout)
        return self

    def wait_for(self, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if self.client.get(path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not answering {path} after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return Path(self.log_file.name).read_text(errors="replace")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM the server (its PID), then SIGKILL its process group if it lingers."""
        self.client.close()
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            return None

    # conveniences
    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.post(path, **kw)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)


@pytest.fixture(scope="session")
def serve() -> Iterator[object]:
    """serve(model, *flags, env=None, cwd=FIXTURES) → a shared, started Server."""
    servers: dict[tuple, Server] = {}

    def get(
        model: str, *flags: str, env: dict[str, str] | None = None, cwd: Path | str = FIXTURES
    ) -> Server:
        key = (model, flags, tuple(sorted((env or {}).items())), str(cwd))
        if key not in servers:
            servers[key] = Server(model, *flags, env=env, cwd=cwd).start()
        return servers[key]

    yield get
    for server in servers.values():
        server.stop()


@pytest.fixture
def fresh_server() -> Iterator[object]:
    """fresh_server(model, *flags, env=..., wait=...) → a Server owned by this test."""
    started: list[Server] = []

    def make(
        model: str,
        *flags: str,
        env: dict[str, str] | None = None,
        cwd: Path | str = FIXTURES,
        wait: str | None = "/ready",
        timeout: float = 60,
        grpc: bool = True,
    ) -> Server:
        server = Server(model, *flags, env=env, cwd=cwd, grpc=grpc)
        started.append(server)
        return server.start(wait=wait, timeout=timeout)

    yield make
    for server in started:
        server.stop()


def run_cli(
    *args: str, cwd: Path | str = FIXTURES, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unitserve", *args],
        cwd=cwd,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ----------------------------------------------------------------------------- markers

TESTS = Path(__file__).parent
# Every test in these folders talks to a server process (or starts other processes).
_E2E_FOLDERS = ("e2e", "reliability", "fuzz")
_SERVER_FIXTURES = {"serve", "fresh_server", "target"}
# Names whose use in a test (or in a helper of its module) starts a process.
_PROCESS_NAMES = {"run_cli", "subprocess", "Server", "Popen"}
# Modules whose tests take more than a few seconds each: traffic for seconds at a time,
# process kills and restarts, property-based fuzzing against a server, image builds.
_SLOW_MODULES = {
    "reliability/test_soak.py",
    "reliability/test_kill.py",
    "reliability/test_hang.py",
    "reliability/test_sigterm.py",
    "reliability/test_load_faults.py",
    "fuzz/test_fuzz_rest.py",
    "fuzz/test_fuzz_grpc.py",
    "e2e/test_prometheus_server.py",
    "e2e/test_dashboard_queries.py",
    "e2e/test_s2i_start.py",
    "e2e/test_image.py",
    "e2e/test_image_docs.py",
}


def _names(code: CodeType) -> set[str]:
    """Global and attribute names a function's code uses, nested functions included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _names(const)
    return names


def _starts_processes(fn: Any, depth: int = 2) -> bool:
    """True if `fn`, or a function of its own module it calls, uses `_PROCESS_NAMES`."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return False
    names = _names(code)
    if names & _PROCESS_NAMES:
        return True
    if depth == 0:
        return False
    module_globals = getattr(fn, "__globals__", {})
    return any(
        _starts_processes(helper, depth - 1)
        for helper in (module_globals.get(name) for name in names)
        if inspect.isfunction(helper) and helper.__module__ == fn.__module__
    )


# Tests that put the machine under load, or whose checks depend on the machine not
# being busy (deadlines, probes answered during a slow call, a soak): `make test` runs
# them on their own, after the rest has run in parallel.
_SERIAL_FOLDERS = {"reliability"}
_SERIAL_MODULES = {
    "e2e/test_process.py",
    "e2e/test_batching.py",
    "e2e/test_batch_memory.py",
    "e2e/test_dashboard_queries.py",
    "e2e/test_prometheus_server.py",
    "e2e/test_http_limits.py",
    # image builds take both cores for a minute at a time
    "e2e/test_image.py",
    "e2e/test_image_docs.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `e2e` every test that needs a process besides pytest (a server, the CLI), and
    `slow` those of the slow modules, so that nobody has to remember to."""
    for item in items:
        path = Path(str(item.path))
        where = path.relative_to(TESTS).as_posix() if path.is_relative_to(TESTS) else path.name
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            where.split("/")[0] in _E2E_FOLDERS
            or fixtures & _SERVER_FIXTURES
            or _starts_processes(getattr(item, "function", None))
        ):
            item.add_marker(pytest.mark.e2e)
        if where in _SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
        if where.split("/")[0] in _SERIAL_FOLDERS or where in _SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
