"""A graph's per-node metrics: tallied per hop, written to the worker's files on flush."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, values
from prometheus_client.multiprocess import MultiProcessCollector

from unitserve.metrics import worker as worker_metrics
from unitserve.settings import resolve


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[worker_metrics.WorkerMetrics]:
    """A worker's recorder writing to `tmp_path`; the process's metric storage is put
    back afterwards for the other tests."""
    saved_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    saved_class = values.ValueClass
    worker_metrics.use_directory(str(tmp_path))
    try:
        yield worker_metrics.WorkerMetrics(resolve(argparse.Namespace(), {}, "graph"), "0")
    finally:
        values.ValueClass = saved_class
        if saved_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_env


def samples(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, str(directory))
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "worker_id"))): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith("unitserve_graph_node")
    }


def test_node_calls_are_written_on_flush(
    recorder: worker_metrics.WorkerMetrics, tmp_path: Path
) -> None:
    recorder.node_call("model", "predict", "200", 0.0007)
    recorder.node_call("model", "predict", "200", 0.002)
    recorder.node_call("model", "predict", "409", 20.0)
    # a node's own recorder (user metrics with its name) tallies into the same worker's
    recorder.for_unit("input", "example/input:1").node_call("input", "transform_input", "200", 0)
    assert samples(tmp_path) == {}  # nothing written per hop
    recorder.flush()
    got = samples(tmp_path)
    model = (("node", "model"), ("operation", "predict"))

    def bucket(le: str) -> float:
        return got[("unitserve_graph_node_duration_seconds_bucket", (("le", le), *model))]

    assert bucket("0.0005") == 0
    assert bucket("0.001") == 1
    assert bucket("0.0025") == 2
    assert bucket("10.0") == 2
    assert bucket("+Inf") == 3
    assert got[("unitserve_graph_node_duration_seconds_count", model)] == 3
    assert got[("unitserve_graph_node_duration_seconds_sum", model)] == pytest.approx(20.0027)
    assert got[("unitserve_graph_node_errors_total", (("code", "409"), *model))] == 1
    assert not any(
        k[0] == "unitserve_graph_node_errors_total" and ("code", "200") in k[1] for k in got
    )
    node_input = (("node", "input"), ("operation", "transform_input"))
    assert got[("unitserve_graph_node_duration_seconds_count", node_input)] == 1
    # a second flush adds only what came since the first
    recorder.node_call("model", "predict", "200", 0.0007)
    recorder.flush()
    recorder.flush()
    assert samples(tmp_path)[("unitserve_graph_node_duration_seconds_count", model)] == 4
