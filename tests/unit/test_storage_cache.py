"""The cache puts a model in place whole or not at all, and local paths."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from unitserve.storage import NotFound, StorageError, download, leases, progress
from unitserve.storage.cache import MARKER, Target, cache_root

SRC = Path(__file__).resolve().parents[2] / "src" / "unitserve"


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_cache_folder_comes_from_the_environment(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cache_root() == cache
    monkeypatch.delenv("UNITSERVE_MODEL_CACHE")
    assert cache_root() == Path.home() / ".cache" / "unitserve" / "models"


def test_an_interrupted_download_leaves_no_model(cache: Path) -> None:
    target = Target("s3://b/m", "v1", None)
    with pytest.raises(ConnectionError), target.staged() as staging:
        (staging / "model.joblib").write_bytes(b"half")
        raise ConnectionError("cut")
    assert not target.folder.exists()
    assert not target.holds_it()
    assert list(cache.iterdir()) == []  # the staging folder is gone too


def test_a_killed_download_is_cleaned_up_by_the_next(cache: Path) -> None:
    target = Target("s3://b/m", "v1", None)
    # A process that dies (SIGKILL: no cleanup) while writing its staging folder.
    script = (
        "import os, signal\n"
        "from unitserve.storage.cache import Target\n"
        "with Target('s3://b/m', 'v1', None).staged() as staging:\n"
        "    (staging / 'model.joblib').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "UNITSERVE_MODEL_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-c", script], env=env, timeout=60)
    assert done.returncode == -9
    left = [p.name for p in cache.iterdir()]
    assert len(left) == 1 and left[0].startswith(".partial-")
    assert not target.holds_it()
    with target.staged() as staging:
        (staging / "model.joblib").write_bytes(b"whole")
    assert [p.name for p in cache.iterdir()] == [target.folder.name]
    assert (target.folder / "model.joblib").read_bytes() == b"whole"


def test_a_destination_with_other_files_is_not_overwritten(tmp_path: Path) -> None:
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep")
    with (
        pytest.raises(StorageError, match="holds other files"),
        Target("s3://b/m", "v1", dest).staged(),
    ):
        pass
    assert (dest / "precious.txt").read_text() == "keep"


def test_a_destination_records_what_it_holds(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    target = Target("s3://b/m", "v1", dest)
    with target.staged() as staging:
        (staging / "a.txt").write_text("one")
    assert target.holds_it() and (dest / MARKER).is_file()
    assert not Target("s3://b/m", "v2", dest).holds_it()
    with Target("s3://b/m", "v2", dest).staged() as staging:  # replaces in place
        (staging / "b.txt").write_text("two")
    assert sorted(p.name for p in dest.iterdir()) == sorted([MARKER, "b.txt"])


def test_local_paths_are_returned_as_they_are(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"m")
    assert download(str(model)) == str(model)
    assert download(f"file://{model}") == str(model)
    with pytest.raises(NotFound, match=r"^file:///no/such/model: no such file or folder$"):
        download("file:///no/such/model")


def test_a_local_model_is_copied_to_a_destination(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "w.bin").write_bytes(b"w")
    dest = tmp_path / "dest"
    assert download(str(model), dest) == str(dest)
    assert (dest / "sub" / "w.bin").read_bytes() == b"w"
    assert download(str(model / "sub" / "w.bin"), tmp_path / "one") == str(
        tmp_path / "one" / "w.bin"
    )


def test_a_destination_inside_a_local_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is inside the model"):
        download(str(tmp_path), tmp_path / "copy")


def test_a_large_download_logs_its_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(progress, "EVERY", 0.01)
    caplog.set_level(logging.INFO, "unitserve.storage")
    folder = tmp_path / "staging"
    folder.mkdir()
    with progress.Progress("s3://b/big", folder, 4 * progress.LARGE):
        (folder / "part").write_bytes(b"\0" * 1024)
        from tests.conftest import wait_until

        wait_until(lambda: "fetching s3://b/big: 0 of 256 MiB (0%)" in caplog.text, timeout=10)


def test_storage_imports_nothing_of_unitserve_above_it() -> None:
    for path in (SRC / "storage").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.startswith("unitserve"):
                    assert name.startswith("unitserve.storage"), f"{path.name} imports {name}"


def test_older_versions_go_unless_leased_and_other_uris_stay(cache: Path) -> None:
    def cached(uri: str, version: str) -> Path:
        target = Target(uri, version, None)
        with target.staged() as staging:
            (staging / "model.joblib").write_text(version)
        return target.folder

    leased, unused, other = (
        cached("s3://b/m", "v1"),
        cached("s3://b/m", "v2"),
        cached("s3://b/n", "v1"),
    )
    current = cached("s3://b/m", "v3")
    leases.hold(leased)  # this process uses version 1 (a lease is per process and file)
    (cache / ".old-m-cut-short").mkdir()  # a removal a killed process left
    removed = leases.prune(current, Target("s3://b/m", "v3", None).family, "s3://b/m")
    assert removed == [unused]
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [".leases", leased.name, other.name, current.name]
    )
    # No lease file is left for the removed version.
    assert sorted(p.name for p in (cache / ".leases").iterdir()) == [leased.name]


def test_a_lease_that_cannot_be_made_does_not_stop_the_model_being_used(cache: Path) -> None:
    # As in a cache baked read-only into an image: the lease file cannot be created
    # (here because its folder's name is taken by a file, which even root cannot undo).
    target = Target("s3://b/read-only", "v1", None)
    with target.staged() as staging:
        (staging / "model.joblib").write_text("baked in")
    (cache / ".leases").write_text("not a folder")
    leases.hold(target.folder)  # no error, and no lease
    assert target.holds_it()
    assert (cache / ".leases").read_text() == "not a folder"
