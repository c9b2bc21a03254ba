"""`unitserve init`, `build` and `manifest`: the files they write and their one-line errors.

The SeldonDeployment checks follow the machinelearning.seldon.io/v1 field reference
(Seldon Core's "Seldon Deployment CRD" reference page, i.e. the Go types in
operator/apis/machinelearning.seldon.io/v1/seldondeployment_types.go), the
Kubernetes core/v1 Container, ContainerPort, Probe, EnvVar and SecurityContext
fields, and the validation of Seldon's admission webhook (a container per graph
node, known protocol / transport / node type, traffic rules).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unitserve import settings
from unitserve.version import __version__

from ..conftest import run_cli
from ..dockerfile_steps import instructions

TYPES = ("MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER", "ROUTER", "COMBINER")

# ------------------------------------------------------------------ field reference
# Allowed keys of each object, from the v1 Go types' json tags.
SDEP_KEYS = {"apiVersion", "kind", "metadata", "spec", "status"}
SPEC_KEYS = {
    "name",
    "predictors",
    "oauth_key",
    "oauth_secret",
    "annotations",
    "protocol",
    "transport",
    "replicas",
    "serverType",
}
PREDICTOR_KEYS = {
    "name",
    "graph",
    "componentSpecs",
    "replicas",
    "annotations",
    "engineResources",
    "labels",
    "svcOrchSpec",
    "traffic",
    "explainer",
    "shadow",
    "ssl",
}
POD_SPEC_KEYS = {"metadata", "spec", "hpaSpec", "replicas", "kedaSpec", "pdbSpec"}
UNIT_KEYS = {
    "name",
    "children",
    "type",
    "implementation",
    "methods",
    "endpoint",
    "parameters",
    "modelUri",
    "serviceAccountName",
    "envSecretRefName",
    "storageInitializerImage",
    "logger",
}
ENDPOINT_KEYS = {"service_host", "service_port", "type", "httpPort", "grpcPort"}
UNIT_TYPES = {"UNKNOWN_TYPE", "ROUTER", "COMBINER", "MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER"}
PROTOCOLS = {"seldon", "tensorflow", "kfserving", "v2"}
# Kubernetes core/v1.
CONTAINER_KEYS = {
    "name",
    "image",
    "command",
    "args",
    "workingDir",
    "ports",
    "envFrom",
    "env",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "volumeMounts",
    "volumeDevices",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "imagePullPolicy",
    "securityContext",
    "stdin",
    "stdinOnce",
    "tty",
}
PORT_KEYS = {"name", "hostPort", "containerPort", "protocol", "hostIP"}
PROBE_KEYS = {
    "exec",
    "httpGet",
    "tcpSocket",
    "grpc",
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
    "terminationGracePeriodSeconds",
}
HTTP_GET_KEYS = {"path", "port", "host", "scheme", "httpHeaders"}
SECURITY_KEYS = {
    "capabilities",
    "privileged",
    "seLinuxOptions",
    "windowsOptions",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "procMount",
    "seccompProfile",
    "appArmorProfile",
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")


def keys_within(obj: dict, allowed: set[str], where: str) -> None:
    assert isinstance(obj, dict), where
    unknown = set(obj) - allowed
    assert not unknown, f"{where}: fields not in the reference: {unknown}"


def check_probe(probe: dict, port_names: set[str], where: str) -> None:
    keys_within(probe, PROBE_KEYS, where)
    keys_within(probe["httpGet"], HTTP_GET_KEYS, f"{where}.httpGet")
    assert probe["httpGet"]["port"] in port_names
    assert probe["httpGet"]["path"].startswith("/")
    for key in ("periodSeconds", "timeoutSeconds", "failureThreshold"):
        assert isinstance(probe[key], int) and probe[key] >= 1


def check_seldon_deployment(sdep: dict) -> dict:
    """Every field against the reference; returns the single container."""
    keys_within(sdep, SDEP_KEYS, "SeldonDeployment")
    assert sdep["apiVersion"] == "machinelearning.seldon.io/v1"
    assert sdep["kind"] == "SeldonDeployment"
    assert DNS_LABEL.match(sdep["metadata"]["name"])
    spec = sdep["spec"]
    keys_within(spec, SPEC_KEYS, "spec")
    assert spec.get("protocol", "seldon") in PROTOCOLS
    assert spec.get("transport", "rest") in {"rest", "grpc"}
    [predictor] = spec["predictors"]
    keys_within(predictor, PREDICTOR_KEYS, "predictor")
    assert predictor["name"] and isinstance(predictor["replicas"], int)
    [pod] = predictor["componentSpecs"]
    keys_within(pod, POD_SPEC_KEYS, "componentSpecs[0]")
    [container] = pod["spec"]["containers"]
    keys_within(container, CONTAINER_KEYS, "container")
    assert DNS_LABEL.match(container["name"])
    port_names = set()
    for port in container["ports"]:
        keys_within(port, PORT_KEYS, "port")
        assert 1 <= port["containerPort"] <= 65535 and port["protocol"] == "TCP"
        assert len(port["name"]) <= 15 and DNS_LABEL.match(port["name"])
        port_names.add(port["name"])
    for env in container["env"]:
        keys_within(env, {"name", "value", "valueFrom"}, "env")
        assert isinstance(env["value"], str)  # Kubernetes env values are strings
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check_probe(container[probe], port_names, probe)
    for kind in ("requests", "limits"):
        for value in container["resources"][kind].values():
            assert QUANTITY.match(str(value)), value
    keys_within(container["securityContext"], SECURITY_KEYS, "securityContext")
    graph = predictor["graph"]
    keys_within(graph, UNIT_KEYS, "graph")
    keys_within(graph["endpoint"], ENDPOINT_KEYS, "graph.endpoint")
    assert graph["type"] in UNIT_TYPES
    assert graph["endpoint"]["type"] in {"REST", "GRPC"}
    # The webhook's rule: a graph node without an implementation needs its container.
    assert graph["name"] == container["name"]
    assert graph["children"] == []
    return container


# ------------------------------------------------------------------ helpers


def init(tmp_path: Path, name: str = "demo", *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("init", name, *extra, cwd=tmp_path)


def one_line_error(result: subprocess.CompletedProcess[str], command: str, text: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"unitserve {command}: error: "), lines[0]
    assert text in lines[0], lines[0]


# ------------------------------------------------------------------ init


@pytest.mark.parametrize("kind", TYPES)
def test_init_writes_a_component_whose_test_passes(tmp_path, kind):
    result = init(tmp_path, "my-model", "--type", kind.lower())
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "my-model"
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == sorted(
        [
            "MyModel.py",
            "requirements.txt",
            ".s2i/environment",
            "test_mymodel.py",
            "README.md",
            ".dockerignore",
        ]
    )
    assert (folder / ".s2i/environment").read_text() == (
        f"MODEL_NAME=MyModel\nSERVICE_TYPE={kind}\nPERSISTENCE=0\n"
    )
    run = subprocess.run(
        [sys.executable, "test_mymodel.py"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
    assert "next: cd my-model && unitserve serve" in result.stdout


def test_init_class_name_option(tmp_path):
    assert init(tmp_path, "x", "--class-name", "Scorer").returncode == 0
    assert (tmp_path / "x" / "Scorer.py").is_file()
    assert "MODEL_NAME=Scorer" in (tmp_path / "x" / ".s2i/environment").read_text()


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["2fast"], "cannot make a Python class name from '2fast'"),
        (["none"], "cannot make a Python class name from 'none'"),
        (["ok", "--class-name", "not-valid"], "--class-name 'not-valid' is not a Python"),
    ],
)
def test_init_bad_names(tmp_path, args, text):
    one_line_error(init(tmp_path, *args), "init", text)


def test_init_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "keep.txt").write_text("mine")
    one_line_error(init(tmp_path), "init", "already exists and is not empty")
    assert init(tmp_path, "empty-ok").returncode == 0


def test_init_unknown_type_is_rejected_by_the_parser(tmp_path):
    result = init(tmp_path, "demo", "--type", "SCORER")
    one_line_error(result, "init", "argument --type: invalid choice: 'SCORER'")
    assert result.returncode == 2 and "(see unitserve init --help)" in result.stderr


# ------------------------------------------------------------------ build


def test_build_print_structure(tmp_path):
    init(tmp_path)
    result = run_cli("build", "demo", "--print", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert not (tmp_path / "demo" / "Dockerfile").exists()
    steps = instructions(text)
    # Three stages: the virtual environment, the code without the wheels, the image.
    froms = [i for i, (w, _) in enumerate(steps) if w == "FROM"]
    assert [steps[i][1] for i in froms] == [
        "python:3.11-slim AS install",
        "python:3.11-slim AS code",
        "python:3.11-slim",
    ]
    install, code, image = steps[froms[0] : froms[1]], steps[froms[1] : froms[2]], steps[froms[2] :]
    runs = [a for w, a in install if w == "RUN"]
    assert runs[0] == "python3 -m venv /opt/unitserve"
    assert ("COPY", ".unitserve/ /tmp/wheels/") in install
    assert f'"unitserve=={__version__}"' in runs[1] and "--no-index" not in runs[1]
    assert runs[2].endswith("-r /tmp/requirements.txt")
    assert ("COPY", ". /microservice/") in code
    # The cached layer order in the image: the environment, then the code, last.
    words = [w for w, _ in image]
    index = {w + " " + a: i for i, (w, a) in enumerate(image)}
    copy_venv = index["COPY --from=install /opt/unitserve /opt/unitserve"]
    copy_code = index["COPY --from=code /microservice/ ./"]
    assert copy_venv < copy_code == len(image) - 1  # the code is the last layer
    # A numeric non-root user, created before it is used, and used for CMD.
    user = next(a for w, a in image if w == "USER")
    assert user.isdigit() and int(user) != 0
    assert any(w == "RUN" and a.startswith(f"useradd --uid {user} ") for w, a in image)
    assert words.index("USER") > copy_venv
    env: dict[str, str] = {}
    for word, args in image:
        if word == "ENV":
            for item in shlex.split(args):
                key, value = item.split("=", 1)
                env[key] = value
    assert env["MODEL_NAME"] == "Demo" and env["SERVICE_TYPE"] == "MODEL"
    assert env["PERSISTENCE"] == "0"
    assert env["PATH"].startswith("/opt/unitserve/bin:")
    assert ("EXPOSE", "9000 5000 6000") in image
    assert ("CMD", '["unitserve", "serve"]') in image
    assert ("WORKDIR", "/microservice") in image


def test_build_ports_are_the_serve_defaults():
    defaults = {o.name: o.default for o in settings.OPTIONS}
    from unitserve.cli import dockerfile as packaging
    from unitserve.cli import manifest

    ports = (defaults["http_port"], defaults["grpc_port"], defaults["metrics_port"])
    assert ports == packaging.PORTS
    assert tuple(manifest.PORTS.values()) == ports


def test_build_writes_dockerfile_and_dockerignore_and_regenerates(tmp_path):
    init(tmp_path)
    folder = tmp_path / "demo"
    (folder / ".dockerignore").unlink()
    result = run_cli("build", "demo", "--extras", "flask", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f'"unitserve[flask]=={__version__}"' in (folder / "Dockerfile").read_text()
    assert ".venv" in (folder / ".dockerignore").read_text()
    assert run_cli("build", "demo", cwd=tmp_path).returncode == 0  # ours: replaced
    (folder / "Dockerfile").write_text("FROM scratch\n")
    one_line_error(run_cli("build", "demo", cwd=tmp_path), "build", "was not written by unitserve")
    assert run_cli("build", "demo", "--force", cwd=tmp_path).returncode == 0


def test_build_keeps_extra_s2i_variables_and_skips_missing_requirements(tmp_path):
    init(tmp_path)
    folder = tmp_path / "demo"
    (folder / "requirements.txt").unlink()
    with (folder / ".s2i/environment").open("a") as f:
        f.write('GUNICORN_WORKERS=2\nNOTE=say "hi" for $5\n')
    text = run_cli("build", "demo", "--print", cwd=tmp_path).stdout
    assert "requirements.txt" not in text
    assert 'GUNICORN_WORKERS="2"' in text
    assert r'NOTE="say \"hi\" for \$5"' in text


def test_build_a_folder_without_s2i_environment(tmp_path):
    (tmp_path / "MyModel.py").write_text("class MyModel:\n    pass\n")
    one_line_error(run_cli("build", ".", cwd=tmp_path), "build", "give --model-name")
    result = run_cli(
        "build", ".", "--print", "--model-name", "MyModel", "--type", "router", cwd=tmp_path
    )
    assert 'MODEL_NAME="MyModel"' in result.stdout and 'SERVICE_TYPE="ROUTER"' in result.stdout


@pytest.mark.parametrize(
    ("setup", "args", "text"),
    [
        (None, ["build", "nowhere"], "nowhere is not a directory"),
        ("MODEL_NAME=Gone\n", ["build", "."], "model class Gone: no Gone.py in ."),
        ("MODEL_NAME=M\nSERVICE_TYPE=X\n", ["build", "."], "SERVICE_TYPE='X'"),
        (None, ["manifest", "nowhere", "--image", "x:1"], "nowhere is not a directory"),
        ("SERVICE_TYPE=OUTLIER_DETECTOR\n", ["manifest", ".", "--image", "x"], "not a Seldon"),
        (None, ["manifest", ".", "--image", "a b"], "--image 'a b' is not an image"),
        (None, ["manifest", ".", "--image", "x", "--name", "__"], "cannot make a Kubernetes"),
    ],
)
def test_packaging_mistakes_are_one_line(tmp_path, setup, args, text):
    if setup is not None:
        (tmp_path / ".s2i").mkdir()
        (tmp_path / ".s2i" / "environment").write_text(setup)
        (tmp_path / "M.py").write_text("class M:\n    pass\n")
    one_line_error(run_cli(*args, cwd=tmp_path), args[0], text)


# ------------------------------------------------------------------ manifest


@pytest.mark.parametrize("kind", TYPES)
def test_manifest_follows_the_reference(tmp_path, kind):
    init(tmp_path, "Demo_Model", "--type", kind)
    result = run_cli("manifest", "Demo_Model", "--image", "demo:0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "Demo_Model" / "seldondeployment.yaml").read_text()
    assert text.startswith("# Generated by `unitserve manifest`")
    sdep = yaml.safe_load(text)
    container = check_seldon_deployment(sdep)
    assert sdep["metadata"]["name"] == "demo-model" == container["name"]
    assert container["image"] == "demo:0.1"
    graph = sdep["spec"]["predictors"][0]["graph"]
    assert graph["type"] == kind and graph["endpoint"]["type"] == "REST"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 9000, "grpc": 5000, "metrics": 6000}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(ports["http"]),
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(ports["grpc"]),
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert container["securityContext"]["runAsNonRoot"] is True
    from unitserve.cli.dockerfile import USER_ID

    assert container["securityContext"]["runAsUser"] == USER_ID


def test_manifest_options(tmp_path):
    init(tmp_path)
    result = run_cli(
        "manifest",
        "demo",
        "--image",
        "registry:5000/team/demo:1.2",
        "--type",
        "router",
        "--name",
        "scorer",
        "--transport",
        "grpc",
        "--replicas",
        "3",
        "--cpu",
        "2",
        "--memory",
        "2Gi",
        "--print",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "demo" / "seldondeployment.yaml").exists()
    sdep = yaml.safe_load(result.stdout)
    container = check_seldon_deployment(sdep)
    predictor = sdep["spec"]["predictors"][0]
    assert predictor["replicas"] == 3
    assert predictor["graph"]["type"] == "ROUTER"
    assert predictor["graph"]["endpoint"]["type"] == "GRPC"
    assert container["name"] == "scorer" and container["image"] == "registry:5000/team/demo:1.2"
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "2Gi"}


def test_manifest_refuses_to_replace_a_foreign_file(tmp_path):
    init(tmp_path)
    (tmp_path / "demo" / "seldondeployment.yaml").write_text("kind: Mine\n")
    args = ("manifest", "demo", "--image", "demo:0.1")
    one_line_error(run_cli(*args, cwd=tmp_path), "manifest", "was not written by unitserve")
    assert run_cli(*args, "--force", cwd=tmp_path).returncode == 0
    assert run_cli(*args, cwd=tmp_path).returncode == 0  # ours now: replaced


def test_manifest_requires_an_image(tmp_path):
    result = run_cli("manifest", ".", cwd=tmp_path)
    one_line_error(result, "manifest", "the following arguments are required: --image")
    assert result.returncode == 2


def test_help_lists_every_command():
    result = run_cli("--help")
    for command in ("serve", "init", "build", "manifest"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
