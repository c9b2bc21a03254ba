"""The image walk-throughs of docs/kubernetes.md and docs/getting-started.md, run as a
reader runs them, with podman in place of docker (there is no Docker daemon here).

Every console block that builds and runs an image is run command by command, in page
order, in one folder (getting-started's from inside the `demo` folder its earlier steps
make); each output line the page shows must be what the command printed. What the
test changes, and only that: `docker` becomes `podman`; the image and container names
get a test prefix (podman's store is shared by the machine); port 9000 becomes a free
port on loopback; `unitserve build` gets `--base-image` with the Debian base image
(no registry here).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .. import containers
from ..conftest import clean_env, free_ports

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
PAGES = {"kubernetes.md": None, "getting-started.md": "demo"}  # page: folder it runs in


def image_blocks(page: str) -> list[list[tuple[str, list[str]]]]:
    """The page's blocks that run an image: [(command, output lines shown)]."""
    blocks = []
    for text in BLOCK.findall((ROOT / "docs" / page).read_text()):
        if " run -d " not in text:
            continue
        steps: list[tuple[str, list[str]]] = []
        for line in text.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif line.strip():
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def test_both_pages_show_docker_and_podman():
    for page in PAGES:
        engines = [{c.split()[0] for c, _ in b if " run -d " in c} for b in image_blocks(page)]
        assert engines == [{"docker"}, {"podman"}], page


def localised(command: str, name: str, port: int, base: str) -> str:
    """The command with the substitutions the module docstring lists."""
    command = re.sub(r"#.*$", "", command).strip()  # a shell comment
    command = re.sub(r"(^|&& )docker ", r"\1podman ", command)
    command = command.replace("demo:0.1", f"localhost/{name}:0.1")
    command = re.sub(r"(--name|stop|rm) demo\b", rf"\1 {name}", command)
    command = command.replace("-p 9000:9000", f"-p 127.0.0.1:{port}:9000")
    command = command.replace("localhost:9000", f"127.0.0.1:{port}")
    if command.startswith("unitserve build "):
        command += f" --base-image {shlex.quote(base)}"
    return command


@pytest.fixture(scope="module")
def base(image_base) -> str:
    return image_base


@pytest.mark.parametrize("page", list(PAGES))
def test_the_pages_image_walkthrough_runs(page, tmp_path, base):
    name = f"unitserve-test-docs-{os.getpid()}"
    (port,) = free_ports(1)
    env = clean_env(
        {
            "CONTAINERS_CONF": containers.environment()["CONTAINERS_CONF"],
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        }
    )
    cwd = tmp_path
    folder = PAGES[page]
    if folder:
        subprocess.run(["unitserve", "init", folder], cwd=cwd, env=env, check=True)
        cwd = cwd / folder
    blocks = image_blocks(page)
    assert blocks, f"docs/{page} shows no image to run"
    try:
        for steps in blocks:
            for command, shown in steps:
                line = localised(command, name, port, base)
                done = subprocess.run(
                    ["bash", "-c", line],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                    stdin=subprocess.DEVNULL,
                )
                assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
                if shown:
                    assert done.stdout.strip().splitlines() == shown, line
    finally:
        containers.podman("rm", "--force", "--time", "2", name, check=False)
        containers.podman("rmi", "--force", f"localhost/{name}:0.1", check=False)
