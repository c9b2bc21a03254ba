"""The image `unitserve build` makes, built and run for real with podman.

The flow of a new user: `unitserve init demo`, `unitserve build demo --wheelhouse
--image ...` (built with no network at all), then `podman run`: it serves REST, gRPC,
the Open Inference Protocol and metrics, as uid 1000, also read-only; a code-only
change rebuilds only the code; the model's parameters and .s2i/environment reach the
class; `podman stop` drains slow requests; the `--target deployment` manifest runs
under `podman kube play`; a component with a real dependency (scikit-learn) builds
from its wheelhouse alone.

The base image is Debian's python3 built by mmdebstrap (tests/containers.py). Each
build is made once per module and shared by the tests that only run it.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .. import containers
from ..conftest import free_ports, wait_until
from .grpc_client import call_json
from .image_commands import PREFIX, build, unitserve
from .metrics_text import samples

BODY = {"data": {"ndarray": [[1.0, 2.0]]}}

# The changed component: a parameter, an .s2i/environment variable and a slow path.
PARAMETERS_CLASS = """\
import os
import time


class Demo:
    def __init__(self, greeting="unset"):
        self.greeting = greeting

    def predict(self, X, features_names=None):
        if X.size and X.flat[0] < 0:  # a slow request: -seconds
            time.sleep(-float(X.flat[0]))
            return X
        return [[self.greeting, os.environ.get("GREETING_SOURCE", "unset")]]
"""

SKLEARN_CLASS = """\
import numpy as np
from sklearn.linear_model import LogisticRegression


class Classifier:
    def load(self):
        X = np.array([[0.0], [1.0], [2.0], [3.0]])
        self.model = LogisticRegression().fit(X, [0, 0, 1, 1])

    def predict(self, X, features_names=None):
        return self.model.predict(np.asarray(X, dtype=float))
"""


class Container:
    """One `podman run -d` of an image, its three ports published on loopback."""

    def __init__(self, image: str, *options: str) -> None:
        self.http, self.grpc, self.metrics = free_ports(3)
        published = [f"127.0.0.1:{self.http}:9000", f"127.0.0.1:{self.grpc}:5000"]
        published.append(f"127.0.0.1:{self.metrics}:6000")
        ports = [arg for port in published for arg in ("-p", port)]
        self.id = containers.podman("run", "-d", *ports, *options, image).stdout.strip()
        self.url = f"http://127.0.0.1:{self.http}"

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            state = containers.podman("inspect", "--format", "{{.State.Running}}", self.id)
            assert state.stdout.strip() == "true", self.logs()
            try:
                return httpx.get(self.url + "/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout)

    def logs(self) -> str:
        done = containers.podman("logs", self.id, check=False)
        return done.stdout + done.stderr

    def exit_code(self) -> int:
        out = containers.podman("inspect", "--format", "{{.State.ExitCode}}", self.id).stdout
        return int(out.strip())

    def remove(self) -> None:
        containers.podman("rm", "--force", "--time", "2", self.id, check=False)


@pytest.fixture(scope="module")
def base(image_base) -> str:
    return image_base


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("images")


@pytest.fixture(scope="module")
def images(base) -> Iterator[list[str]]:
    """Every image the module builds, removed at its end with its build stages."""
    made: list[str] = []
    yield made
    if made:
        containers.podman("rmi", "--force", *made, check=False)


@pytest.fixture(scope="module")
def demo(base, workspace, images) -> tuple[str, Path]:
    """The image of what `unitserve init demo` writes: (image, its folder)."""
    unitserve("init", "demo", cwd=workspace)
    # One variable of the user's own in .s2i/environment, for the class to read.
    with (workspace / "demo" / ".s2i" / "environment").open("a") as env:
        env.write("GREETING_SOURCE=s2i\n")
    build(workspace / "demo", "1", base, images)
    return f"{PREFIX}-demo:1", workspace / "demo"


@pytest.fixture(scope="module")
def changed(demo, base, images) -> tuple[str, str]:
    """The demo after a code-only change: (image, build output)."""
    _, folder = demo
    copy = folder.parent / "changed"
    shutil.copytree(folder, copy)
    (copy / "Demo.py").write_text(PARAMETERS_CLASS)
    output = build(copy, "2", base, images)
    return f"{PREFIX}-changed:2", output


@pytest.fixture
def run() -> Iterator[Any]:
    started: list[Container] = []

    def start(image: str, *options: str) -> Container:
        container = Container(image, *options)
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()


# ------------------------------------------------------------------ the image serves


def test_image_serves_every_protocol_as_uid_1000(demo, run):
    image, _ = demo
    container = run(image)
    container.wait_ready()
    r = httpx.post(container.url + "/api/v1.0/predictions", json=BODY, timeout=10)
    assert r.status_code == 200 and r.json()["data"]["ndarray"] == [[1.0, 2.0]], r.text
    answer = call_json(f"127.0.0.1:{container.grpc}", "Model/Predict", BODY)
    assert answer["data"]["ndarray"] == [[1.0, 2.0]]
    infer = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}]}
    r = httpx.post(container.url + "/v2/models/Demo/infer", json=infer, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1.0, 2.0]
    scrape = httpx.get(f"http://127.0.0.1:{container.metrics}/metrics", timeout=10)
    assert scrape.status_code == 200
    assert any(name.startswith("unitserve_") for name, _, _ in samples(scrape.text))
    status = containers.podman("exec", container.id, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
    assert uids is not None and set(uids[1].split()) == {"1000"}, status
    cmdline = containers.podman("exec", container.id, "cat", "/proc/1/cmdline").stdout
    assert cmdline.split("\0")[1:3] == ["/opt/unitserve/bin/unitserve", "serve"], cmdline
    owner = containers.podman("exec", container.id, "stat", "-c", "%u", "Demo.py").stdout
    assert owner.strip() == "0"  # the code is root's: the server cannot change it
    assert "died" not in container.logs()


def test_image_serves_read_only(demo, run):
    image, _ = demo
    container = run(image, "--read-only", "--tmpfs", "/tmp")
    container.wait_ready()
    r = httpx.post(container.url + "/api/v1.0/predictions", json=BODY, timeout=10)
    assert r.status_code == 200, r.text


def test_the_image_holds_no_wheels_and_no_pip(demo, run):
    image, _ = demo
    listing = containers.podman("run", "--rm", image, "ls", "-a", "/microservice").stdout.split()
    assert ".unitserve" not in listing and "Demo.py" in listing
    pip = containers.podman("run", "--rm", image, "python", "-m", "pip", check=False)
    assert pip.returncode != 0 and "No module named pip" in pip.stderr


# ------------------------------------------------------------------ a code change


def test_code_only_change_rebuilds_only_the_code(changed):
    _, output = changed
    steps = re.findall(r"^\[(\d)/3\] STEP \d+/\d+: (.*)$", output, re.M)
    assert steps, output
    # Podman prints "--> Using cache <id>" after each step it did not run again.
    blocks = re.split(r"^\[\d/3\] STEP \d+/\d+: .*$", output, flags=re.M)[1:]
    cached = {
        step: "Using cache" in block for (stage, step), block in zip(steps, blocks, strict=True)
    }
    install = [s for (stage, s) in steps if stage == "1" and not s.startswith("FROM")]
    final = [s for (stage, s) in steps if stage == "3"]
    assert all(cached[s] for s in install), output
    # In the image, every step but the last (the code) comes from the cache.
    assert final[-1].startswith("COPY --from=code"), output
    assert all(cached[s] for s in final[1:-1]), output
    assert not cached[final[-1]], output


def test_parameters_and_s2i_environment_reach_the_class(changed, run):
    image, _ = changed
    parameters = json.dumps([{"name": "greeting", "value": "hello", "type": "STRING"}])
    container = run(image, "-e", f"PREDICTIVE_UNIT_PARAMETERS={parameters}")
    container.wait_ready()
    r = httpx.post(container.url + "/api/v1.0/predictions", json=BODY, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["ndarray"] == [["hello", "s2i"]]


def test_podman_stop_answers_requests_in_flight_and_exits_0(changed, run):
    image, _ = changed
    container = run(image, "-e", "GUNICORN_THREADS=4")
    container.wait_ready()
    slow = {"data": {"ndarray": [[-2.0]]}}

    def call() -> int:
        url = container.url + "/api/v1.0/predictions"
        return httpx.post(url, json=slow, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(call) for _ in range(3)]

        def in_flight() -> bool:
            text = httpx.get(f"http://127.0.0.1:{container.metrics}/metrics", timeout=5).text
            total = sum(
                value for name, _, value in samples(text) if name == "unitserve_requests_in_flight"
            )
            return total >= 3

        wait_until(in_flight, timeout=20)
        started = time.monotonic()
        containers.podman("stop", "--time", "30", container.id)
        assert time.monotonic() - started < 25, container.logs()
        assert [c.result() for c in calls] == [200, 200, 200], container.logs()
    assert container.exit_code() == 0, container.logs()


# ------------------------------------------------------------------ Kubernetes YAML


def test_kube_play_of_the_deployment_manifest(demo, workspace):
    image, _ = demo
    text = unitserve(
        "manifest", "demo", "--target", "deployment", "--image", image, "--print", cwd=workspace
    ).stdout
    objects = list(yaml.safe_load_all(text))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["metadata"]["name"] = deployment["metadata"]["name"] + "-unitserve-test"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    (host_port,) = free_ports(1)
    for port in container["ports"]:
        if port["name"] == "http":
            port["hostPort"] = host_port
            port["hostIP"] = "127.0.0.1"
    # podman runs Deployments and Pods, not Services: only the Deployment is played.
    played = workspace / "played.yaml"
    played.write_text(yaml.safe_dump(deployment, sort_keys=False))
    containers.podman("kube", "play", str(played))
    try:
        url = f"http://127.0.0.1:{host_port}"

        def ready() -> bool:
            try:
                return httpx.get(url + "/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=60)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(url + path, timeout=5).status_code == 200, probe
        r = httpx.post(url + "/api/v1.0/predictions", json=BODY, timeout=10)
        assert r.status_code == 200, r.text
    finally:
        down = containers.podman("kube", "down", str(played), check=False)
    assert down.returncode == 0, down.stderr
    pods = containers.podman("pod", "ps", "--format", "{{.Name}}").stdout.split()
    assert not any(p.startswith(deployment["metadata"]["name"]) for p in pods)


# ------------------------------------------------------------------ a real dependency


def test_scikit_learn_component_builds_from_its_wheelhouse_alone(base, workspace, images, run):
    unitserve("init", "classifier", "--class-name", "Classifier", cwd=workspace)
    folder = workspace / "classifier"
    (folder / "Classifier.py").write_text(SKLEARN_CLASS)
    (folder / "requirements.txt").write_text("scikit-learn>=1.3\n")
    output = build(folder, "1", base, images)
    assert re.search(r"\d+ wheels for Python 3\.\d+", output)
    wheelhouse = [p.name for p in (folder / ".unitserve" / "wheelhouse").iterdir()]
    assert any(name.startswith("scikit_learn-") for name in wheelhouse), wheelhouse
    container = run(f"{PREFIX}-classifier:1")
    container.wait_ready(timeout=90)
    body = {"data": {"ndarray": [[0.0], [3.0]]}}
    r = httpx.post(container.url + "/api/v1.0/predictions", json=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["ndarray"] == [0, 1]
