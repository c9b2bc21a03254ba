"""MLServer itself (from a reference venv) serving a folder of models on loopback, for
the tests that compare its answers with ours."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from ..client_venvs import client_python
from ..conftest import Server, free_ports, stop_process, wait_until


class MLServer:
    """``mlserver start FOLDER`` with its three ports free on 127.0.0.1; `ready` once
    every model in `models` answers its readiness check."""

    def __init__(self, folder: Path, venv: str, models: Sequence[str]) -> None:
        self.models = list(models)
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        settings = {
            "host": "127.0.0.1",
            "http_port": self.http_port,
            "grpc_port": self.grpc_port,
            "metrics_port": self.metrics_port,
            "debug": False,
            "parallel_workers": 0,
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        mlserver = client_python(venv).parent / "mlserver"
        self.log = (folder / "mlserver.log").open("wb")
        self.process = subprocess.Popen(
            [str(mlserver), "start", str(folder)],
            cwd=folder,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"

    def ready(self) -> bool:
        assert self.process.poll() is None, "MLServer exited while starting"
        try:
            return all(
                httpx.get(f"{self.url}/v2/models/{name}/ready", timeout=2).status_code == 200
                for name in self.models
            )
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def write_model_settings(folder: Path, name: str, runtime: str, parameters: dict[str, Any]) -> None:
    """MLServer's ``model-settings.json`` for model `name` in its `folder`."""
    settings = {"name": name, "implementation": runtime, "parameters": parameters}
    (folder / "model-settings.json").write_text(json.dumps(settings))


@contextlib.contextmanager
def side_by_side(folder: Path, ours: Mapping[str, Server]) -> Iterator[MLServer]:
    """MLServer's runtimes serving every model of `ours` from `folder`, and our servers
    started beside it; all stopped on leaving."""
    mlserver = MLServer(folder, "mlserver-runtimes", list(ours))
    try:
        for server in ours.values():
            server.start()
        wait_until(mlserver.ready, timeout=180, every=0.3)
        yield mlserver
    finally:
        for server in ours.values():
            server.stop()
        mlserver.stop()
