"""docs/tools.md tried as a new user would: every shell and Python example in it runs, as
written, against the example identity model served as `make serve` serves it (on free
ports here, put in place of the doc's 9000 and 5000), so the doc cannot drift."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.docs_blocks import on_test_ports

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "tools.md"
BLOCK = re.compile(r"```(sh|python)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(DOC.read_text())


@pytest.fixture(scope="module")
def identity() -> Iterator[Server]:
    # The doc's own MODEL_METADATA for --from-metadata (the identity model has none).
    found = re.search(r"MODEL_METADATA='([^']*)'", DOC.read_text())
    assert found, "docs/tools.md no longer shows MODEL_METADATA for --from-metadata"
    server = Server(
        "MyModel", env={"MODEL_METADATA": found.group(1)}, cwd=ROOT / "examples" / "identity"
    )
    server.start()
    yield server
    server.stop()


def _local(text: str, server: Server) -> str:
    return on_test_ports(text, server.http_port, server.grpc_port)


def test_the_doc_has_examples_of_each_tool() -> None:
    text = "".join(code for _, code in _blocks())
    for needle in (
        "Client(",
        'protocol="v2"',
        "unitserve test ",
        "--from-metadata",
        "unitserve batch ",
    ):
        assert needle in text, needle


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_doc_example_runs(identity: Server, tmp_path: Path, index: int) -> None:
    blocks = _blocks()
    kind, code = blocks[index]
    # Files an example reads (contract.json, input.txt) come from the examples before it.
    setup = "".join(c for k, c in blocks[:index] if k == "sh" and ("cat >" in c or "printf" in c))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if kind == "sh":
        command = ["bash", "-euc", _local(setup + code, identity)]
    else:
        command = [sys.executable, "-c", _local(code, identity)]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{kind} example {index}:\n{code}\n{done.stdout}\n{done.stderr}"
