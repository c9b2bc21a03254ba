"""The repository server's image (`unitserve build --server`), built with podman and run
the way a Seldon Core 2 Server runs it.

The image is built once, with no network, from a folder holding only a
requirements.txt, with ``--runtimes sklearn``: one prepackaged server, so that the build
stays small and the choice of runtimes can be seen. It then runs as the ``mlserver``
container of the ServerConfig Core 2 ships (tests/data/crds/mlserver-serverconfig.yaml,
read here, not copied): that container's ``MLSERVER_*`` variables and ports, the agent's
volume mounted read-only at its mount path, the pod's user (1000); and, stricter than
Core 2 asks, a read-only root with a tmpfs ``/tmp``. Seldon's agent is played by
tests/e2e/core2_agent.py: it writes each model into the shared folder and drives the
server over gRPC, as Core 2's does; the REST repository routes are driven too.

The models are trained by the test (scikit-learn, saved with joblib), and the image
pins the scikit-learn that trained them through the folder's requirements.txt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import joblib
import numpy as np
import pytest
import sklearn
import yaml
from sklearn.linear_model import LogisticRegression

from unitserve.proto import inference_pb2 as pb

from .. import containers
from ..conftest import free_ports
from .core2_agent import Core2Agent
from .image_commands import build

ROOT = Path(__file__).resolve().parents[2]
SERVER_CONFIG = ROOT / "tests" / "data" / "crds" / "mlserver-serverconfig.yaml"
ECHO_MODEL = Path(__file__).parent / "core2_models" / "seldon"
PROBE = [[0.5, -1.0, 0.0, 2.0], [-2.0, 1.5, 0.3, 0.1]]


def server_config() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ServerConfig's pod spec, and its inference server's container (``mlserver``)."""
    [config] = [d for d in yaml.safe_load_all(SERVER_CONFIG.read_text()) if d]
    pod = config["spec"]["podSpec"]
    [server] = [c for c in pod["containers"] if c["name"] == "mlserver"]
    return pod, server


class ServerPod:
    """The image run as the ServerConfig's ``mlserver`` container, its ports published
    on loopback, the agent's folder (``/mnt/agent``) a folder of the test's."""

    def __init__(self, image: str, agent_dir: Path) -> None:
        pod, spec = server_config()
        self.env = {e["name"]: e["value"] for e in spec["env"]}
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        [mount] = [m for m in spec["volumeMounts"] if m["name"] == "mlserver-models"]
        assert mount["readOnly"] is True
        self.user = pod["securityContext"]["runAsUser"]
        self.live_path = spec["livenessProbe"]["httpGet"]["path"]
        self.http, self.grpc, self.metrics = free_ports(3)
        published = {
            self.http: ports["server-http"],
            self.grpc: ports["server-grpc"],
            self.metrics: ports["server-metrics"],
        }
        options = ["--read-only", "--tmpfs", "/tmp", "--user", str(self.user)]
        options += ["--volume", f"{agent_dir}:{mount['mountPath']}:ro"]
        for name, value in self.env.items():
            options += ["--env", f"{name}={value}"]
        for host, inside in published.items():
            options += ["--publish", f"127.0.0.1:{host}:{inside}"]
        self.id = containers.podman("run", "-d", *options, image).stdout.strip()
        self.url = f"http://127.0.0.1:{self.http}"
        self.models_dir = agent_dir / Path(self.env["MLSERVER_MODELS_DIR"]).relative_to(
            mount["mountPath"]
        )

    def logs(self) -> str:
        done = containers.podman("logs", self.id, check=False)
        return done.stdout + done.stderr

    def exec(self, *command: str) -> str:
        return containers.podman("exec", self.id, *command).stdout

    def remove(self) -> None:
        containers.podman("rm", "--force", "--time", "2", self.id, check=False)


def readable_by_all(folder: Path) -> None:
    """The pod's user (1000) reads what the agent (root, here) writes: pytest's
    temporary folders are root's alone."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-image")


@pytest.fixture(scope="module")
def server_image(image_base, workspace) -> Iterator[str]:
    """`unitserve build server --server --runtimes sklearn`, the folder holding only a
    requirements.txt that pins the scikit-learn of the models the tests train."""
    folder = workspace / "server"
    folder.mkdir()
    (folder / "requirements.txt").write_text(f"scikit-learn=={sklearn.__version__}\n")
    images: list[str] = []
    try:
        build(folder, "1", image_base, images, "--server", "--runtimes", "sklearn")
        yield images[0]
    finally:
        containers.podman("rmi", "--force", *images, check=False)


@pytest.fixture(scope="module")
def models(workspace) -> dict[str, Path]:
    """Model folders as a Core 2 Model's storageUri holds them: a scikit-learn model for
    MLServer's runtime name, an XGBoost one (a runtime the image lacks), and a Seldon
    class. The expected predictions are in sklearn's ``expected.json``."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 4))
    y = (X[:, 0] + X[:, 3] > 0).astype(np.int64)
    classifier = LogisticRegression().fit(X, y)
    out = {}
    for name, implementation, uri in (
        ("income", "mlserver_sklearn.SKLearnModel", "./model.joblib"),
        ("churn", "mlserver_xgboost.XGBoostModel", "./model.json"),
    ):
        folder = workspace / "storage" / name
        folder.mkdir(parents=True)
        settings = {"name": name, "implementation": implementation, "parameters": {"uri": uri}}
        (folder / "model-settings.json").write_text(json.dumps(settings))
        out[name] = folder
    joblib.dump(classifier, out["income"] / "model.joblib")
    (out["churn"] / "model.json").write_text("{}")  # never read: the library is missing
    expected = classifier.predict(np.array(PROBE)).tolist()
    (out["income"] / "expected.json").write_text(json.dumps(expected))
    out["echo"] = ECHO_MODEL
    return out


@pytest.fixture(scope="module")
def pod(server_image, workspace) -> Iterator[tuple[ServerPod, Core2Agent]]:
    """The server running as Core 2 runs it, and the agent driving it, started."""
    agent_dir = workspace / "agent"
    (agent_dir / "models").mkdir(parents=True)
    readable_by_all(agent_dir)
    server = ServerPod(server_image, agent_dir)
    try:
        agent = Core2Agent(server.models_dir, f"127.0.0.1:{server.grpc}", server.url)
        try:
            agent.wait_live(timeout=90)
            assert agent.start() == {}, server.logs()  # nothing loaded at start
            yield server, agent
        finally:
            agent.close()
    finally:
        server.remove()


def place(agent: Core2Agent, source: Path, model: str, version: int) -> str:
    name = agent.place(source, model, version)
    readable_by_all(agent.models_dir / name)
    return name


def infer_request(name: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=name)
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[2, 4])
    tensor.contents.fp64_contents.extend(np.ravel(PROBE).tolist())
    return request


RAW_DTYPES = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}


def grpc_values(answer: pb.ModelInferResponse) -> list[Any]:
    """The first output's values, sent as raw contents or typed contents."""
    output = answer.outputs[0]
    if answer.raw_output_contents:
        raw = answer.raw_output_contents[0]
        return np.frombuffer(raw, dtype=RAW_DTYPES[output.datatype]).tolist()
    contents = output.contents
    return list(contents.int64_contents or contents.int_contents or contents.fp64_contents)


# ------------------------------------------------------------------ the image


def test_the_image_runs_unitserve_start_with_no_model_inside(server_image):
    inspect = containers.podman("image", "inspect", "--format", "json", server_image).stdout
    [config] = [image["Config"] for image in json.loads(inspect)]
    assert config["Cmd"] == ["unitserve", "start"]
    assert config["User"] == "1000"
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8081/tcp", "8082/tcp"}
    assert "MLSERVER_MODELS_DIR=/mnt/models" in config["Env"]
    listing = containers.podman("run", "--rm", server_image, "ls", "-A", "/microservice")
    # The folder as it was given (and the files `unitserve build` wrote): no model, no wheels.
    assert set(listing.stdout.split()) == {"requirements.txt", "Dockerfile", ".dockerignore"}
    # The runtime asked for, at the version requirements.txt pins; no other.
    probe = (
        "import importlib.util as u, sklearn; others = ('xgboost', 'lightgbm', 'mlflow'); "
        "print(sklearn.__version__, [m for m in others if u.find_spec(m)])"
    )
    libraries = containers.podman("run", "--rm", server_image, "python", "-c", probe).stdout
    assert libraries.split() == [sklearn.__version__, "[]"]


# ------------------------------------------------------------------ run as Core 2 runs it


def test_it_runs_as_the_pods_user_on_a_read_only_root(pod):
    server, _ = pod
    assert httpx.get(server.url + server.live_path, timeout=5).status_code == 200
    status = server.exec("cat", "/proc/1/status")
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M)
    assert uids is not None and set(uids[1].split()) == {str(server.user)}, status
    command = server.exec("cat", "/proc/1/cmdline").split("\0")
    assert command[1:3] == ["/opt/unitserve/bin/unitserve", "start"], command
    # Its own home: writable but for the read-only root.
    write = containers.podman("exec", server.id, "touch", "/home/unitserve/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    metrics = httpx.get(f"http://127.0.0.1:{server.metrics}/metrics", timeout=5)
    assert metrics.status_code == 200


def test_the_agent_loads_infers_and_unloads_a_scikit_learn_model(pod, models):
    server, agent = pod
    name = place(agent, models["income"], "income", 1)
    agent.load(name)  # RepositoryModelLoad over gRPC, as the agent loads
    assert agent.index()[name] == "READY"
    expected = json.loads((models["income"] / "expected.json").read_text())

    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": PROBE}]}
    r = agent.infer_rest(name, body)
    assert r.status_code == 200, r.text
    assert r.json()["model_name"] == name
    [output] = r.json()["outputs"]
    assert np.ravel(output["data"]).tolist() == expected

    answer = agent.infer_grpc(name, infer_request(name))
    values = grpc_values(answer)
    assert values == expected, answer

    assert agent.unload(name) == "OK"
    states = {m.name: m.state for m in agent.rpc(
        "RepositoryIndex", pb.RepositoryIndexRequest(), pb.RepositoryIndexResponse, 60
    ).models}  # fmt: skip
    assert states.get(name, "UNAVAILABLE") == "UNAVAILABLE"
    assert agent.http.post(f"/v2/models/{name}/infer", json=body).status_code == 404
    agent.remove(name)
    assert agent.unload(name) == "NOT_FOUND"
    assert httpx.get(server.url + server.live_path, timeout=5).status_code == 200


def test_the_rest_repository_routes_load_and_unload_a_seldon_class(pod, models):
    _, agent = pod
    name = place(agent, models["echo"], "echo", 2)
    r = agent.http.post(f"/v2/repository/models/{name}/load")
    assert r.status_code == 200, r.text
    index = agent.http.post("/v2/repository/index", json={}).json()
    assert {"name": name, "version": "2", "state": "READY", "reason": ""} in index
    body = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    r = agent.http.post(f"/v2/models/{name}/infer", json=body)
    assert r.status_code == 200, r.text
    assert np.ravel(r.json()["outputs"][0]["data"]).tolist() == [1, 2, 3]
    assert agent.http.post(f"/v2/repository/models/{name}/unload").status_code == 200
    ready = agent.http.post("/v2/repository/index", json={"ready": True}).json()
    assert name not in {m["name"] for m in ready}


def test_a_runtime_the_image_lacks_is_unavailable_with_the_extra_to_install(pod, models):
    """Built with --runtimes sklearn: an XGBoost model is refused with a sentence
    saying which extra brings it, and it does not stop the server."""
    _, agent = pod
    name = place(agent, models["churn"], "churn", 1)
    with pytest.raises(grpc.RpcError) as refused:
        agent.load(name)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "xgboost" in (refused.value.details() or "")
    index = agent.http.post("/v2/repository/index", json={}).json()
    [entry] = [m for m in index if m["name"] == name]
    assert entry["state"] == "UNAVAILABLE" and "xgboost" in entry["reason"], entry
    agent.wait_live(timeout=10)
