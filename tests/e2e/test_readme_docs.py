"""The README's quick start tried as a new user would: its `MyModel`, saved from the page
as a file of its own, is served; then every other Python and shell example of the README,
and the binary-data example of docs/open-inference-protocol.md (written for that model),
runs as written against it. The one change: the page's ports 9000 and 5000 become the
free ports the test serves on. A `print(...)  # output` line must print that output."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.docs_blocks import ROOT, Block, blocks, on_test_ports, python_blocks

README = ROOT / "README.md"
OIP = ROOT / "docs" / "open-inference-protocol.md"


def _examples() -> list[Block]:
    """The README's runnable examples: Python blocks that define no class, shell blocks."""
    runnable = [b for b in blocks(README) if b.language in ("python", "sh")]
    return [b for b in runnable if b.language == "sh" or not b.classes]


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    [model] = [b for b in python_blocks(README) if "MyModel" in b.classes]
    folder = tmp_path_factory.mktemp("quick-start")
    (folder / "MyModel.py").write_text(model.code)
    server = Server("MyModel", cwd=folder)
    server.start()
    yield server
    server.stop()


def _run(block: Block, server: Server, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    code = on_test_ports(block.code, server.http_port, server.grpc_port)
    command = ["bash", "-euc", code] if block.language == "sh" else [sys.executable, "-c", code]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _printed(code: str) -> list[str]:
    """What the block says its print() calls print: the comment after each of them."""
    return [
        line.split("#", 1)[1].strip()
        for line in code.splitlines()
        if line.lstrip().startswith("print(") and "#" in line
    ]


def test_the_readme_shows_the_tools_with_their_files() -> None:
    shell = "".join(b.code for b in _examples() if b.language == "sh")
    for needle in ("cat > contract.json", "unitserve test contract.json", "> input.txt"):
        assert needle in shell, needle
    assert "unitserve batch" in shell and "-i input.txt" in shell
    python = "".join(b.code for b in _examples() if b.language == "python")
    for needle in ('transport="grpc"', 'protocol="v2", model="MyModel"', ".infer("):
        assert needle in python, needle
    assert "localhost:5000" in python  # gRPC has its own port


def test_the_quick_start_says_where_the_server_listens() -> None:
    text = README.read_text()
    start = text.index("## Quick start")
    quick_start = " ".join(text[start : text.index("\n## ", start)].split())
    assert "--host 127.0.0.1" in quick_start and "every network interface" in quick_start


@pytest.mark.parametrize("block", _examples(), ids=lambda b: b.where)
def test_readme_example_runs(quick_start: Server, tmp_path: Path, block: Block) -> None:
    done = _run(block, quick_start, tmp_path)
    assert done.returncode == 0, f"{block.where}:\n{block.code}\n{done.stdout}\n{done.stderr}"
    expected = _printed(block.code)
    if expected:
        assert done.stdout.splitlines() == expected, block.where


def test_the_binary_data_example_runs_against_the_quick_start_model(
    quick_start: Server, tmp_path: Path
) -> None:
    [example] = [b for b in python_blocks(OIP) if "binary_data_size" in b.code]
    done = _run(example, quick_start, tmp_path)
    assert done.returncode == 0, f"{example.where}:\n{done.stdout}\n{done.stderr}"
