"""`unitserve start` with two workers: the request metrics and the user's metrics carry
the model that answered; a model unloaded leaves the scrape; and loading and unloading
many models leaves the scrape with the series of the models loaded now, no more.

The requests go over one kept-alive connection (one worker answers them all), while a
load or an unload reaches both workers: the ready gauge of each says what it holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import wait_until
from .metrics_text import samples
from .repository_servers import RepositoryServer

MODEL = """
class Counted:
    def predict(self, X, features_names):
        return X

    def metrics(self):
        return [{"type": "COUNTER", "key": "predictions", "value": 1}]
"""
BODY = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}
CYCLES = 30  # models loaded, asked once and unloaded, one after another

Sample = tuple[str, dict[str, str], float]


def place(models: Path, name: str) -> None:
    folder = models / name
    folder.mkdir()
    (folder / "Counted.py").write_text(MODEL)
    settings = {"name": name, "implementation": "Counted.Counted"}
    (folder / "model-settings.json").write_text(json.dumps(settings))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RepositoryServer]:
    models = tmp_path / "models"
    models.mkdir()
    for name in ("a", "b"):
        place(models, name)
    started = RepositoryServer.unitserve(models, {"MLSERVER_PARALLEL_WORKERS": "2"})
    try:
        yield started.wait_live()
    finally:
        started.stop()


def scrape(server: RepositoryServer) -> list[Sample]:
    answer = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10)
    answer.raise_for_status()
    return samples(answer.text)


def requests_of(scraped: list[Sample], model: str) -> float:
    return sum(
        v
        for n, labels, v in scraped
        if n == "unitserve_requests_total"
        and labels["model"] == model
        and labels["operation"] == "infer"
    )


def unloads(scraped: list[Sample]) -> float:
    return sum(
        v
        for n, labels, v in scraped
        if n == "unitserve_requests_total" and labels["operation"] == "repository_model_unload"
    )


def ready(scraped: list[Sample]) -> dict[tuple[str, str], float]:
    return {
        (labels["model"], labels["worker_id"]): v
        for n, labels, v in scraped
        if n == "unitserve_model_ready"
    }


def models_named(scraped: list[Sample]) -> set[str]:
    """Every model a series names: our ``model`` label, the user's ``model_name``."""
    named = {labels.get("model", "") for _, labels, _ in scraped}
    named |= {
        labels.get("model_name", "") for n, labels, _ in scraped if not n.startswith("unitserve_")
    }
    return named - {""}


def per_model_series(scraped: list[Sample]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (n, tuple(sorted(labels.items())))
        for n, labels, _ in scraped
        if labels.get("model") or (labels.get("model_name") and not n.startswith("unitserve_"))
    }


def test_series_follow_the_models_loaded_now(server: RepositoryServer) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:

        def load(name: str, op: str = "load") -> None:
            assert client.post(f"/v2/repository/models/{name}/{op}").status_code == 200

        def infer(name: str) -> int:
            return client.post(f"/v2/models/{name}/infer", json=BODY).status_code

        load("a")
        load("b")
        assert [infer("a") for _ in range(3)] == [200] * 3
        assert [infer("b") for _ in range(2)] == [200] * 2
        assert infer("made-up") == 404
        assert client.get("/v2/health/ready").status_code == 200

        # A request is counted as its answer goes out, so the last answers' counts may
        # reach the scrape a moment after the client has them: wait for all of them.
        scraped = wait_until(
            lambda: (
                (s := scrape(server))
                and requests_of(s, "a") == 3
                and requests_of(s, "b") == 2
                and requests_of(s, "") >= 1
                and s
            ),
            timeout=10,
        )
        assert ready(scraped) == {("a", "0"): 1, ("a", "1"): 1, ("b", "0"): 1, ("b", "1"): 1}
        # a name nobody serves is counted without a model
        assert models_named(scraped) == {"a", "b"}
        assert requests_of(scraped, "") == 1
        # the user's metrics name their model
        predictions = {
            labels["model_name"]: v for n, labels, v in scraped if n == "predictions_total"
        }
        assert predictions == {"a": 3, "b": 2}

        load("b", "unload")
        scraped = scrape(server)
        assert models_named(scraped) == {"a"}
        assert ready(scraped) == {("a", "0"): 1, ("a", "1"): 1}
        assert requests_of(scraped, "a") == 3

        before = scrape(server)
        for i in range(CYCLES):
            name = f"m{i}"
            place(server.models_dir, name)
            load(name)
            assert infer(name) == 200
            load(name, "unload")
        # every request written (the last unload's count is there), not all shown:
        after = wait_until(
            lambda: (s := scrape(server)) and unloads(s) == 1 + CYCLES and s, timeout=10
        )
        # The per-model series are a's, exactly as before the 30 models came and went.
        assert models_named(after) == {"a"}
        assert per_model_series(after) == per_model_series(before)
        assert ready(after) == {("a", "0"): 1, ("a", "1"): 1}

        # b loaded again continues its counts
        load("b")
        assert infer("b") == 200
        scraped = wait_until(
            lambda: (s := scrape(server)) and requests_of(s, "b") == 3 and s, timeout=10
        )
        assert models_named(scraped) == {"a", "b"}
