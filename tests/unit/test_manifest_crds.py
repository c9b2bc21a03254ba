"""Every manifest `unitserve manifest` writes, validated against the CRD schemas the
cluster applies: SeldonDeployment (Seldon Core 1.x), ServingRuntime and
InferenceService (KServe). The schemas live in tests/data/crds/ (see its README
for their source and trimming).

A CRD schema is a Kubernetes "structural" OpenAPI schema, close to JSON Schema
draft 4. Two differences matter here and are bridged when the schema is loaded:

* Kubernetes drops (or, with strict field validation, refuses) a field its schema
  does not list; JSON Schema allows it. So every object that lists its properties
  and does not say ``x-kubernetes-preserve-unknown-fields`` gets
  ``additionalProperties: false``: a misspelt field fails here as it would there.
* ``metadata`` and the ``apiVersion`` / ``kind`` pair are checked by the API
  server itself, not by the CRD schema; they get the rules it applies.

The negative controls at the end break valid manifests on purpose, so a schema
that accepted anything would be noticed.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
import yaml

from unitserve.cli import manifest
from unitserve.cli.main import main

CRDS = Path(__file__).resolve().parents[1] / "data" / "crds"
SCHEMA_FILES = {
    "SeldonDeployment": "seldondeployment-v1.json",
    "ServingRuntime": "servingruntime-v1alpha1.json",
    "InferenceService": "inferenceservice-v1beta1.json",
}
# ObjectMeta's name rule for these kinds (a DNS-1123 subdomain; our names are labels).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# KServe's own rules, from its Go code rather than the schema: the protocols a runtime
# or an InferenceService may name, and the InferenceService name format.
KSERVE_PROTOCOLS = {"v1", "v2", "grpc-v1", "grpc-v2"}
ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SCHEMA_KEYWORDS_ONE = ("items", "additionalProperties", "not")
SCHEMA_KEYWORDS_MANY = ("allOf", "anyOf", "oneOf")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields refused, as the API server's strict field
    validation does (see the module docstring)."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {name: strict(s) for name, s in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in SCHEMA_KEYWORDS_ONE:
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in SCHEMA_KEYWORDS_MANY:
        if key in out:
            out[key] = [strict(s) for s in out[key]]
    if out.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def load_validator(kind: str) -> jsonschema.Draft4Validator:
    data = json.loads((CRDS / SCHEMA_FILES[kind]).read_text(encoding="utf-8"))
    assert data["kind"] == kind
    source = data["source"]
    assert (
        source["repository"] and source["path"] and re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    )
    schema = strict(data["openAPIV3Schema"])
    schema["required"] = sorted({"apiVersion", "kind", "metadata", *schema.get("required", [])})
    schema["properties"]["apiVersion"] = {"enum": [f"{data['group']}/{data['version']}"]}
    schema["properties"]["kind"] = {"enum": [kind]}
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "additionalProperties": False,
    }
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=FORMATS)


VALIDATORS = {kind: load_validator(kind) for kind in SCHEMA_FILES}


def errors(obj: dict[str, Any], kind: str | None = None) -> list[str]:
    """Every schema violation in `obj` (validated as a `kind`, by default its own),
    as "path: message" lines."""
    validator = VALIDATORS[kind or obj["kind"]]
    return [
        "/".join(str(p) for p in e.absolute_path) + ": " + e.message
        for e in validator.iter_errors(obj)
    ]


def generate(tmp_path: Path, capsys: pytest.CaptureFixture[str], *options: str) -> str:
    """What `unitserve manifest demo --image … OPTIONS --print` writes, in-process."""
    folder = tmp_path / "demo"
    folder.mkdir(exist_ok=True)
    capsys.readouterr()
    image = "registry:5000/team/demo:1.2"
    code = main(["manifest", str(folder), "--image", image, *options, "--print"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


SELDON_OPTIONS = [
    (),
    ("--target", "seldon"),
    *(("--type", kind) for kind in manifest.GRAPH_TYPES),
    ("--transport", "grpc"),
    ("--replicas", "0"),
    ("--replicas", "3", "--cpu", "2", "--memory", "2Gi", "--name", "scorer"),
    ("--type", "router", "--name", "a-long-name-" * 5, "--transport", "rest", "--cpu", "0.5"),
]
KSERVE_OPTIONS = [
    (),
    *(("--type", kind) for kind in manifest.OIP_TYPES),
    ("--replicas", "0"),
    ("--replicas", "3", "--cpu", "2", "--memory", "2Gi", "--name", "scorer"),
    # The longest name: the runtime's name must still be a valid label.
    ("--name", "m" + "-x" * 31),
]


# ------------------------------------------------------------------ the schemas load


def test_the_schemas_are_the_real_ones():
    """The stored schemas hold what the upstream CRDs define (a truncated or
    wrong file would pass nothing, or everything)."""
    sdep = cast(dict[str, Any], VALIDATORS["SeldonDeployment"].schema)["properties"]["spec"]
    assert {"predictors", "protocol"} <= set(sdep["properties"])
    runtime = cast(dict[str, Any], VALIDATORS["ServingRuntime"].schema)["properties"]["spec"]
    assert "containers" in runtime["required"]
    assert {"supportedModelFormats", "protocolVersions"} <= set(runtime["properties"])
    isvc = cast(dict[str, Any], VALIDATORS["InferenceService"].schema)["properties"]["spec"]
    assert "predictor" in isvc["required"]
    model = isvc["properties"]["predictor"]["properties"]["model"]
    assert {"modelFormat", "runtime", "protocolVersion"} <= set(model["properties"])


# ------------------------------------------------------------------ seldon


@pytest.mark.parametrize("options", SELDON_OPTIONS, ids=" ".join)
def test_seldon_manifests_match_the_crd(tmp_path, capsys, options):
    [sdep] = documents(generate(tmp_path, capsys, *options))
    assert sdep["kind"] == "SeldonDeployment"
    assert errors(sdep) == []


# ------------------------------------------------------------------ graphs

GRAPHS = Path(__file__).resolve().parents[1] / "fixtures" / "graphs"


@pytest.mark.parametrize("transport", [[], ["--transport", "GRPC"]], ids=["default", "grpc"])
def test_a_graphs_manifest_matches_the_crd(capsys, transport):
    capsys.readouterr()
    yaml_file = GRAPHS / "chain" / "graph.yaml"
    images = ["--image", "input=reg/input:1", "--image", "output=reg/output:1"]
    code = main(["manifest", str(yaml_file), *images, *transport, "--print"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [sdep] = documents(captured.out)
    assert errors(sdep) == []
    [predictor] = sdep["spec"]["predictors"]
    pods = [c["spec"]["containers"] for c in predictor["componentSpecs"]]
    # a pod per node; the model keeps the image the file gives it
    assert {c[0]["name"]: c[0]["image"] for c in pods} == {
        "output": "reg/output:1",
        "input": "reg/input:1",
        "model": "example/model:0.1",
    }
    graph = predictor["graph"]
    kind = "GRPC" if transport else "REST"
    assert graph["name"] == "output" and graph["endpoint"] == {"type": kind}
    assert graph["children"][0]["children"][0]["name"] == "model"


def test_a_graphs_manifest_keeps_the_node_containers_env(tmp_path, capsys):
    text = (GRAPHS / "chain" / "graph.yaml").read_text()
    text = text.replace(
        "image: example/model:0.1",
        "image: example/model:0.1\n          env: [{name: MODEL_METADATA, value: '{name: m}'}]",
    )
    for node in ("input", "output", "model"):
        (tmp_path / node).symlink_to(GRAPHS / "chain" / node)
    (tmp_path / "graph.yaml").write_text(text)
    images = ["--image", "input=i:1", "--image", "output=o:1"]
    assert main(["manifest", str(tmp_path / "graph.yaml"), *images]) == 0
    [sdep] = documents((tmp_path / manifest.SELDON_FILE).read_text())
    assert errors(sdep) == []
    model = next(
        c["spec"]["containers"][0]
        for c in sdep["spec"]["predictors"][0]["componentSpecs"]
        if c["spec"]["containers"][0]["name"] == "model"
    )
    assert {"name": "MODEL_METADATA", "value": "{name: m}"} in model["env"]


@pytest.mark.parametrize(
    "options, words",
    [
        ([], "node 'output': no image (give --image output=IMAGE"),
        (["--image", "nope=x:1"], "the graph has no node named 'nope'"),
        (["--image", "x:1"], "a graph's images are given as NODE=IMAGE"),
        (["--target", "kserve"], "a graph deploys as a SeldonDeployment"),
    ],
)
def test_graph_manifest_mistakes_are_one_line(capsys, options, words):
    capsys.readouterr()
    code = main(["manifest", str(GRAPHS / "chain" / "graph.yaml"), *options, "--print"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and words in err, err


# ------------------------------------------------------------------ kserve


@pytest.mark.parametrize("options", KSERVE_OPTIONS, ids=" ".join)
def test_kserve_manifests_match_the_crds(tmp_path, capsys, options):
    text = generate(tmp_path, capsys, "--target", "kserve", *options)
    runtime, isvc = documents(text)
    assert (runtime["kind"], isvc["kind"]) == ("ServingRuntime", "InferenceService")
    assert errors(runtime) == []
    assert errors(isvc) == []
    check_kserve_rules(runtime, isvc)


def check_kserve_rules(runtime: dict[str, Any], isvc: dict[str, Any]) -> None:
    """What KServe's controller checks beyond the schema, and what we promise."""
    name = isvc["metadata"]["name"]
    assert ISVC_NAME.match(name) and len(name) <= 63
    assert len(runtime["metadata"]["name"]) <= 63
    spec = runtime["spec"]
    protocols = spec["protocolVersions"]
    assert set(protocols) <= KSERVE_PROTOCOLS
    assert "v1" not in protocols and "grpc-v1" not in protocols  # not spoken by unitserve
    assert {"v2", "grpc-v2"} <= set(protocols)
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] == "v2" and model["protocolVersion"] in protocols
    assert model["modelFormat"] in [
        {"name": f["name"], "version": f["version"]} for f in spec["supportedModelFormats"]
    ]
    [container] = spec["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"] == "registry:5000/team/demo:1.2"
    # KServe fills the runtime's placeholders from the InferenceService's metadata.
    resolved = json.loads(json.dumps(container).replace("{{.Name}}", name))
    command = resolved["command"] + resolved["args"]
    assert command[:2] == ["unitserve", "serve"]
    flags = dict(zip(command[2::2], command[3::2], strict=True))
    assert flags == {"--http-port": "8080", "--model-name": name}
    for probe, path in (
        ("livenessProbe", "/v2/health/live"),
        ("readinessProbe", "/v2/health/ready"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": 8080}
    predictor = isvc["spec"]["predictor"]
    if predictor.get("maxReplicas"):
        assert predictor["minReplicas"] <= predictor["maxReplicas"]


def test_kserve_writes_one_file_with_both_objects(tmp_path, capsys):
    folder = tmp_path / "demo"
    folder.mkdir()
    assert main(["manifest", str(folder), "--image", "demo:0.1", "--target", "kserve"]) == 0
    text = (folder / "inferenceservice.yaml").read_text()
    assert text.startswith("# Generated by `unitserve manifest --target kserve`")
    assert [d["kind"] for d in documents(text)] == ["ServingRuntime", "InferenceService"]
    assert not (folder / "seldondeployment.yaml").exists()
    # Regenerating replaces our own file.
    assert main(["manifest", str(folder), "--image", "demo:0.2", "--target", "kserve"]) == 0
    assert "demo:0.2" in (folder / "inferenceservice.yaml").read_text()


@pytest.mark.parametrize(
    ("options", "text"),
    [
        (("--type", "router"), "a ROUTER cannot be served on its own by KServe"),
        (("--type", "combiner"), "a COMBINER cannot be served on its own by KServe"),
        (("--transport", "grpc"), "--transport is for --target seldon"),
        (("--name", "1model"), "'1model' is not an InferenceService name"),
    ],
)
def test_kserve_mistakes_are_one_line(tmp_path, capsys, options, text):
    folder = tmp_path / "demo"
    folder.mkdir()
    argv = ["manifest", str(folder), "--image", "x:1", "--target", "kserve", *options]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("unitserve manifest: error: ") and text in err
    assert err.count("\n") == 1
    assert not (folder / "inferenceservice.yaml").exists()


# ------------------------------------------------------------------ negative controls


def _set(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value


_DELETE = object()
_SDEP_CONTAINER = "spec.predictors.0.componentSpecs.0.spec.containers.0"
_RUNTIME_CONTAINER = "spec.containers.0"


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        # A misspelt field, anywhere: refused like the API server's strict validation.
        ("SeldonDeployment", f"{_SDEP_CONTAINER}.readinesProbe", {}),
        ("SeldonDeployment", "spec.predictors.0.replicas", "3"),
        ("SeldonDeployment", f"{_SDEP_CONTAINER}.resources.requests.memory", "512 MB"),
        ("SeldonDeployment", f"{_SDEP_CONTAINER}.ports.0.containerPort", 2**31),
        ("SeldonDeployment", "spec.predictors.0.graph.name", _DELETE),
        ("SeldonDeployment", "apiVersion", "machinelearning.seldon.io/v2"),
        ("SeldonDeployment", "metadata.name", "Not_A_Name"),
        ("ServingRuntime", "spec.containers", _DELETE),
        ("ServingRuntime", "spec.protocolVersions", "v2"),
        ("ServingRuntime", "spec.supportedModelFormats.0.priority", 0),
        ("ServingRuntime", f"{_RUNTIME_CONTAINER}.args", "--http-port 8080"),
        ("ServingRuntime", f"{_RUNTIME_CONTAINER}.livenessProbe.httpGet.path", 8080),
        ("ServingRuntime", "kind", "ClusterServingRuntime"),
        ("InferenceService", "spec.predictor", _DELETE),
        ("InferenceService", "spec.predictor.model.modelFormat.name", _DELETE),
        ("InferenceService", "spec.predictor.model.protocolVersions", ["v2"]),
        ("InferenceService", "spec.predictor.minReplicas", -1.5),
        ("InferenceService", "apiVersion", "serving.kserve.io/v1alpha1"),
    ],
)
def test_a_broken_manifest_fails_validation(kind, path, value):
    if kind == "SeldonDeployment":
        [obj] = [manifest.seldon_deployment("demo", "demo:0.1", "MODEL")]
    else:
        [obj] = [o for o in manifest.kserve_manifests("demo", "demo:0.1") if o["kind"] == kind]
    assert errors(obj) == []  # the control: valid before it is broken
    broken = copy.deepcopy(obj)
    _set(broken, path, value)
    found = errors(broken, kind)
    assert found, f"{kind} with {path} = {value!r} passed validation"
    # Refused for the field we broke, not for something else.
    where = "/".join(path.split(".")[:-1])
    assert any(e.startswith(where) for e in found), found
