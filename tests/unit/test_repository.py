"""Reading a model repository in MLServer's format: settings, scanning, bad input."""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest

from unitserve.repository import (
    SELDON_CLASS,
    ImplementationError,
    RepositoryModel,
    SettingsError,
    find,
    is_mlserver_model,
    load_class,
    prepackaged_class_path,
    read_server_settings,
    scan,
)


def write(path: Path, value: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def model_folder(
    root: Path, folder: str, settings: Any, files: dict[str, str] | None = None
) -> Path:
    """A model's folder, as Core 2's agent writes it: files and model-settings.json."""
    for name, text in (files or {"model.joblib": "x"}).items():
        write(root / folder / name, text)
    return write(root / folder / "model-settings.json", settings)


SKLEARN = {
    "name": "iris_1",
    "implementation": "mlserver_sklearn.SKLearnModel",
    "parameters": {"uri": "./model.joblib", "version": "1", "extra": {"a": "1"}},
}

SELDON_MODULE = """
class MyModel:
    def __init__(self, threshold=0.5):
        self.threshold = float(threshold)

    def predict(self, X, names):
        return X
"""


# ----------------------------------------------------------------------------- one model


def test_a_core2_model_folder_is_found_by_the_name_in_its_settings(tmp_path: Path) -> None:
    model_folder(tmp_path, "iris_1/1", SKLEARN)
    [model] = scan(tmp_path, env={})
    assert model == RepositoryModel(
        name="iris_1",
        folder=tmp_path / "iris_1/1",
        settings_file=tmp_path / "iris_1/1/model-settings.json",
        version="1",
        implementation="mlserver_sklearn.SKLearnModel",
        interface="SKLEARN_SERVER",
        parameters={"a": "1"},
        uri=str((tmp_path / "iris_1/1/model.joblib").resolve()),
    )
    assert model.available
    assert [m.name for m in find(tmp_path, "iris_1", env={})] == ["iris_1"]
    assert find(tmp_path, "iris_1", version="1", env={})
    assert find(tmp_path, "iris_1", version="2", env={}) == []
    assert find(tmp_path, "iris", env={}) == []  # the folder's name is not the model's


@pytest.mark.parametrize(
    ("runtime", "server"),
    [
        ("mlserver_sklearn.SKLearnModel", "SKLEARN_SERVER"),
        ("mlserver_xgboost.XGBoostModel", "XGBOOST_SERVER"),
        ("mlserver_lightgbm.LightGBMModel", "LIGHTGBM_SERVER"),
        ("mlserver_mlflow.MLflowRuntime", "MLFLOW_SERVER"),
    ],
)
def test_mlservers_runtime_names_map_to_the_prepackaged_servers(
    tmp_path: Path, runtime: str, server: str
) -> None:
    model_folder(tmp_path, "m", {"name": "m", "implementation": runtime})
    [model] = scan(tmp_path, env={})
    assert (model.interface, model.class_path, model.error) == (server, None, None)
    assert model.uri == str((tmp_path / "m").resolve())  # no uri: the model's own folder


def test_every_key_of_model_settings_is_read(tmp_path: Path) -> None:
    tensor = {"name": "x", "datatype": "FP32", "shape": [-1, 4]}
    model_folder(
        tmp_path,
        "m",
        {
            "name": "m",
            "implementation": "mlserver_xgboost.XGBoostModel",
            "platform": "xgboost",
            "versions": ["xgboost/2.1.0"],
            "inputs": [tensor],
            "outputs": [{**tensor, "name": "y"}],
            "max_batch_size": 8,
            "max_batch_time": 0.05,
            "parameters": {
                "uri": "model.joblib",
                "version": 3,
                "content_type": "np",
                "format": "json",
            },
        },
    )
    [model] = scan(tmp_path, env={})
    assert model.error is None
    assert (model.platform, model.versions) == ("xgboost", ("xgboost/2.1.0",))
    assert model.inputs == (tensor,) and model.outputs[0]["name"] == "y"
    assert (model.max_batch_size, model.max_batch_time, model.max_batch_time_ms) == (8, 0.05, 50)
    assert (model.version, model.content_type, model.format) == ("3", "np", "json")


def test_without_a_name_the_model_is_named_after_its_folder(tmp_path: Path) -> None:
    model_folder(tmp_path, "income", {"implementation": "mlserver_sklearn.SKLearnModel"})
    assert [m.name for m in scan(tmp_path, env={})] == ["income"]


def test_a_seldon_class_found_in_the_models_folder(tmp_path: Path) -> None:
    model_folder(
        tmp_path,
        "mine",
        {"name": "mine", "implementation": "mymodel.MyModel",
         "parameters": {"extra": {"threshold": "0.7"}}},
        {"mymodel.py": SELDON_MODULE},
    )  # fmt: skip
    [model] = scan(tmp_path, env={})
    assert (model.interface, model.class_path, model.error) == (
        SELDON_CLASS,
        "mymodel.MyModel",
        None,
    )
    cls = load_class("mymodel.MyModel", model.folder)
    assert cls(**model.parameters).threshold == 0.7
    assert str(model.folder.resolve()) not in sys.path  # the import path is left as it was


def test_a_class_named_as_seldons_model_name_is_found_in_its_namesake_module(
    tmp_path: Path,
) -> None:
    model_folder(
        tmp_path,
        "mine",
        {"name": "mine", "implementation": "MyModel"},
        {"MyModel.py": SELDON_MODULE},
    )
    [model] = scan(tmp_path, env={})
    assert (model.class_path, model.error) == ("MyModel.MyModel", None)
    assert load_class("MyModel.MyModel", model.folder)().threshold == 0.5


def test_two_models_with_a_module_of_one_name_each_get_their_own(tmp_path: Path) -> None:
    for folder, answer in (("a", 1), ("b", 2)):
        model_folder(
            tmp_path,
            folder,
            {"name": folder, "implementation": "model.Model"},
            {"model.py": f"class Model:\n    answer = {answer}\n"},
        )
    a, b = scan(tmp_path, env={})
    assert cast(Any, load_class("model.Model", a.folder)).answer == 1
    assert cast(Any, load_class("model.Model", b.folder)).answer == 2
    assert cast(Any, load_class("model.Model", a.folder)).answer == 1


def test_models_imported_from_many_threads_each_get_their_own_class(tmp_path: Path) -> None:
    folders = []
    for i in range(8):
        model_folder(tmp_path, f"m{i}", {"name": f"m{i}", "implementation": "model.Model"},
                     {"model.py": f"class Model:\n    answer = {i}\n"})  # fmt: skip
        folders.append(tmp_path / f"m{i}")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda f: cast(Any, load_class("model.Model", f)).answer, folders * 4)
        )
    assert answers == list(range(8)) * 4


MLSERVER_RUNTIME = """
from mlserver import MLModel

class Runtime(MLModel):
    async def predict(self, payload):
        return payload
"""


def test_an_mlserver_custom_runtime_is_refused_with_one_sentence(tmp_path: Path) -> None:
    model_folder(
        tmp_path,
        "rt",
        {"name": "rt", "implementation": "runtime.Runtime"},
        {"runtime.py": MLSERVER_RUNTIME},
    )
    [model] = scan(tmp_path, env={})
    assert model.class_path == "runtime.Runtime"  # seen only once imported
    with pytest.raises(ImplementationError) as refused:
        load_class("runtime.Runtime", model.folder)
    words = str(refused.value)
    assert "is an MLServer custom runtime (it derives from mlserver.MLModel)" in words
    assert words.count(". ") == 0  # one sentence


def test_an_mlmodel_subclass_is_told_by_the_names_in_its_mro() -> None:
    mlserver_like = type("MLModel", (), {"__module__": "mlserver.model"})
    runtime = type("Runtime", (mlserver_like,), {})
    assert is_mlserver_model(runtime)
    assert not is_mlserver_model(type("MLModel", (), {"__module__": "mine"}))


def test_the_prepackaged_servers_are_looked_up_by_name_only_when_asked() -> None:
    try:
        from unitserve.servers import IMPLEMENTATIONS  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        with pytest.raises(ImplementationError, match="not part of this installation"):
            prepackaged_class_path("SKLEARN_SERVER")
    else:
        assert prepackaged_class_path("SKLEARN_SERVER") == IMPLEMENTATIONS["SKLEARN_SERVER"]
        with pytest.raises(ImplementationError, match="no prepackaged server NOPE"):
            prepackaged_class_path("NOPE")


# ----------------------------------------------------------------------------- bad input

BAD: list[tuple[str, Any, str]] = [
    ("broken JSON", '{"name": "m",', "is not JSON: "),
    ("not an object", "[1]", "must hold a JSON object"),
    ("no implementation", {"name": "m"}, "there is no implementation"),
    ("unknown MLServer runtime",
     {"name": "m", "implementation": "mlserver_huggingface.HuggingFaceRuntime"},
     "an MLServer runtime that unitserve has no server for"),
    ("no such module", {"name": "m", "implementation": "nowhere_at_all.Model"},
     "there is no module 'nowhere_at_all' in the model's folder"),
    ("not an import path", {"name": "m", "implementation": "my-model.Model"},
     "is not an import path"),
    ("missing model file",
     {"name": "m", "implementation": "mlserver_sklearn.SKLearnModel",
      "parameters": {"uri": "./gone.joblib"}}, "/bad/gone.joblib, which does not exist"),
    ("parameters not an object", {"name": "m", "implementation": "mlserver_sklearn.SKLearnModel",
                                  "parameters": []}, "parameters must be an object"),
    ("extra not an object", {"name": "m", "implementation": "mlserver_sklearn.SKLearnModel",
                             "parameters": {"extra": "a=1"}}, "parameters.extra must be an object"),
    ("bad batch size", {"name": "m", "implementation": "mlserver_sklearn.SKLearnModel",
                        "max_batch_size": "many"}, "max_batch_size must be a number"),
    ("bad inputs", {"name": "m", "implementation": "mlserver_sklearn.SKLearnModel",
                    "inputs": [{"name": "x"}]}, "inputs[0] needs datatype"),
]  # fmt: skip


@pytest.mark.parametrize(("settings", "words"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_model_is_unavailable_with_a_reason_and_the_others_are_read(
    tmp_path: Path, settings: Any, words: str
) -> None:
    model_folder(tmp_path, "bad", settings)
    model_folder(tmp_path, "good", SKLEARN)
    bad, good = scan(tmp_path, env={})
    assert not bad.available and words in (bad.error or ""), bad.error
    assert str(tmp_path / "bad" / "model-settings.json") in (bad.error or "")
    assert good.available and good.name == "iris_1"


def test_a_folder_without_model_settings_is_listed_unavailable(tmp_path: Path) -> None:
    write(tmp_path / "copied" / "1" / "model.joblib", "x")
    write(tmp_path / "settings.json", {})
    (tmp_path / "empty").mkdir()
    model_folder(tmp_path, "iris_1/1", SKLEARN)
    models = {m.name: m for m in scan(tmp_path, env={})}
    assert set(models) == {"copied", "iris_1"}
    assert "holds no model-settings.json" in (models["copied"].error or "")


def test_two_models_with_one_name_are_refused_naming_both_files(tmp_path: Path) -> None:
    first = model_folder(tmp_path, "a", SKLEARN)
    second = model_folder(tmp_path, "b", SKLEARN)
    model_folder(tmp_path, "c", {**SKLEARN, "parameters": {"version": "2"}})
    a, b, c = scan(tmp_path, env={})
    for model in (a, b):
        assert model.error == (
            f"model 'iris_1' version '1' is declared twice, by {first} and {second}: rename one"
        )
    assert c.available  # the same name in another version is another model


def test_unreadable_settings_file(tmp_path: Path) -> None:
    path = model_folder(tmp_path, "m", SKLEARN)
    path.write_bytes(b"\xff\xfe{")
    [model] = scan(tmp_path, env={})
    assert model.error == f"{path} is not UTF-8 text"


# ----------------------------------------------------------------------------- environment


def test_model_variables_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    model_folder(tmp_path, "m", {"name": "m", "parameters": {"version": "2"}})
    env = {
        "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_lightgbm.LightGBMModel",
        "MLSERVER_MODEL_VERSION": "9",
        "MLSERVER_MODEL_EXTRA": '{"k": "v"}',
        "MLSERVER_MODEL_MAX_BATCH_SIZE": "4",
    }
    [model] = scan(tmp_path, env=env)
    assert (model.interface, model.version, model.parameters, model.max_batch_size) == (
        "LIGHTGBM_SERVER",
        "2",  # the file wins
        {"k": "v"},
        4,
    )


def test_single_model_mode_from_the_environment_alone(tmp_path: Path) -> None:
    write(tmp_path / "model.joblib", "x")
    env = {
        "MLSERVER_MODEL_NAME": "solo",
        "MLSERVER_MODEL_IMPLEMENTATION": "mlserver_sklearn.SKLearnModel",
        "MLSERVER_MODEL_URI": "model.joblib",
    }
    [model] = scan(tmp_path, env=env)
    assert (model.name, model.interface, model.settings_file) == ("solo", "SKLEARN_SERVER", None)
    assert model.uri == str((tmp_path / "model.joblib").resolve())
    assert scan(tmp_path, env={}) == []
    [bad] = scan(tmp_path, env={**env, "MLSERVER_MODEL_EXTRA": "{"})
    assert bad.error == "MLSERVER_MODEL_EXTRA is not JSON: '{'"


# ----------------------------------------------------------------------------- the server


CORE2_SERVER_ENV = {  # the server container's variables in Core 2's MLServer ServerConfig
    "MLSERVER_HTTP_PORT": "9000",
    "MLSERVER_GRPC_PORT": "9500",
    "MLSERVER_MODELS_DIR": "",  # set per test
    "MLSERVER_PARALLEL_WORKERS": "1",
    "MLSERVER_LOAD_MODELS_AT_STARTUP": "false",
    "MLSERVER_GRPC_MAX_MESSAGE_LENGTH": "1048576000",
    "MLSERVER_DEBUG": "false",
}


def test_core2s_server_config_variables_work_unchanged(tmp_path: Path) -> None:
    settings = read_server_settings(env={**CORE2_SERVER_ENV, "MLSERVER_MODELS_DIR": str(tmp_path)})
    assert settings.models_dir == tmp_path
    assert (settings.http_port, settings.grpc_port, settings.metrics_port) == (9000, 9500, 8082)
    assert (settings.parallel_workers, settings.load_models_at_startup, settings.debug) == (
        1,
        False,
        False,
    )
    assert settings.grpc_max_message_length == 1048576000
    assert settings.origins["http_port"] == "MLSERVER_HTTP_PORT"
    assert "http_port=9000 (MLSERVER_HTTP_PORT)" in settings.described()


def test_settings_json_wins_over_the_environment_and_the_folder_argument_over_both(
    tmp_path: Path,
) -> None:
    write(tmp_path / "settings.json", {"http_port": 7000, "debug": True, "kafka_enabled": False})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"MLSERVER_HTTP_PORT": "9000", "MLSERVER_GRPC_PORT": "9500",
           "MLSERVER_MODELS_DIR": str(elsewhere)}  # fmt: skip
    settings = read_server_settings(tmp_path, env)
    assert settings.models_dir == tmp_path
    assert (settings.http_port, settings.grpc_port, settings.debug) == (7000, 9500, True)
    assert settings.origins["http_port"] == "settings.json"
    assert settings.ignored == ("kafka_enabled",)


def test_without_a_folder_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_server_settings(env={}).models_dir == Path(os.getcwd())
    assert read_server_settings(env={}).http_port == 8080


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MLSERVER_HTTP_PORT": "http"},
         "http_port from MLSERVER_HTTP_PORT is 'http': it must be a whole number"),
        ({"MLSERVER_GRPC_PORT": "70000"}, "it must be a port number"),
        ({"MLSERVER_DEBUG": "maybe"},
         "debug from MLSERVER_DEBUG is 'maybe': it must be true or false"),
        ({"MLSERVER_PARALLEL_WORKERS": "-1"}, "must be 0 or more"),
    ],
)  # fmt: skip
def test_a_bad_variable_is_refused_naming_it(
    tmp_path: Path, env: dict[str, str], words: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        read_server_settings(tmp_path, env)
    assert words in str(refused.value)


def test_bad_settings_json_and_missing_folder(tmp_path: Path) -> None:
    write(tmp_path / "settings.json", "{")
    with pytest.raises(SettingsError, match=r"settings\.json is not UTF-8 JSON"):
        read_server_settings(tmp_path, {})
    with pytest.raises(SettingsError, match="is not a folder"):
        read_server_settings(tmp_path / "nope", {})
