"""A registry whose models come from a models folder (`unitserve start`'s), in-process
with the worker's local control channel: loads by name read the folder afresh, the
index lists what is found, unloads forget, and a failure leaves the others serving."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from unitserve.errors import ModelLoadFailed, UnknownModel
from unitserve.models.dataplane import DataPlane
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.runtime.control import LocalChannel
from unitserve.runtime.repository_source import RepositorySource

SCALER = """
class Scaler:
    def __init__(self, factor=1):
        self.factor = factor

    def predict(self, X, names):
        return X * self.factor
"""


def run(coroutine_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coroutine_fn())  # type: ignore[arg-type]


def add_model(root: Path, folder: str, settings: dict[str, Any], code: str = SCALER) -> Path:
    where = root / folder
    where.mkdir(parents=True)
    (where / "scaler.py").write_text(code)
    (where / "model-settings.json").write_text(json.dumps(settings))
    return where


def scaler(name: str, factor: int = 2) -> dict[str, Any]:
    return {
        "name": name,
        "implementation": "scaler.Scaler",
        "parameters": {"extra": {"factor": factor}},
    }


def registry_of(root: Path) -> ModelRegistry:
    def make(settings: ModelSettings, factory: Callable[[], Any]) -> ServedModel:
        return ServedModel(settings, factory=factory)

    registry = ModelRegistry(LocalChannel())
    registry.source = RepositorySource(root, make, env={})
    return registry


async def states(plane: DataPlane) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["state"], e["reason"]) for e in await plane.repository_index()}


async def predict(registry: ModelRegistry, name: str) -> Any:
    model = registry.get(name)
    assert model.user is not None
    return model.user.predict(3, [])


def test_load_by_name_builds_from_the_folder_with_extra_as_parameters(tmp_path: Path) -> None:
    add_model(tmp_path, "a", scaler("a", factor=5))
    add_model(tmp_path, "b", scaler("b"))

    async def scenario() -> None:
        registry = registry_of(tmp_path)
        plane = DataPlane(registry)
        assert await states(plane) == {"a": ("UNAVAILABLE", ""), "b": ("UNAVAILABLE", "")}
        with pytest.raises(UnknownModel):
            registry.get("a")  # found, but not loaded
        await plane.load("a")
        assert await predict(registry, "a") == 15
        await plane.load("a")  # idempotent: the same object serves
        assert await states(plane) == {"a": ("READY", ""), "b": ("UNAVAILABLE", "")}
        assert await plane.repository_index(True) == [{"name": "a", "state": "READY", "reason": ""}]
        registry.close()

    run(scenario)


def test_unload_forgets_and_a_second_unload_is_unknown(tmp_path: Path) -> None:
    add_model(tmp_path, "a", scaler("a"))

    async def scenario() -> None:
        registry = registry_of(tmp_path)
        plane = DataPlane(registry)
        await plane.load("a")
        await plane.unload("a")
        with pytest.raises(UnknownModel):
            plane.inference_model("a", None)
        assert await states(plane) == {"a": ("UNAVAILABLE", "")}
        with pytest.raises(UnknownModel, match="unknown model 'a'"):
            await plane.unload("a")
        with pytest.raises(UnknownModel, match="no model of that name"):
            await plane.load("missing")
        registry.close()

    run(scenario)


def test_a_load_reads_the_folder_afresh(tmp_path: Path) -> None:
    folder = add_model(tmp_path, "a", scaler("a", factor=2))

    async def scenario() -> None:
        registry = registry_of(tmp_path)
        await registry.load("a")
        assert await predict(registry, "a") == 6
        await registry.unload("a")
        (folder / "model-settings.json").write_text(json.dumps(scaler("a", factor=10)))
        await registry.load("a")
        assert await predict(registry, "a") == 30
        registry.close()

    run(scenario)


def test_a_model_that_fails_is_unavailable_with_its_reason_and_others_serve(
    tmp_path: Path,
) -> None:
    add_model(tmp_path, "good", scaler("good"))
    add_model(tmp_path, "bad", scaler("bad"), code="raise RuntimeError('no weights here')\n")
    add_model(tmp_path, "odd", {"name": "odd", "implementation": "nowhere.Model"})
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "model-settings.json").write_text('{"name": "torn", ')  # not JSON

    async def scenario() -> None:
        registry = registry_of(tmp_path)
        plane = DataPlane(registry)
        assert await registry.start_source() == 1  # of four
        found = await states(plane)
        assert found["good"] == ("READY", "")
        assert found["bad"][0] == "UNAVAILABLE" and "no weights here" in found["bad"][1]
        assert found["odd"][0] == "UNAVAILABLE" and "no module 'nowhere'" in found["odd"][1]
        assert found["torn"][0] == "UNAVAILABLE" and "model-settings.json" in found["torn"][1]
        with pytest.raises(ModelLoadFailed, match="no weights here"):
            await plane.load("bad")
        assert await predict(registry, "good") == 6
        assert registry.ready  # a model that failed is listed, not served
        registry.close()

    run(scenario)


def test_an_mlserver_runtime_is_refused_in_one_sentence(tmp_path: Path) -> None:
    runtime = "from mlserver import MLModel\n\nclass Scaler(MLModel):\n    pass\n"
    add_model(tmp_path, "m", scaler("m"), code=runtime)

    async def scenario() -> None:
        registry = registry_of(tmp_path)
        with pytest.raises(ModelLoadFailed, match="MLServer custom runtime"):
            await registry.load("m")
        assert (await states(DataPlane(registry)))["m"][0] == "UNAVAILABLE"
        registry.close()

    run(scenario)


def test_mlservers_settings_become_the_servers(tmp_path: Path) -> None:
    from unitserve.repository import read_server_settings
    from unitserve.runtime.repository_server import server_settings

    env = {
        "MLSERVER_HTTP_PORT": "9100",
        "MLSERVER_GRPC_PORT": "9101",
        "MLSERVER_METRICS_PORT": "9102",
        "MLSERVER_PARALLEL_WORKERS": "0",
        "MLSERVER_GRPC_MAX_MESSAGE_LENGTH": "1048576000",
        "MLSERVER_DEBUG": "true",
    }
    settings = server_settings(read_server_settings(tmp_path, env))
    assert (settings.http_port, settings.grpc_port, settings.metrics_port) == (9100, 9101, 9102)
    assert settings.workers == 1  # MLServer's 0: no separate workers
    assert settings.grpc_max_message_size == settings.max_body_size == 1048576000
    assert settings.log_level == "DEBUG"
    (tmp_path / "settings.json").write_text('{"parallel_workers": 3, "debug": false}')
    settings = server_settings(read_server_settings(tmp_path, env))
    assert settings.workers == 3 and settings.log_level == "INFO"


def test_a_model_that_failed_is_indexed_with_its_version(tmp_path: Path) -> None:
    settings = {**scaler("bad_3"), "parameters": {"version": "3"}}
    add_model(tmp_path, "bad_3/1", settings, code="raise RuntimeError('no weights here')\n")

    async def scenario() -> None:
        registry = registry_of(tmp_path)
        plane = DataPlane(registry)
        with pytest.raises(ModelLoadFailed, match="no weights here"):
            await plane.load("bad_3")
        [entry] = await plane.repository_index()
        assert entry["name"] == "bad_3" and entry["version"] == "3"
        assert entry["state"] == "UNAVAILABLE" and "no weights here" in entry["reason"]
        await plane.unload("bad_3")  # forgets the failure: listed as found, unloaded
        assert await plane.repository_index() == [
            {"name": "bad_3", "version": "3", "state": "UNAVAILABLE", "reason": ""}
        ]
        registry.close()

    run(scenario)


def test_a_load_looks_at_the_folder_once_and_the_index_looks_off_the_loop(
    tmp_path: Path,
) -> None:
    """A look stats every folder and settings file (milliseconds in a folder of a
    thousand models): a load makes one, and the index's is made on a thread."""
    add_model(tmp_path, "a", scaler("a"))
    looks: list[str] = []

    async def scenario() -> None:
        registry = registry_of(tmp_path)
        assert isinstance(registry.source, RepositorySource)
        index = registry.source.index
        look = index._look

        def counted() -> None:
            looks.append(threading.current_thread().name)
            look()

        index._look = counted  # type: ignore[method-assign]
        loop_thread = threading.current_thread().name
        await registry.load("a")
        assert len(looks) == 1
        await registry.unload("a")
        await registry.load("a")  # built afresh from what the folder holds now
        assert len(looks) == 2
        with pytest.raises(UnknownModel, match="no model of that name"):
            await registry.load("missing")
        assert len(looks) == 3
        assert [e["name"] for e in await registry.index()] == ["a"]
        assert len(looks) == 4
        assert loop_thread not in looks
        registry.close()

    run(scenario)
