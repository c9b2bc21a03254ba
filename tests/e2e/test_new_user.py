"""Tried as a new user would: `unitserve init demo && cd demo && unitserve serve` answers;
the Dockerfile of `unitserve build` works when its steps run in a fresh virtualenv;
the probes of `unitserve manifest` are answered by the running component."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ..conftest import Server, clean_env, free_ports, run_cli
from ..dockerfile_steps import instructions
from .grpc_client import call_json

ROOT = Path(__file__).resolve().parents[2]

REQUESTS = {
    "MODEL": ("/api/v1.0/predictions", {"data": {"ndarray": [[1.0, 2.0]]}}, [[1.0, 2.0]]),
    "TRANSFORMER": ("/transform-input", {"data": {"ndarray": [[1.0, 2.0]]}}, [[1.0, 2.0]]),
    "OUTPUT_TRANSFORMER": ("/transform-output", {"data": {"ndarray": [[3.0]]}}, [[3.0]]),
    "ROUTER": ("/route", {"data": {"ndarray": [[1.0, 2.0]]}}, [[0]]),
    "COMBINER": (
        "/aggregate",
        [{"data": {"ndarray": [[1.0, 2.0]]}}, {"data": {"ndarray": [[3.0, 4.0]]}}],
        [[2.0, 3.0]],
    ),
}


class BareServe(Server):
    """`unitserve serve` with no argument, as the README of a new component says."""

    def __init__(self, cwd: Path) -> None:
        super().__init__("bare-serve", cwd=cwd)
        self.command.remove("bare-serve")


@pytest.mark.parametrize("kind", list(REQUESTS))
def test_init_then_serve_answers(tmp_path, kind):
    assert run_cli("init", "demo", "--type", kind, cwd=tmp_path).returncode == 0
    server = BareServe(tmp_path / "demo").start()
    try:
        path, body, expected = REQUESTS[kind]
        r = server.post(path, json=body)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["ndarray"] == expected
        if kind == "MODEL":
            out = call_json(server.grpc_target, "Model/Predict", body)
            assert out["data"]["ndarray"] == expected
    finally:
        assert server.stop() == 0


# ------------------------------------------------------------------ the Dockerfile's recipe


def _project_copy(target: Path) -> Path:
    """The project's source, copied so that pip's in-tree build leaves the work tree clean."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(
        ROOT / "src",
        target / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    return target


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Iterator[Path]:
    """One empty virtualenv for this module (its python, nothing installed)."""
    venv = tmp_path_factory.mktemp("image") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    yield venv


def test_dockerfile_recipe_runs_in_a_fresh_venv(tmp_path, fresh_venv):
    """Run each step of the generated Dockerfile the way `docker build` would: COPY from
    the build context, RUN its pip installs in an empty virtualenv (the stand-in for the
    base image's Python), ENV and WORKDIR, then its CMD; the component must answer."""
    project = _project_copy(tmp_path / "project-src")
    assert run_cli("init", "demo", cwd=tmp_path).returncode == 0
    context = tmp_path / "demo"
    (context / "requirements.txt").write_text("six\n")  # a real install step, from the index
    result = run_cli("build", "demo", "--unitserve-requirement", str(project), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    steps = instructions((context / "Dockerfile").read_text())

    image_root = tmp_path / "image-root"  # "/" of the image
    workdir = image_root
    env = clean_env({"PATH": f"{fresh_venv / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    env.pop("PYTHONPATH", None)
    cmd: list[str] = []
    for word, args in steps:
        if word == "WORKDIR":
            workdir = image_root / args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(args))
        elif word == "COPY":
            source, dest = args.split()
            if source == ".":
                shutil.copytree(context, workdir / dest, dirs_exist_ok=True)
            else:
                shutil.copy(context / source, workdir / dest)
        elif word == "RUN" and args.startswith("useradd "):
            continue  # creates the image's user: checked by test_build_print_structure
        elif word == "RUN":
            argv = shlex.split(args)
            assert argv[:2] == ["pip", "install"], args
            run = subprocess.run(
                [str(fresh_venv / "bin" / "python"), "-m", *argv],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=500,
            )
            assert run.returncode == 0, run.stdout + run.stderr
        elif word == "CMD":
            cmd = json.loads(args)
    assert cmd == ["unitserve", "serve"]
    assert shutil.which("unitserve", path=env["PATH"]) == str(fresh_venv / "bin" / "unitserve")

    # The container's start: the operator's port variables, loopback for the test.
    http, grpc_port, metrics = free_ports(3)
    env.update(
        PREDICTIVE_UNIT_HTTP_SERVICE_PORT=str(http),
        PREDICTIVE_UNIT_GRPC_SERVICE_PORT=str(grpc_port),
        PREDICTIVE_UNIT_METRICS_SERVICE_PORT=str(metrics),
        PREDICTIVE_UNIT_METRICS_ENDPOINT="/prometheus",
        UNITSERVE_HOST="127.0.0.1",
    )
    log = (tmp_path / "container.log").open("wb")
    proc = subprocess.Popen(
        [shutil.which(cmd[0], path=env["PATH"]), *cmd[1:]],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "container.log").read_text()
            try:
                if httpx.get(base + "/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "container.log").read_text()
            time.sleep(0.1)
        r = httpx.post(base + "/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}})
        assert r.status_code == 200 and r.json()["data"]["ndarray"] == [[1, 2]]
        # The manifest's probes, against this running component.
        text = run_cli("manifest", "demo", "--image", "demo:0.1", "--print", cwd=tmp_path).stdout
        [container] = yaml.safe_load(text)["spec"]["predictors"][0]["componentSpecs"][0]["spec"][
            "containers"
        ]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(base + path, timeout=5).status_code == 200, probe
        scrape = httpx.get(f"http://127.0.0.1:{metrics}/prometheus", timeout=5)
        assert scrape.status_code == 200
        container_log = (tmp_path / "container.log").read_text()
        assert "s2i start: MODEL_NAME=Demo (environment)" in container_log
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            assert proc.wait(30) == 0
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
            raise
        log.close()
