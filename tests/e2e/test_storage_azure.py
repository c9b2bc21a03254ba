"""unitserve.storage against Azurite, Microsoft's Azure Storage emulator, on 127.0.0.1
(tests/node holds it: `npm ci` there installs it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.e2e.test_storage_s3 import files
from tests.storage_services import AZURITE_ACCOUNT, Azurite, azurite_installed
from unitserve.storage import AccessDenied, NotFound, download

pytestmark = pytest.mark.skipif(
    not azurite_installed(), reason="Azurite is not installed: run `npm ci` in tests/node"
)
CONTAINER = "models"
BLOB_URL = f"https://{AZURITE_ACCOUNT}.blob.core.windows.net/{CONTAINER}"


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    server = Azurite()
    try:
        server.put(CONTAINER, "iris/model.joblib", b"iris model")
        server.put(CONTAINER, "iris/sub/metadata.yaml", b"name: iris\n")
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))


def test_a_blob_url_prefix_comes_down_as_a_folder(env: None) -> None:
    folder = download(f"{BLOB_URL}/iris")
    assert files(folder) == {"model.joblib": b"iris model", "sub/metadata.yaml": b"name: iris\n"}


def test_az_uris_and_single_blobs(env: None) -> None:
    assert files(download(f"az://{CONTAINER}/iris")) == files(download(f"{BLOB_URL}/iris"))
    path = download(f"az://{CONTAINER}/iris/model.joblib")
    assert Path(path).read_bytes() == b"iris model"


def test_a_changed_blob_is_fetched_again(env: None, azurite: Azurite) -> None:
    azurite.put(CONTAINER, "changing/model.txt", b"one")
    first = download(f"{BLOB_URL}/changing")
    assert download(f"{BLOB_URL}/changing") == first
    azurite.put(CONTAINER, "changing/model.txt", b"two")
    second = download(f"{BLOB_URL}/changing")
    assert second != first and (Path(second) / "model.txt").read_bytes() == b"two"


def test_a_wrong_key_is_refused_naming_the_container(
    env: None, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=Xby8")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
    with pytest.raises(AccessDenied) as caught:
        download(f"{BLOB_URL}/iris")
    assert f"'{CONTAINER}'" in str(caught.value) and "\n" not in str(caught.value)


def test_the_fetch_command_logs_its_own_lines_only(azurite: Azurite, tmp_path: Path) -> None:
    """Not the Azure SDK's log of each HTTP request; and with a wrong key, one line: the
    listing started beside the first lookup is stopped before the command exits (left
    running, it failed as the interpreter shut down, printing a traceback)."""
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "UNITSERVE_MODEL_CACHE": str(tmp_path),
    }
    done = run_cli("fetch", f"az://{CONTAINER}/iris", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        line for line in done.stderr.splitlines() if line.startswith(f"fetched az://{CONTAINER}")
    ], done.stderr
    wrong = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=Xby8")
    done = run_cli(
        "fetch", f"az://{CONTAINER}/other", env={**env, "AZURE_STORAGE_CONNECTION_STRING": wrong}
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        f"unitserve fetch: error: azure blob bucket '{CONTAINER}': access denied"
    )


def test_missing_is_not_found(env: None) -> None:
    with pytest.raises(NotFound, match=r"/models/nothing: not found"):
        download(f"{BLOB_URL}/nothing")
