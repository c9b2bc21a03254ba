"""Model repository servers for the tests, started the way Seldon Core 2 starts them:
the models folder and the ports in MLServer's environment variables (the values of
Core 2's MLServer ServerConfig, with free loopback ports), models not loaded at start.

`RepositoryServer.mlserver(folder)` runs MLServer 1.7 from its own virtual environment
(tests/client_venvs.py); `RepositoryServer.unitserve(folder)` runs `unitserve start`.
`START_EXISTS` says whether this unitserve has that command: the tests that need it are
expected to fail, strictly, until it does.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from unitserve.cli.main import build_parser

from ..client_venvs import client_python
from ..conftest import clean_env, free_ports, stop_process, wait_until


def _start_exists() -> bool:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return "start" in commands.choices


START_EXISTS = _start_exists()
NOT_BUILT = "unitserve start is not built yet"


def core2_environment(
    models_dir: Path, http_port: int, grpc_port: int, metrics_port: int
) -> dict[str, str]:
    """The server container's variables in Core 2's MLServer ServerConfig, on our ports."""
    return {
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_PORT": str(metrics_port),
        "MLSERVER_MODELS_DIR": str(models_dir),
        "MLSERVER_PARALLEL_WORKERS": "1",
        "MLSERVER_LOAD_MODELS_AT_STARTUP": "false",
        "MLSERVER_GRPC_MAX_MESSAGE_LENGTH": "1048576000",
        "MLSERVER_DEBUG": "false",
        "MLSERVER_HOST": "127.0.0.1",
    }


class RepositoryServer:
    """One repository server process on loopback, stopped by its PID."""

    def __init__(self, kind: str, command: list[str], models_dir: Path, env: dict[str, str]):
        self.kind = kind
        self.models_dir = models_dir
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        # Core 2's variables, then the test's own (MLSERVER_PARALLEL_WORKERS=2, say).
        self.env = clean_env(
            {
                **core2_environment(models_dir, self.http_port, self.grpc_port, self.metrics_port),
                **env,
            }
        )
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the server)
            prefix=f"{kind}-repository-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            command,
            cwd=models_dir,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @classmethod
    def mlserver(
        cls, models_dir: Path, env: dict[str, str] | None = None, venv: str = "mlserver"
    ) -> RepositoryServer:
        mlserver = client_python(venv).parent / "mlserver"
        return cls("mlserver", [str(mlserver), "start", str(models_dir)], models_dir, env or {})

    @classmethod
    def unitserve(cls, models_dir: Path, env: dict[str, str] | None = None) -> RepositoryServer:
        # As MLServer's image runs it: the folder from MLSERVER_MODELS_DIR.
        return cls("unitserve", [sys.executable, "-m", "unitserve", "start"], models_dir, env or {})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def live(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"{self.kind} exited while starting:\n{self.log_text()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/v2/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_live(self, timeout: float = 120) -> RepositoryServer:
        wait_until(self.live, timeout=timeout, every=0.2)
        return self

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()
