"""unitserve.storage over plain HTTP (Python's http.server on 127.0.0.1): single files,
archives unpacked, a hostile archive refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.test_storage_s3 import files
from tests.storage_services import HttpFolder
from unitserve.storage import NotFound, UnsafeArchive, download


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpFolder]:
    root = tmp_path_factory.mktemp("site")
    (root / "model.joblib").write_bytes(b"plain file")
    (root / "iris.tar.gz").write_bytes(
        tar_gz({"model.joblib": b"from tar", "meta/metadata.yaml": b"name: iris\n"})
    )
    (root / "iris.tgz").write_bytes(tar_gz({"model.joblib": b"from tgz"}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("model.json", b"from zip")
    (root / "iris.zip").write_bytes(buffer.getvalue())
    (root / "climbs.tar.gz").write_bytes(tar_gz({"../../outside.txt": b"x"}))
    (root / "links.tar.gz").write_bytes(tar_gz({"ok.txt": b"x"}, {"passwd": "/etc/passwd"}))
    server = HttpFolder(root)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_single_file(site: HttpFolder, cache: Path) -> None:
    path = download(f"{site.url}/model.joblib")
    assert Path(path).name == "model.joblib" and Path(path).read_bytes() == b"plain file"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("iris.tar.gz", {"model.joblib": b"from tar", "meta/metadata.yaml": b"name: iris\n"}),
        ("iris.tgz", {"model.joblib": b"from tgz"}),
        ("iris.zip", {"model.json": b"from zip"}),
    ],
)
def test_archives_are_unpacked(
    site: HttpFolder, cache: Path, name: str, expected: dict[str, bytes]
) -> None:
    assert files(download(f"{site.url}/{name}")) == expected


def test_an_unchanged_file_is_not_fetched_again(site: HttpFolder, cache: Path) -> None:
    first = download(f"{site.url}/iris.tgz")
    (Path(first) / "model.joblib").write_bytes(b"changed locally")
    assert download(f"{site.url}/iris.tgz") == first
    assert (Path(first) / "model.joblib").read_bytes() == b"changed locally"


@pytest.mark.parametrize("name", ["climbs.tar.gz", "links.tar.gz"])
def test_a_hostile_archive_is_refused_and_leaves_nothing(
    site: HttpFolder, cache: Path, name: str
) -> None:
    with pytest.raises(UnsafeArchive, match=rf"{name}: refused"):
        download(f"{site.url}/{name}")
    assert not any(p.is_file() for p in cache.rglob("*"))
    assert not (cache.parent / "outside.txt").exists()


def test_a_missing_file_is_not_found(site: HttpFolder, cache: Path) -> None:
    with pytest.raises(NotFound, match=r"/nothing.tar.gz: not found \(HTTP 404\)"):
        download(f"{site.url}/nothing.tar.gz")


def test_a_destination_folder(site: HttpFolder, tmp_path: Path) -> None:
    dest = tmp_path / "models"
    dest.mkdir()  # an existing empty folder, as a mounted volume is
    assert download(f"{site.url}/iris.zip", dest) == str(dest)
    assert files(dest) == {"model.json": b"from zip"}


def test_the_fetch_command_logs_its_own_lines_only(site: HttpFolder, tmp_path: Path) -> None:
    """Not httpx's line for each request."""
    env = {"UNITSERVE_MODEL_CACHE": str(tmp_path)}
    done = run_cli("fetch", f"{site.url}/iris.tgz", env=env)
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"fetched {site.url}/iris.tgz: 1 file")
    done = run_cli("fetch", f"{site.url}/climbs.tar.gz", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"unitserve fetch: error: {site.url}/climbs.tar.gz: refused: "
        "the member '../../outside.txt' escapes"
    ]
