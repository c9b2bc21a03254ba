"""Per-model metrics: the ``model`` label of the request and batch metrics, the ready
gauge the registry's hooks keep, and the supervisor's exposition, which shows the series
of the models some live worker holds and no others.

Two workers are two process identities writing real metric files into one directory,
as two worker processes do; the supervisor's merge reads them as it does when scraped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import values

from tests.e2e.metrics_text import samples
from unitserve.metrics import supervisor as merged
from unitserve.metrics import worker as worker_metrics
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.runtime.control import LocalChannel
from unitserve.settings import resolve
from unitserve.transport.accounting import ModelLabels
from unitserve.user_metrics import create_counter


@dataclass
class Named:
    name: str
    version: str | None = None


class Workers:
    """Worker metrics, each recording as a process of its own into one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.settings = resolve(argparse.Namespace(), {}, "model")
        self.metrics: dict[int, worker_metrics.WorkerMetrics] = {}
        self.value_classes: dict[int, type] = {}

    def act_as(self, pid: int) -> worker_metrics.WorkerMetrics:
        """Worker `pid`'s metrics; what it records from now on goes to its own files."""
        if pid not in self.value_classes:
            self.value_classes[pid] = values.MultiProcessValue(lambda: pid)
        values.ValueClass = self.value_classes[pid]
        if pid not in self.metrics:
            self.metrics[pid] = worker_metrics.WorkerMetrics(self.settings, str(len(self.metrics)))
        return self.metrics[pid]

    def scrape(
        self, user_metrics_by_model: bool = False
    ) -> list[tuple[str, dict[str, str], float]]:
        return samples(merged.exposition(str(self.directory), user_metrics_by_model).decode())


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Workers writing to `tmp_path`; the process's metric storage is put back
    afterwards for the other tests."""
    saved_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    saved_class = values.ValueClass
    worker_metrics.use_directory(str(tmp_path))
    try:
        yield Workers(tmp_path)
    finally:
        values.ValueClass = saved_class
        if saved_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_env


def requests_by_model(scraped: list[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    counts: dict[str, float] = {}
    for name, labels, value in scraped:
        if name == "unitserve_requests_total":
            counts[labels["model"]] = counts.get(labels["model"], 0) + value
    return counts


def series(scraped: list[tuple[str, dict[str, str], float]], name: str) -> int:
    return sum(1 for n, _, _ in scraped if n == name)


def ready(scraped: list[tuple[str, dict[str, str], float]]) -> dict[tuple[str, str, str], float]:
    return {
        (labels["model"], labels["version"], labels["worker_id"]): value
        for name, labels, value in scraped
        if name == "unitserve_model_ready"
    }


def test_requests_are_tallied_by_model_and_written_on_flush(workers: Workers) -> None:
    w = workers.act_as(101)
    w.model_loaded(Named("a", "v1"))
    w.request_started("v2")
    w.request_finished("infer", "v2", "200", 0.002, "a")
    w.request_started("v2")
    w.request_finished("infer", "v2", "200", 0.004, "a")
    w.request_started("v2")
    w.request_finished("server_ready", "v2", "200", 0.0001, "")
    assert requests_by_model(workers.scrape()) == {}  # nothing written per request
    w.flush()
    scraped = workers.scrape()
    assert requests_by_model(scraped) == {"a": 2, "": 1}
    duration = {
        labels["model"]: value
        for name, labels, value in scraped
        if name == "unitserve_request_duration_seconds_count"
    }
    assert duration == {"a": 2, "": 1}
    assert ready(scraped) == {("a", "v1", "0"): 1}


def test_batches_carry_the_model_of_their_batcher(workers: Workers) -> None:
    w = workers.act_as(101)
    w.model_loaded(Named("a"))
    w.batches_of("a").batch_sent("predict", 3, [0.001, 0.002])
    sizes = {
        labels["model"]: value
        for name, labels, value in workers.scrape()
        if name == "unitserve_batch_size_sum"
    }
    assert sizes == {"a": 3}


def test_the_exposition_leaves_out_models_no_live_worker_holds(workers: Workers) -> None:
    for pid in (101, 102):
        w = workers.act_as(pid)
        for name in ("a", "b"):
            w.model_loaded(Named(name))
            w.request_started("v2")
            w.request_finished("infer", "v2", "200", 0.001, name)
        w.request_started("rest")
        w.request_finished("live", "rest", "200", 0.001, "")
        w.flush()
    scraped = workers.scrape()
    assert requests_by_model(scraped) == {"a": 2, "b": 2, "": 2}
    assert ready(scraped) == {
        ("a", "", "0"): 1,
        ("b", "", "0"): 1,
        ("a", "", "1"): 1,
        ("b", "", "1"): 1,
    }

    # b unloaded and released by worker 0 only: worker 1 still holds it, so it shows
    workers.act_as(101).model_unloaded(Named("b"))
    workers.act_as(101).model_released(Named("b"))
    scraped = workers.scrape()
    assert requests_by_model(scraped) == {"a": 2, "b": 2, "": 2}
    assert ready(scraped) == {("a", "", "0"): 1, ("a", "", "1"): 1, ("b", "", "1"): 1}

    # and by worker 1: b's series go, the others stay as they were
    workers.act_as(102).model_unloaded(Named("b"))
    workers.act_as(102).model_released(Named("b"))
    scraped = workers.scrape()
    assert requests_by_model(scraped) == {"a": 2, "": 2}
    assert ready(scraped) == {("a", "", "0"): 1, ("a", "", "1"): 1}
    # a's and the server's, of each worker
    assert series(scraped, "unitserve_request_duration_seconds_count") == 4

    # b loaded again continues its counts
    for pid in (101, 102):
        w = workers.act_as(pid)
        w.model_loaded(Named("b"))
        w.request_started("v2")
        w.request_finished("infer", "v2", "200", 0.001, "b")
        w.flush()
    assert requests_by_model(workers.scrape()) == {"a": 2, "b": 4, "": 2}


def test_a_model_held_without_serving_shows_ready_zero(workers: Workers) -> None:
    w = workers.act_as(101)
    w.model_loaded(Named("a"))
    w.request_started("rest")
    w.request_finished("predict", "rest", "200", 0.001, "a")
    w.flush()
    w.model_unloaded(Named("a"))  # `unitserve serve`'s model: held, to be loaded again
    scraped = workers.scrape()
    assert ready(scraped) == {("a", "", "0"): 0}
    assert requests_by_model(scraped) == {"a": 1}


def test_the_series_stay_bounded_however_many_models_come_and_go(workers: Workers) -> None:
    w = workers.act_as(101)
    w.model_loaded(Named("a"))
    w.request_started("v2")
    w.request_finished("infer", "v2", "200", 0.001, "a")
    w.flush()
    before = workers.scrape()
    for i in range(30):
        name = f"m{i}"
        w.model_loaded(Named(name))
        w.request_started("v2")
        w.request_finished("infer", "v2", "200", 0.001, name)
        w.flush()
        w.model_unloaded(Named(name))
        w.model_released(Named(name))
    after = workers.scrape()
    assert len(after) == len(before)
    assert requests_by_model(after) == {"a": 1}


def test_a_dead_workers_models_stop_counting_as_held(workers: Workers) -> None:
    w0, w1 = workers.act_as(101), workers.act_as(102)
    workers.act_as(101)
    w0.model_loaded(Named("a"))
    workers.act_as(102)
    w1.model_loaded(Named("a"))
    w1.model_loaded(Named("only-in-1"))
    for name in ("a", "only-in-1"):
        w1.request_started("v2")
        w1.request_finished("infer", "v2", "200", 0.001, name)
    w1.flush()
    merged.retire_worker(str(workers.directory), 102)
    scraped = workers.scrape()
    # the dead worker's counts of a are kept (a is held by worker 0); its own model's go
    assert requests_by_model(scraped) == {"a": 1}
    assert ready(scraped) == {("a", "", "0"): 1}


def test_a_failed_load_leaves_no_entry_behind(workers: Workers) -> None:
    w = workers.act_as(101)
    w.model_released(Named("never-served"))
    assert ready(workers.scrape()) == {}


def test_a_repository_models_user_metrics_go_with_the_model(workers: Workers) -> None:
    w = workers.act_as(101)
    for name in ("a", "b"):
        w.model_loaded(Named(name, "1"))
        w.for_model(name, "1").record([create_counter("rows", 2)], "predict")
    rows = {
        (labels["model_name"], labels["model_version"])
        for name, labels, _ in workers.scrape(user_metrics_by_model=True)
        if name == "rows_total"
    }
    assert rows == {("a", "1"), ("b", "1")}
    w.model_unloaded(Named("b", "1"))
    w.model_released(Named("b", "1"))
    kept = workers.scrape(user_metrics_by_model=True)
    assert {labels["model_name"] for name, labels, _ in kept if name == "rows_total"} == {"a"}
    # the worker's info keeps its deployment labels whatever model_name says there
    assert series(kept, "unitserve_worker_info") == 1
    # `unitserve serve` and graphs: model_name is the deployment's (or node's), kept
    assert len([n for n, _, _ in workers.scrape() if n == "rows_total"]) == 2


class Model:
    def predict(self, X, names):
        return X


def test_the_registry_tells_its_hooks_when_models_come_and_go(workers: Workers) -> None:
    w = workers.act_as(101)

    async def scenario() -> None:
        registry = ModelRegistry(LocalChannel(), w)
        registry.add(
            ServedModel(ModelSettings("Model", name="a", version="2"), Model(), factory=Model)
        )
        assert await registry.start()
        assert ready(workers.scrape()) == {("a", "2", "0"): 1}
        await registry.unload("a")  # not from a source: held, to be loaded again
        assert ready(workers.scrape()) == {("a", "2", "0"): 0}
        await registry.load("a")
        assert ready(workers.scrape()) == {("a", "2", "0"): 1}
        registry.close()

    asyncio.run(scenario())


def test_the_model_label_names_served_models_only() -> None:
    async def scenario() -> None:
        registry = ModelRegistry(LocalChannel())
        labels = ModelLabels(registry)
        assert labels.of("predict", None) == ""  # no model served yet
        registry.add(ServedModel(ModelSettings("Model", name="a"), factory=Model))
        # Seldon routes: the default model's operations, not the server's probes
        for operation in ("predict", "send_feedback", "metadata", "health_status"):
            assert labels.of(operation, None) == "a", operation
        for operation in ("live", "ready", "ping", "openapi", "unknown", "node_status"):
            assert labels.of(operation, None) == "", operation
        # Open Inference Protocol: the model named, if served, for its model operations
        for operation in ("infer", "model_ready", "model_metadata"):
            assert labels.of(operation, "a") == "a", operation
            assert labels.of(operation, "made-up") == "", operation
        for operation in ("repository_model_load", "repository_model_unload"):
            assert labels.of(operation, "a") == "", operation
        assert labels.of("server_ready", None) == ""
        registry.close()

    asyncio.run(scenario())
