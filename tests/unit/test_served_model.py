"""A served model's lifecycle and the registry of them, in-process: load, failure with
its reason, unload releasing the user object, load again, and repository operations
going through the control channel."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from unitserve.errors import ModelLoadFailed, NotReady, UnknownModel
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry, RegistryHooks
from unitserve.models.served_model import COMPONENT_API, ServedModel
from unitserve.models.state import FAILED, LOADING, READY, UNLOADED
from unitserve.protocol.seldon.json_codec import JsonCodec
from unitserve.runtime.control import LocalChannel


class Model:
    loads = 0

    def load(self) -> None:
        type(self).loads += 1
        self.weights = list(range(1000))

    def predict(self, X: Any, names: Any) -> Any:
        return X


class Broken:
    def load(self) -> None:
        raise RuntimeError("no weights")

    def predict(self, X: Any, names: Any) -> Any:
        return X


def run(coroutine_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coroutine_fn())  # type: ignore[arg-type]


def served(user: Any, name: str = "m", **options: Any) -> ServedModel:
    return ServedModel(
        ModelSettings(type(user).__name__, name=name), user, factory=type(user), **options
    )


def test_load_marks_ready_and_builds_metadata() -> None:
    async def scenario() -> None:
        model = served(Model())
        assert model.state.status == LOADING
        assert await model.load()
        assert model.state.status == READY and model.state.is_ready
        assert model.metadata is not None and model.metadata["inputs"] == []
        model.close()

    run(scenario)


def test_a_component_answers_for_itself_whatever_the_name() -> None:
    """Seldon's wrapper answers ModelMetadata for any name with its own: a component is
    one model, served with the component API (a deployment's are its members')."""

    class Healthy(Model):
        def health_status(self) -> Any:
            return {"ok": 1}

    class Probe:
        codec = JsonCodec()

        def read(self) -> None:
            return None

    async def scenario() -> None:
        model = served(Healthy())
        assert model.seldon_api == COMPONENT_API
        assert await model.load()
        assert model.member_metadata("anything") is model.metadata
        status, body = await model.member_status("anything", Probe())
        assert (status, orjson.loads(body)["jsonData"]) == (200, {"ok": 1})
        model.close()

    run(scenario)


def test_a_failed_load_says_why_and_requests_are_not_ready() -> None:
    async def scenario() -> None:
        model = served(Broken())
        assert not await model.load()
        assert model.state.status == FAILED
        assert model.state.reason == "load() of Broken failed: this worker cannot serve"
        with pytest.raises(NotReady, match="load\\(\\) of Broken failed"):
            model.require_ready()
        model.close()

    run(scenario)


def test_unload_releases_the_user_object_and_load_builds_it_again() -> None:
    async def scenario() -> weakref.ref[Any]:
        Model.loads = 0
        model = served(Model())
        await model.load()
        first = weakref.ref(model.user)
        await model.unload()
        assert model.state.status == UNLOADED and model.user is None
        with pytest.raises(NotReady, match="unloaded through the repository extension"):
            model.require_ready()
        assert await model.load()
        assert model.user is not None and model.user is not first()
        assert Model.loads == 2  # the new object's load() ran
        model.close()
        return first

    first = run(scenario)
    gc.collect()
    assert first() is None  # nothing kept the unloaded object alive


class RecordingChannel:
    """A control channel that runs the handler itself and remembers each broadcast,
    as the supervisor's channel runs it in every worker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.handler: Any = None

    def set_handler(self, handler: Any) -> None:
        self.handler = handler

    async def broadcast(
        self, op: str, args: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        self.sent.append((op, args))
        return await self.handler(op, args)


class RecordingHooks(RegistryHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def model_loaded(self, model: ServedModel) -> None:
        self.events.append(("loaded", model.name))

    def model_unloaded(self, model: ServedModel) -> None:
        self.events.append(("unloaded", model.name))


def test_repository_operations_go_through_the_channel_and_the_hooks() -> None:
    async def scenario() -> None:
        channel, hooks = RecordingChannel(), RecordingHooks()
        registry = ModelRegistry(channel, hooks)
        a = registry.add(served(Model(), "a"))
        registry.add(served(Model(), "b"))
        assert registry.default is a
        assert await registry.start() and registry.ready
        await registry.unload("b")
        assert not registry.ready and registry.get("b").user is None
        await registry.load("b")
        assert registry.ready
        assert channel.sent == [("unload", {"name": "b"}), ("load", {"name": "b"})]
        assert hooks.events == [
            ("loaded", "a"),
            ("loaded", "b"),
            ("unloaded", "b"),
            ("loaded", "b"),
        ]
        with pytest.raises(UnknownModel, match="this server serves 'a', 'b'"):
            await registry.unload("c")
        assert len(channel.sent) == 2  # an unknown name is refused before any broadcast
        registry.close()

    run(scenario)


def test_a_load_that_fails_again_is_refused_saying_why() -> None:
    async def scenario() -> None:
        registry = ModelRegistry(LocalChannel())
        registry.add(served(Broken(), "broken"))
        assert not await registry.start()
        with pytest.raises(ModelLoadFailed, match="'broken' cannot be loaded: load\\(\\) of"):
            await registry.load("broken")
        registry.close()

    run(scenario)


def test_two_loads_at_once_build_one_object() -> None:
    async def scenario() -> None:
        Model.loads = 0
        model = served(Model())
        await model.load()
        await model.unload()
        results = await asyncio.gather(model.load(), model.load())
        assert results == [True, True]
        assert Model.loads == 2  # the first object's load() and one more, not two more
        model.close()

    run(scenario)


def test_model_settings_come_from_the_flags_or_a_plain_constructor() -> None:
    import argparse

    from unitserve.settings import resolve

    flags = argparse.Namespace(model_name="iris", model_version="3", max_batch_size=8)
    env = {"MODEL_METADATA": "{name: iris}", "PREDICTIVE_UNIT_IMAGE": "img:1"}
    of_flags = ModelSettings.of(resolve(flags, env, "pkg.models.Iris"), {"depth": 3})
    assert (of_flags.implementation, of_flags.served_name, of_flags.version) == (
        "pkg.models.Iris",
        "iris",
        "3",
    )
    assert of_flags.max_batch_size == 8 and dict(of_flags.parameters) == {"depth": 3}
    assert (of_flags.metadata, of_flags.image) == ("{name: iris}", "img:1")
    plain = ModelSettings("SKLEARN_SERVER", uri="file:///models/iris")
    assert plain.served_name == "SKLEARN_SERVER" and plain.uri == "file:///models/iris"
    assert ModelSettings("pkg.models.Iris").served_name == "Iris"
