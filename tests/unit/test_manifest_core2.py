"""`unitserve manifest DIR --target seldon-core-2`: the Server and Model it writes,
validated against Seldon Core 2's CRD schemas (Model, Server, ServerConfig; see
tests/data/crds/README.md), and checked against MLServer's ServerConfig that the
Server builds on (stored beside them, unchanged)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest
import yaml

from unitserve.cli.main import main
from unitserve.cli.manifest import core2 as manifest_core2
from unitserve.repository import read_server_settings, scan

from .test_manifest_crds import DNS_SUBDOMAIN, FORMATS, strict

CRDS = Path(__file__).resolve().parents[1] / "data" / "crds"
SCHEMA_FILES = {
    "Model": "model-v1alpha1.json",
    "Server": "server-v1alpha1.json",
    "ServerConfig": "serverconfig-v1alpha1.json",
}
IMAGE = "registry:5000/team/unitserve-server:1.2"
STORAGE = "gs://bucket/models/demo"


def load_validator(kind: str) -> jsonschema.Draft4Validator:
    data = json.loads((CRDS / SCHEMA_FILES[kind]).read_text(encoding="utf-8"))
    assert data["kind"] == kind and data["group"] == "mlops.seldon.io"
    source = data["source"]
    assert source["repository"] == "SeldonIO/seldon-core"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
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
        },
        "additionalProperties": False,
    }
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=FORMATS)


VALIDATORS = {kind: load_validator(kind) for kind in SCHEMA_FILES}


def errors(obj: dict[str, Any]) -> list[str]:
    return [
        "/".join(str(p) for p in e.absolute_path) + ": " + e.message
        for e in VALIDATORS[obj["kind"]].iter_errors(obj)
    ]


def mlserver_server_config() -> dict[str, Any]:
    [config] = [
        d
        for d in yaml.safe_load_all((CRDS / "mlserver-serverconfig.yaml").read_text())
        if d is not None
    ]
    return config


def component(tmp_path: Path, model_name: str = "MyModel") -> Path:
    folder = tmp_path / "demo"
    (folder / ".s2i").mkdir(parents=True)
    (folder / ".s2i" / "environment").write_text(f"MODEL_NAME={model_name}\n")
    (folder / f"{model_name}.py").write_text(
        f"class {model_name}:\n    def predict(self, X, names):\n        return X\n"
    )
    return folder


def run(folder: Path, *options: str) -> int:
    return main(["manifest", str(folder), "--image", IMAGE, "--target", "seldon-core-2", *options])


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# ----------------------------------------------------------------------------- schemas


def test_the_schemas_are_the_real_ones() -> None:
    model = cast(dict[str, Any], VALIDATORS["Model"].schema)["properties"]["spec"]
    assert model["required"] == ["storageUri"]
    assert {"requirements", "memory", "parameters", "server"} <= set(model["properties"])
    server = cast(dict[str, Any], VALIDATORS["Server"].schema)["properties"]["spec"]
    assert server["required"] == ["serverConfig"]
    assert {"capabilities", "podSpec", "replicas"} <= set(server["properties"])
    assert (
        "podSpec"
        in cast(dict[str, Any], VALIDATORS["ServerConfig"].schema)["properties"]["spec"][
            "properties"
        ]
    )


def test_mlservers_server_config_is_valid_and_names_the_container_replaced() -> None:
    config = mlserver_server_config()
    assert errors(config) == []
    assert config["metadata"]["name"] == manifest_core2.SERVER_CONFIG
    names = [c["name"] for c in config["spec"]["podSpec"]["containers"]]
    assert manifest_core2.SERVER_CONTAINER in names


def test_unitserve_honours_every_mlserver_variable_of_the_server_config(tmp_path: Path) -> None:
    """The ServerConfig's values work unchanged: each MLSERVER_* variable it sets on the
    server container is one unitserve reads, with the value MLServer would use."""
    [server] = [
        c
        for c in mlserver_server_config()["spec"]["podSpec"]["containers"]
        if c["name"] == manifest_core2.SERVER_CONTAINER
    ]
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["MLSERVER_MODELS_DIR"] == "/mnt/agent/models"
    env["MLSERVER_MODELS_DIR"] = str(tmp_path)  # the agent's folder, here
    settings = read_server_settings(env=env)
    used = {origin for origin in settings.origins.values() if origin.startswith("MLSERVER_")}
    assert used == {k for k in env if k.startswith("MLSERVER_")}
    ports = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert (settings.http_port, settings.grpc_port, settings.metrics_port) == (
        ports["server-http"],
        ports["server-grpc"],
        ports["server-metrics"],
    )
    assert settings.load_models_at_startup is False
    assert settings.grpc_max_message_length == 1048576000


# ----------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize(
    "options",
    [(), ("--name", "income-classifier", "--replicas", "3", "--memory", "2Gi"),
     ("--server", "unitserve-gpu", "--replicas", "0")],
    ids=["default", "named", "server"],
)  # fmt: skip
def test_the_server_and_model_match_core2s_crds(tmp_path: Path, options: tuple[str, ...]) -> None:
    folder = component(tmp_path)
    assert run(folder, "--storage-uri", STORAGE, *options) == 0
    server, model = documents(folder / manifest_core2.CORE2_FILE)
    assert (server["kind"], model["kind"]) == ("Server", "Model")
    assert errors(server) == [] and errors(model) == []
    assert server["spec"]["serverConfig"] == "mlserver"
    assert server["spec"]["podSpec"]["containers"] == [{"name": "mlserver", "image": IMAGE}]
    assert model["spec"]["storageUri"] == STORAGE
    assert set(model["spec"]["requirements"]) <= set(server["spec"]["capabilities"])


def test_the_model_settings_written_make_the_folder_a_repository_model(tmp_path: Path) -> None:
    folder = component(tmp_path)
    assert run(folder, "--storage-uri", STORAGE) == 0
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings == {"name": "demo", "implementation": "MyModel", "parameters": {"extra": {}}}
    [model] = scan(folder, env={})
    assert (model.name, model.class_path, model.error) == ("demo", "MyModel.MyModel", None)
    # Run again: the manifest is replaced, the settings file (now the user's) is kept.
    (folder / "model-settings.json").write_text(json.dumps({**settings, "name": "mine"}))
    assert run(folder, "--storage-uri", STORAGE) == 0
    assert json.loads((folder / "model-settings.json").read_text())["name"] == "mine"


def test_print_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = component(tmp_path)
    assert run(folder, "--storage-uri", STORAGE, "--print") == 0
    out = capsys.readouterr().out
    assert [d["kind"] for d in yaml.safe_load_all(out) if d] == ["Server", "Model"]
    assert sorted(p.name for p in folder.iterdir()) == [".s2i", "MyModel.py"]


@pytest.mark.parametrize(
    ("setup", "options", "words"),
    [
        ("component", (), "needs --storage-uri"),
        ("component", ("--storage-uri", STORAGE, "--type", "ROUTER"),
         "a ROUTER cannot be a Core 2 Model on its own"),
        ("component", ("--storage-uri", STORAGE, "--transport", "GRPC"),
         "--transport is for --target seldon"),
        ("no class", ("--storage-uri", STORAGE), "nothing says which class to serve"),
        ("bad settings", ("--storage-uri", STORAGE), "there is no implementation"),
    ],
)  # fmt: skip
def test_mistakes_are_refused_with_a_sentence(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    options: tuple[str, ...],
    words: str,
) -> None:
    if setup == "component":
        folder = component(tmp_path)
    else:
        folder = tmp_path / "demo"
        folder.mkdir()
        if setup == "bad settings":
            (folder / "model-settings.json").write_text('{"name": "demo"}')
    capsys.readouterr()
    assert run(folder, *options) == 1
    err = capsys.readouterr().err
    assert err.startswith("unitserve manifest: error: ") and words in err, err
    assert not (folder / manifest_core2.CORE2_FILE).exists()
