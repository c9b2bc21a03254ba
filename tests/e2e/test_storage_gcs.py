"""unitserve.storage against a GCS emulator (gcp-storage-emulator on 127.0.0.1),
anonymous, as for a public bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.test_storage_s3 import files
from tests.storage_services import GcsEmulator
from unitserve.storage import NotFound, download

BUCKET = "public-models"


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    server = GcsEmulator(BUCKET)
    try:
        server.put(BUCKET, "iris/model.joblib", b"iris model")
        server.put(BUCKET, "iris/metadata.yaml", b"name: iris\n")
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(gcs: GcsEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))


def test_a_prefix_comes_down_anonymously(env: None) -> None:
    folder = download(f"gs://{BUCKET}/iris")
    assert files(folder) == {"model.joblib": b"iris model", "metadata.yaml": b"name: iris\n"}


def test_a_single_object(env: None) -> None:
    path = download(f"gs://{BUCKET}/iris/model.joblib")
    assert Path(path).name == "model.joblib"
    assert Path(path).read_bytes() == b"iris model"


def test_a_new_generation_is_fetched_again_and_an_unchanged_one_is_not(
    env: None, gcs: GcsEmulator
) -> None:
    gcs.put(BUCKET, "changing/model.txt", b"one")
    first = download(f"gs://{BUCKET}/changing")
    (Path(first) / "model.txt").write_bytes(b"changed locally")
    assert download(f"gs://{BUCKET}/changing") == first
    assert (Path(first) / "model.txt").read_bytes() == b"changed locally"
    gcs.put(BUCKET, "changing/model.txt", b"two")
    second = download(f"gs://{BUCKET}/changing")
    assert second != first
    assert (Path(second) / "model.txt").read_bytes() == b"two"


def test_missing_is_not_found_naming_the_uri(env: None) -> None:
    with pytest.raises(NotFound, match=rf"^gs://{BUCKET}/nothing: not found"):
        download(f"gs://{BUCKET}/nothing")
    with pytest.raises(NotFound) as caught:
        download("gs://no-such-bucket/iris")
    assert str(caught.value) == (
        "gs://no-such-bucket/iris: not found: the bucket 'no-such-bucket' does not exist"
    )


def test_the_fetch_command_logs_its_own_lines_only(gcs: GcsEmulator, tmp_path: Path) -> None:
    """Not gcsfs's line as it is imported, nor its tracebacks of failed requests."""
    env = {"STORAGE_EMULATOR_HOST": gcs.url, "UNITSERVE_MODEL_CACHE": str(tmp_path)}
    done = run_cli("fetch", f"gs://{BUCKET}/iris", env=env)
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"fetched gs://{BUCKET}/iris: 2 files")
    done = run_cli("fetch", f"gs://{BUCKET}/nothing", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"unitserve fetch: error: gs://{BUCKET}/nothing: not found "
        "(no object and no objects under it)"
    ]
