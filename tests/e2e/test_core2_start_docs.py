"""docs/seldon-core-2.md's `unitserve start` example, run as a reader runs it: the page's
folder and model-settings.json in a models folder, the page's command (on free loopback
ports), and the page's request, whose answer must be the one the page shows."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import httpx

from ..conftest import clean_env, free_ports, wait_until

PAGE = Path(__file__).resolve().parents[2] / "docs" / "seldon-core-2.md"


def start_example() -> tuple[str, str, str]:
    """(the command, the request, the answer shown) of the page's start example."""
    for block in re.findall(r"```console\n(.*?)```", PAGE.read_text(), re.S):
        lines = block.splitlines()
        if any("unitserve start" in line for line in lines):
            command, request, answer = lines[0], lines[1], lines[2]
            return command.removeprefix("$ "), request.removeprefix("$ "), answer
    raise AssertionError("the page has no `unitserve start` example")


def test_the_pages_start_example_serves_the_pages_model(tmp_path: Path) -> None:
    [settings] = re.findall(r"```json\n(.*?)```", PAGE.read_text(), re.S)
    folder = tmp_path / "income"
    folder.mkdir()
    (folder / "Income.py").write_text(
        "class Income:\n"
        "    def __init__(self, threshold=0.5):\n"
        "        self.threshold = threshold\n\n"
        "    def predict(self, X, names):\n"
        "        return X\n"
    )
    (folder / "model-settings.json").write_text(settings)
    command, request, shown = start_example()
    words = shlex.split(command)
    variables = dict(w.split("=", 1) for w in words if "=" in w and w.split("=")[0].isupper())
    argv = [w for w in words if w not in {f"{k}={v}" for k, v in variables.items()}]
    assert argv[:2] == ["unitserve", "start"]
    http_port, grpc_port, metrics_port = free_ports(3)
    ports = {"MLSERVER_HTTP_PORT": str(http_port), "MLSERVER_GRPC_PORT": str(grpc_port)}
    assert set(variables) == set(ports)
    env = clean_env(
        {**ports, "MLSERVER_METRICS_PORT": str(metrics_port), "MLSERVER_HOST": "127.0.0.1"}
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "unitserve", *argv[1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{http_port}"

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return process.poll() is not None  # ended: the assertion below says so

        wait_until(ready, timeout=60, every=0.2)
        assert process.poll() is None
        path = shlex.split(request)[-1].removeprefix("localhost:8080")
        answer = httpx.post(f"{url}{path}", timeout=10)
        assert answer.status_code == 200
        assert answer.json() == json.loads(shown)
    finally:
        process.terminate()
        process.wait(timeout=30)
