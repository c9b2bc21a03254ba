"""The user threads that a repository worker's models share (`unitserve.calls.Lane` over
one `Offloader`): many models, a bounded number of threads, and a slow model holding
no more of them than its own share. No timing: events say what runs when."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from unitserve.calls import Lane, Offloader
from unitserve.models.dataplane import DataPlane
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.runtime.control import LocalChannel
from unitserve.runtime.repository_source import RepositorySource

# Every await of an answer is bounded, so that a broken pool fails the test, not hangs it.
LIMIT = 30.0


def test_a_lane_runs_one_call_at_a_time_in_order_and_skips_the_given_up() -> None:
    async def main() -> None:
        pool = Offloader(asyncio.get_running_loop(), 4, "test", start=1)
        try:
            lane = Lane(pool, 1)
            release = threading.Event()
            ran: list[int] = []
            first = lane.submit(lambda: release.wait(LIMIT))

            def record(i: int) -> int:
                ran.append(i)
                return i

            rest = [lane.submit(functools.partial(record, i)) for i in range(5)]
            given_up = lane.submit(lambda: ran.append(99))
            given_up.cancel()
            assert lane.running == 1 and lane.in_flight == 7
            assert pool.in_flight == 1  # the waiting calls hold no thread, nor a place
            release.set()
            assert await asyncio.wait_for(first, LIMIT) is True
            assert await asyncio.wait_for(asyncio.gather(*rest), LIMIT) == [0, 1, 2, 3, 4]
            assert ran == [0, 1, 2, 3, 4]
            assert lane.in_flight == 0 and pool.in_flight == 0
            assert len(pool.threads) == 1  # never more than one call at a time: one thread
        finally:
            pool.close()

    asyncio.run(main())


def test_an_error_reaches_its_caller_and_the_lane_goes_on() -> None:
    async def main() -> None:
        pool = Offloader(asyncio.get_running_loop(), 2, "test")
        try:
            lane = Lane(pool, 1)

            def fails() -> None:
                raise ValueError("bad input")

            failing, after = lane.submit(fails), lane.submit(lambda: "after")
            try:
                await asyncio.wait_for(failing, LIMIT)
            except ValueError as exc:
                assert str(exc) == "bad input"
            else:
                raise AssertionError("the error was lost")
            assert await asyncio.wait_for(after, LIMIT) == "after"
        finally:
            pool.close()

    asyncio.run(main())


def test_a_slow_model_holds_its_share_of_the_threads_and_the_others_go_on() -> None:
    async def main() -> None:
        pool = Offloader(asyncio.get_running_loop(), 3, "test", start=1)
        try:
            slow, other = Lane(pool, 1), Lane(pool, 1)
            release = threading.Event()
            stuck = [slow.submit(lambda: release.wait(LIMIT)) for _ in range(10)]
            # Ten slow calls, one on a thread: the other model is answered meanwhile.
            answers = [other.submit(functools.partial(int, i)) for i in range(10)]
            assert await asyncio.wait_for(asyncio.gather(*answers), LIMIT) == list(range(10))
            assert not any(f.done() for f in stuck)
            assert len(pool.threads) <= 2
            # As many slow models as the pool has threads: the next model waits.
            more = [Lane(pool, 1).submit(lambda: release.wait(LIMIT)) for _ in range(2)]
            assert len(pool.threads) == 3
            late = other.submit(lambda: "late")
            await asyncio.sleep(0)
            assert not late.done()
            release.set()
            assert await asyncio.wait_for(late, LIMIT) == "late"
            assert await asyncio.wait_for(asyncio.gather(*stuck, *more), LIMIT) == [True] * 12
        finally:
            pool.close()

    asyncio.run(main())


SLEEPER = """
import threading

class Sleeper:
    gates = {}

    def __init__(self, name):
        self.name = name

    def predict(self, X, names):
        gate = Sleeper.gates.get(self.name)
        if gate is not None:
            gate.wait(30)
        return X
"""


def test_many_repository_models_share_a_bounded_number_of_threads(tmp_path: Path) -> None:
    for i in range(30):
        folder = tmp_path / f"m{i:02d}"
        folder.mkdir()
        (folder / "sleeper.py").write_text(SLEEPER)
        settings = {
            "name": f"m{i:02d}",
            "implementation": "sleeper.Sleeper",
            "parameters": {"extra": {"name": f"m{i:02d}"}},
        }
        (folder / "model-settings.json").write_text(json.dumps(settings))

    async def main() -> None:
        before = set(threading.enumerate())
        pool = Offloader(asyncio.get_running_loop(), 4, "shared", start=1)

        def make(settings: ModelSettings, factory: Callable[[], Any]) -> ServedModel:
            return ServedModel(settings, factory=factory, pool=pool)

        registry = ModelRegistry(LocalChannel())
        registry.source = RepositorySource(tmp_path, make, env={})
        try:
            plane = DataPlane(registry)
            for i in range(30):
                await plane.load(f"m{i:02d}")
            models = registry.all()
            assert len(models) == 30
            for model in models:
                assert model.invoker is not None
                assert isinstance(model.invoker.offloader, Lane)
                assert model.invoker.offloader.pool is pool
            # m00 is slow: its predict waits; the other models answer meanwhile.
            user_class = type(registry.get("m00").user)
            gate = user_class.gates["m00"] = threading.Event()
            slow = [
                registry.get("m00").invoker.offload(  # type: ignore[union-attr]
                    lambda: registry.get("m00").user.predict(1, [])
                )
                for _ in range(5)
            ]
            tasks = [asyncio.ensure_future(s) for s in slow]
            for model in models[1:]:
                invoker, user = model.invoker, model.user
                assert invoker is not None
                answer = invoker.offload(functools.partial(user.predict, 7, []))
                assert await asyncio.wait_for(answer, LIMIT) == 7
            assert not any(t.done() for t in tasks)
            gate.set()
            assert await asyncio.wait_for(asyncio.gather(*tasks), LIMIT) == [1] * 5
            # 30 models, at most the pool's 4 threads: none of their own.
            assert len(pool.threads) <= 4
            started = set(threading.enumerate()) - before
            assert [t.name for t in started if t.name.startswith("user-")] == []
            await plane.unload("m03")
            assert len(registry.all()) == 29
        finally:
            registry.close()
            pool.close()

    asyncio.run(main())
