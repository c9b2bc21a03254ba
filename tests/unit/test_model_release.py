"""An unloaded model's memory goes at once, and a full garbage collection runs only
when the model's own objects hold one another (in-process, with the cyclic collector
switched off so that only the unload can free what it frees)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from unitserve.calls import Offloader
from unitserve.models.model_settings import ModelSettings
from unitserve.models.release import let_go, on_a_thread, tracker, trim_heap
from unitserve.models.served_model import ServedModel
from unitserve.protocol.seldon.json_codec import JsonCodec


class Weights:
    """What a model's large arrays stand for: watched through a weak reference."""


class Model:
    def __init__(self) -> None:
        self.weights: Weights | None = None

    def load(self) -> None:
        self.weights = Weights()

    def predict(self, X: Any, names: Any) -> Any:
        return X

    def init_metadata(self) -> dict[str, Any]:
        return {"name": "m"}


class Cyclic(Model):
    """A model that keeps a bound method of itself: a reference cycle."""

    def load(self) -> None:
        super().load()
        self.answer = self.predict


class Probe:
    """A Seldon JSON request, as the REST transport hands it over."""

    codec = JsonCodec()

    def read(self) -> Any:
        return {"data": {"ndarray": [[1.0]]}}


@pytest.fixture
def no_cyclic_collector() -> Iterator[list[int]]:
    """The collector off, and the number of full collections since the test began."""
    full: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.collect()
    gc.disable()
    gc.callbacks.append(count)
    try:
        yield full
    finally:
        gc.callbacks.remove(count)
        gc.enable()


async def loaded_and_unloaded(user_class: type[Model], shared: bool) -> weakref.ref[Weights]:
    """A model built on a thread, loaded, called once and unloaded; a weak reference to
    its weights."""
    pool = Offloader(asyncio.get_running_loop(), 2, "user") if shared else None
    model = ServedModel(ModelSettings(user_class.__name__, name="m"), factory=user_class, pool=pool)
    try:
        assert await model.load()
        assert model.metadata is not None  # init_metadata ran on a user thread
        status, _ = await model.call("predict", Probe())
        assert status == 200
        assert isinstance(model.user, Model) and model.user.weights is not None
        weights = weakref.ref(model.user.weights)
        await model.unload()
        return weights
    finally:
        model.close()
        if pool is not None:
            pool.close()


@pytest.mark.parametrize("shared", [True, False], ids=["shared-threads", "own-threads"])
def test_an_unloaded_model_goes_at_once_without_a_full_collection(
    no_cyclic_collector: list[int], shared: bool
) -> None:
    weights = asyncio.run(loaded_and_unloaded(Model, shared))
    assert weights() is None
    assert no_cyclic_collector == []


def test_a_model_in_a_reference_cycle_goes_with_one_full_collection(
    no_cyclic_collector: list[int],
) -> None:
    weights = asyncio.run(loaded_and_unloaded(Cyclic, shared=True))
    assert weights() is None
    assert no_cyclic_collector == [1]


def test_let_go_collects_only_what_outlived_its_release(no_cyclic_collector: list[int]) -> None:
    gone = Weights()
    watch_gone = tracker(gone)
    del gone
    assert not let_go(watch_gone, "gone")
    cycle: list[Any] = []
    cycle.append(cycle)
    watch_cycle = tracker(Weights())  # nothing holds it: gone already
    assert not let_go(watch_cycle, "dropped")
    held = Weights()
    assert let_go(tracker(held), "held")  # still held: the collection ran, in vain
    assert no_cyclic_collector == [1]
    assert let_go(tracker(1), "an int")  # cannot be watched: taken to be still there


def test_on_a_thread_leaves_the_thread_nothing_of_the_call() -> None:
    async def scenario() -> tuple[weakref.ref[Weights], weakref.ref[Weights]]:
        given = Weights()
        made = await on_a_thread(lambda w: (w, Weights()), given)
        assert made[0] is given
        refs = weakref.ref(given), weakref.ref(made[1])
        del given, made
        return refs

    gc.disable()
    try:
        given, made = asyncio.run(scenario())
        assert given() is None and made() is None
    finally:
        gc.enable()


def test_on_a_thread_raises_what_the_call_raised() -> None:
    def fails() -> None:
        raise ValueError("no weights")

    with pytest.raises(ValueError, match="no weights"):
        asyncio.run(on_a_thread(fails))


def test_trim_heap_runs_where_glibc_is() -> None:
    assert trim_heap() in (True, False)
