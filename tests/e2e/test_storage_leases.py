"""A repository server lets go of the cached versions of the models it unloads.

In-process, a registry whose models come from a models folder (as `unitserve start`'s
do) loads models whose constructor downloads a file from a real HTTP server
(``python -m http.server`` on 127.0.0.1): while a model is loaded its version is never
removed, after its unload (or a failed load) the next download of a newer version
removes it, and a version two models use stays until both are gone. Then the same
through `unitserve start`, its REST repository API and a real S3 server (moto's), with
the prepackaged scikit-learn server fetching its model URI.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from tests import server_models
from tests.conftest import run_cli
from tests.e2e.repository_servers import RepositoryServer
from tests.e2e.test_servers_s3 import ROWS_CM, s3_environment
from tests.storage_services import HttpFolder, MotoS3
from unitserve.errors import ModelLoadFailed
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.runtime.control import LocalChannel
from unitserve.runtime.repository_source import RepositorySource
from unitserve.storage import leases

# A model whose constructor fetches its file, as a prepackaged server does, and answers
# with what the file holds. `fail` makes its construction or its load() fail after the
# download.
FETCHER = """
from unitserve.storage import download

class Fetcher:
    def __init__(self, source, fail=""):
        self.path = download(source)
        if fail == "build":
            raise RuntimeError("cannot build")
        self.fail = fail

    def load(self):
        if self.fail == "load":
            raise RuntimeError("cannot load")

    def predict(self, X, names):
        with open(self.path) as f:
            return f.read()
"""

FILE = "model.txt"
# The HTTP server tells versions apart by Last-Modified (whole seconds) and length.
FIRST_CHANGE = 1_700_000_000


class Site(NamedTuple):
    url: str
    folder: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("site")
    server = HttpFolder(folder)
    try:
        yield Site(server.url, folder)
    finally:
        server.stop()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def publish(site: Site, text: str, version: int) -> str:
    """Put version `version` of the file on the HTTP server; its URL."""
    path = site.folder / FILE
    path.write_text(text)
    changed = FIRST_CHANGE + version
    os.utime(path, (changed, changed))
    return f"{site.url}/{FILE}"


def versions(cache: Path) -> set[Path]:
    """The version folders in the cache."""
    return {p for p in cache.iterdir() if not p.name.startswith(".")}


def models_folder(root: Path, url: str, **failing: str) -> Path:
    """A models folder with models a, b, c fetching `url`, and each of `failing`'s
    names failing as it says."""
    for name in ("a", "b", "c", *failing):
        where = root / name
        where.mkdir(parents=True)
        (where / "fetcher.py").write_text(FETCHER)
        extra = {"source": url, "fail": failing.get(name, "")}
        settings = {
            "name": name,
            "implementation": "fetcher.Fetcher",
            "parameters": {"extra": extra},
        }
        (where / "model-settings.json").write_text(json.dumps(settings))
    return root


def registry_of(root: Path) -> ModelRegistry:
    def make(settings: ModelSettings, factory: Callable[[], Any]) -> ServedModel:
        return ServedModel(settings, factory=factory)

    registry = ModelRegistry(LocalChannel())
    registry.source = RepositorySource(root, make, env={})
    return registry


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def answer(registry: ModelRegistry, name: str) -> Any:
    user = registry.get(name).user
    assert user is not None
    return user.predict(None, [])


def folder_of(registry: ModelRegistry, name: str) -> Path:
    user = registry.get(name).user
    assert user is not None
    return Path(user.path).parent


def test_a_version_is_kept_while_its_model_is_loaded_and_goes_after_the_unload(
    site: Site, cache: Path, tmp_path: Path
) -> None:
    url = publish(site, "one", 1)
    registry = registry_of(models_folder(tmp_path / "models", url))

    async def scenario() -> None:
        await registry.load("a")
        first = folder_of(registry, "a")
        assert leases.holders(first) == {registry.get("a").leases}
        publish(site, "version two", 2)
        await registry.load("b")  # fetches version two: version one is a's
        second = folder_of(registry, "b")
        assert versions(cache) == {first, second}
        assert answer(registry, "a") == "one"
        await registry.unload("a")
        assert leases.holders(first) == set()
        assert first.is_dir()  # removed by the next download of the URI, not by the unload
        await registry.load("a")  # version two, found in the cache; version one goes
        assert answer(registry, "a") == "version two"
        assert versions(cache) == {second}
        registry.close()

    run(scenario)


def test_a_version_two_models_use_stays_until_both_are_unloaded(
    site: Site, cache: Path, tmp_path: Path
) -> None:
    url = publish(site, "one", 1)
    registry = registry_of(models_folder(tmp_path / "models", url))

    async def scenario() -> None:
        await registry.load("a")
        await registry.load("b")
        first = folder_of(registry, "a")
        assert folder_of(registry, "b") == first
        publish(site, "version two", 2)
        await registry.unload("a")
        await registry.load("c")  # version two; b still uses version one
        assert first in versions(cache) and answer(registry, "b") == "one"
        await registry.unload("b")
        await registry.load("a")
        assert versions(cache) == {folder_of(registry, "c")}
        registry.close()

    run(scenario)


@pytest.mark.parametrize("fail", ["build", "load"])
def test_a_model_that_fails_to_load_lets_go_of_what_it_fetched(
    site: Site, cache: Path, tmp_path: Path, fail: str
) -> None:
    url = publish(site, "one", 1)
    registry = registry_of(models_folder(tmp_path / "models", url, broken=fail))

    async def scenario() -> None:
        with pytest.raises(ModelLoadFailed, match="'broken' cannot be loaded"):
            await registry.load("broken")
        (first,) = versions(cache)
        assert leases.holders(first) == set()
        publish(site, "version two", 2)
        await registry.load("a")
        assert answer(registry, "a") == "version two"
        assert versions(cache) == {folder_of(registry, "a")}
        registry.close()

    run(scenario)


# ----------------------------------------------------------------------------- unitserve start

BUCKET = "models"


def test_unitserve_start_removes_an_unloaded_models_old_version(tmp_path: Path) -> None:
    trained = tmp_path / "trained"
    server_models.sklearn_classifier(trained)
    model = (trained / "model.joblib").read_bytes()
    # The same classifier written anew (compressed): other bytes, so another ETag.
    import joblib

    joblib.dump(joblib.load(trained / "model.joblib"), trained / "v2.joblib", compress=3)
    models = tmp_path / "models"
    (models / "iris").mkdir(parents=True)
    settings = {
        "name": "iris",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": f"s3://{BUCKET}/iris"},
    }
    (models / "iris" / "model-settings.json").write_text(json.dumps(settings))
    cache = tmp_path / "cache"
    s3 = MotoS3(checked_keys=True)
    server = None
    try:
        s3.s3.create_bucket(Bucket=BUCKET)
        s3.put(BUCKET, "iris/model.joblib", model)
        env = s3_environment(s3, cache)
        server = RepositoryServer.unitserve(models, env).wait_live()
        http = httpx.Client(base_url=server.url, timeout=60)

        def repository(op: str) -> None:
            done = http.post(f"/v2/repository/models/iris/{op}")
            assert done.status_code == 200, done.text

        def predicts() -> None:
            body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [3, 4], "data": ROWS_CM}]}
            done = http.post("/v2/models/iris/infer", json=body)
            assert done.status_code == 200, done.text

        repository("load")
        predicts()
        (first,) = versions(cache)
        s3.put(BUCKET, "iris/model.joblib", (trained / "v2.joblib").read_bytes())
        # Another process fetches the new version while the server's model uses the
        # old one: kept.
        fetched = run_cli("fetch", f"s3://{BUCKET}/iris", env=env, timeout=60)
        assert fetched.returncode == 0, fetched.stderr
        second = Path(fetched.stdout.strip())
        assert f"kept {first} in the cache" in fetched.stderr
        assert versions(cache) == {first, second}
        predicts()
        repository("unload")
        repository("load")  # the new version, found in the cache: the old one goes
        predicts()
        assert versions(cache) == {second}
        log = server.log_text()
        assert f"no longer uses {first}" in log
        assert f"removed {first} from the cache" in log
    finally:
        if server is not None:
            server.stop()
        s3.stop()
