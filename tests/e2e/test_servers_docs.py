"""docs/prepackaged-servers.md as a reader uses it: every section with a `curl` is run in a
fresh folder, its commands in order (the save scripts of the page, `unitserve serve` or
`unitserve graph` on free ports), and each answer must be the one the page shows (but
for ``meta`` and ``id``, and numbers to the page's rounding)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import clean_env, free_ports, stop_process, wait_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "prepackaged-servers.md"
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def files(text: str) -> dict[str, str]:
    """The page's scripts and YAML files, by the name their first line gives."""
    found = {}
    for lang, body in BLOCK.findall(text):
        first = body.splitlines()[0]
        if lang in ("python", "yaml") and first.startswith("# "):
            found[first[2:].split(":")[0].strip()] = body
    return found


def sections(text: str) -> dict[str, list[tuple[str, list[str]]]]:
    """Each section that calls a server → its commands, each with the lines it prints."""
    found = {}
    for part in text.split("\n## ")[1:]:
        title = part.splitlines()[0]
        steps: list[tuple[str, list[str]]] = []
        for lang, body in BLOCK.findall(part):
            if lang != "console":
                continue
            for line in body.splitlines():
                if line.startswith("$ "):
                    steps.append((line[2:], []))
                elif steps:
                    steps[-1][1].append(line)
        if any(command.startswith("curl") for command, _ in steps):
            found[title] = steps
    return found


def comparable(answer: Any) -> Any:
    if isinstance(answer, dict):
        return {k: comparable(v) for k, v in answer.items() if k not in ("meta", "id")}
    if isinstance(answer, list):
        return [comparable(v) for v in answer]
    if isinstance(answer, float):
        return float(f"{answer:.4g}")
    return answer


class Started:
    def __init__(self, command: list[str], cwd: Path) -> None:
        self.http, grpc_port, metrics = free_ports(3)
        ports = ["--http-port", str(self.http), "--grpc-port", str(grpc_port)]
        ports += ["--metrics-port", str(metrics), "--host", "127.0.0.1"]
        self.log = tempfile.NamedTemporaryFile(suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unitserve", *command[1:], *ports],
            cwd=cwd,
            env=clean_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def ready(self) -> bool:
        assert self.proc.poll() is None, Path(self.log.name).read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{self.http}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)


def curl(command: str, port: int) -> Any:
    """What the page's `curl -s URL -H … -d BODY` prints (a GET without ``-d``), from
    the server on `port`."""
    words = shlex.split(command)
    url = next(w for w in words if w.startswith("localhost:9000"))
    address = "http://127.0.0.1:" + url.removeprefix("localhost:9000").join([str(port), ""])
    if "-d" not in words:
        return httpx.get(address, timeout=30).json()
    answer = httpx.post(
        address,
        content=words[words.index("-d") + 1],
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    return answer.json()


def run_section(steps: list[tuple[str, list[str]]], folder: Path) -> list[tuple[Any, Any]]:
    """Run the commands; (page's answer, server's answer) for each curl."""
    pairs = []
    server: Started | None = None
    try:
        for command, printed in steps:
            words = shlex.split(command)
            if words[0] == "python":
                subprocess.run([sys.executable, *words[1:]], cwd=folder, check=True, timeout=300)
            elif words[0] == "unitserve":
                server = Started(words, folder)
                wait_until(server.ready, timeout=90)
            elif words[0] == "curl":
                assert server is not None
                pairs.append(("\n".join(printed), curl(command, server.http)))
    finally:
        if server is not None:
            server.stop()
    return pairs


TEXT = DOC.read_text()


@pytest.mark.parametrize("title", list(sections(TEXT)))
def test_each_example_answers_as_the_page_shows(title: str, tmp_path: Path) -> None:
    for name, body in files(TEXT).items():
        (tmp_path / name).write_text(body)
    for shown, got in run_section(sections(TEXT)[title], tmp_path):
        assert comparable(json.loads(shown)) == comparable(got), json.dumps(got)
