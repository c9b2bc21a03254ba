"""`unitserve start` with two workers (MLSERVER_PARALLEL_WORKERS=2): a repository load
or unload is answered only once every worker has applied it, so that whichever worker
takes the next request agrees; and loads and unloads racing from many clients leave
the workers in one consistent state, without a crash.

Each request below opens a new connection, so that the kernel spreads them over both
workers' shared listening socket.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .core2_agent import Core2Agent
from .repository_servers import RepositoryServer

SOURCE = Path(__file__).parent / "core2_models" / "seldon"
BODY = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
ROUNDS = 40  # requests per check: with two workers, both are all but sure to take some


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[tuple[RepositoryServer, Core2Agent]]:
    models = tmp_path / "models"
    models.mkdir()
    server = RepositoryServer.unitserve(models, {"MLSERVER_PARALLEL_WORKERS": "2"})
    try:
        server.wait_live()
        agent = Core2Agent(models, server.grpc_target, server.url)
        try:
            yield server, agent
        finally:
            agent.close()
    finally:
        server.stop()


def statuses(server: RepositoryServer, name: str) -> set[int]:
    """The status of ROUNDS inference requests, each on a connection of its own."""
    return {
        httpx.post(f"{server.url}/v2/models/{name}/infer", json=BODY, timeout=30).status_code
        for _ in range(ROUNDS)
    }


def repository(server: RepositoryServer, name: str, op: str) -> int:
    url = f"{server.url}/v2/repository/models/{name}/{op}"
    return httpx.post(url, timeout=60).status_code


def test_a_load_and_an_unload_reach_both_workers(
    two_workers: tuple[RepositoryServer, Core2Agent],
) -> None:
    server, agent = two_workers
    name = agent.place(SOURCE, "echo", 1)
    assert statuses(server, name) == {404}  # found on disk, not loaded
    assert repository(server, name, "load") == 200
    assert statuses(server, name) == {200}
    assert repository(server, name, "unload") == 200
    assert statuses(server, name) == {404}
    assert repository(server, name, "unload") == 404  # a second unload: unknown
    assert repository(server, name, "load") == 200
    assert statuses(server, name) == {200}
    assert "worker 0" in server.log_text() and "worker 1" in server.log_text()


def test_loads_and_unloads_racing_from_many_clients(
    two_workers: tuple[RepositoryServer, Core2Agent],
) -> None:
    server, agent = two_workers
    names = [agent.place(SOURCE, "race", v) for v in (1, 2, 3)]
    answers: list[int] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        pick = random.Random(seed)
        deadline = time.monotonic() + 60
        for _ in range(12):
            if time.monotonic() > deadline:
                break
            status = repository(server, pick.choice(names), pick.choice(("load", "unload")))
            with lock:
                answers.append(status)

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 8 * 12
    # A load is 200; an unload is 200, or 404 when the model is not loaded then.
    assert set(answers) <= {200, 404}, answers
    assert server.process.poll() is None
    # Consistent: what the index says of each model is what both workers answer.
    index = agent.index()
    for name in names:
        expected = {200} if index.get(name) == "READY" else {404}
        assert statuses(server, name) == expected, (name, index)
    # And the models still load and unload as usual.
    for name in names:
        assert repository(server, name, "load") == 200
        assert statuses(server, name) == {200}
