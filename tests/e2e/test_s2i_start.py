"""s2i-style start: `unitserve serve` with no class argument, as Seldon's s2i images run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..conftest import FIXTURES, Server, run_cli


class BareServe(Server):
    """`unitserve serve` without an interface name."""

    def __init__(self, cwd: Path, *flags: str, env: dict[str, str] | None = None) -> None:
        super().__init__("bare-serve", *flags, env=env, cwd=cwd)
        self.command.remove("bare-serve")


@pytest.fixture
def folder(tmp_path):
    """A component folder holding two classes and a .s2i/environment naming one."""
    for name in ("Identity", "Router"):
        shutil.copy(FIXTURES / f"{name}.py", tmp_path)
    (tmp_path / ".s2i").mkdir()
    (tmp_path / ".s2i" / "environment").write_text(
        "MODEL_NAME=Router\nSERVICE_TYPE=ROUTER\nPERSISTENCE=0\n"
    )
    return tmp_path


@pytest.fixture
def bare():
    started: list[Server] = []

    def start(cwd, *flags, env=None):
        server = BareServe(cwd, *flags, env=env)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def test_model_and_type_from_the_file(bare, folder):
    server = bare(folder)
    assert server.post("/route", json={"data": {"ndarray": [[1, 2, 3]]}}).json()["data"][
        "ndarray"
    ] == [[1]]
    assert "serving Router (ROUTER)" in server.log()
    assert "MODEL_NAME=Router (.s2i/environment)" in server.log()


def test_environment_wins_over_the_file_and_flags_over_both(bare, folder):
    server = bare(
        folder, "--service-type", "TRANSFORMER", env={"MODEL_NAME": "Identity", "PERSISTENCE": "1"}
    )
    out = server.post("/predict", json={"data": {"ndarray": [[7]]}}).json()
    assert out["data"]["ndarray"] == [[7]]
    log = server.log()
    assert "serving Identity (TRANSFORMER)" in log
    assert "MODEL_NAME=Identity (environment)" in log
    assert "PERSISTENCE=1 (environment)" in log


def test_environment_alone_without_a_file(bare):
    server = bare(FIXTURES, env={"MODEL_NAME": "Identity", "SERVICE_TYPE": "MODEL"})
    assert server.post("/predict", json={"data": {"ndarray": [[1]]}}).status_code == 200


def test_an_interface_argument_ignores_s2i(fresh_server, folder):
    server = fresh_server("Identity", cwd=folder, grpc=False)
    assert "serving Identity (MODEL)" in server.log()


@pytest.mark.parametrize(
    ("env_file", "env", "message"),
    [
        (None, {}, "no model class given (the INTERFACE argument, or MODEL_NAME"),
        ("SERVICE_TYPE=MODEL\n", {}, "no model class given"),
        ("MODEL_NAME=Identity\nSERVICE_TYPE=SCORER\n", {}, "SERVICE_TYPE='SCORER'"),
        ("MODEL_NAME=Identity\n", {"PERSISTENCE": "x"}, "PERSISTENCE='x' (environment)"),
        ("MODEL_NAME Identity\n", {}, "line 1: expected KEY=VALUE"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(tmp_path, env_file, env, message):
    if env_file is not None:
        (tmp_path / ".s2i").mkdir()
        (tmp_path / ".s2i" / "environment").write_text(env_file)
    result = run_cli("serve", cwd=tmp_path, env=env, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("unitserve serve: error: ")
    assert message in lines[0]
