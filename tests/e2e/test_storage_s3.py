"""unitserve.storage against a real S3 server (moto's, on 127.0.0.1, checking keys)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import clean_env, run_cli
from tests.storage_services import MotoS3
from unitserve.storage import AccessDenied, NotFound, download

BUCKET = "models"
MANY = 200


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    server = MotoS3(checked_keys=True)
    try:
        server.s3.create_bucket(Bucket=BUCKET)
        server.put(BUCKET, "iris/model.joblib", b"iris model")
        server.put(BUCKET, "iris/metadata.yaml", b"name: iris\n")
        server.put(BUCKET, "iris/sub/notes.txt", b"notes")
        server.put(BUCKET, "single/model.bst", b"booster")
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: server.put(BUCKET, f"many/part-{i:04d}.bin", f"part {i}".encode()),
                    range(MANY),
                )
            )
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The operator's variables for an S3-compatible server: a host and S3_USE_HTTPS=0."""
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "AWS_ACCESS_KEY_ID": s3.key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret,
        "AWS_REGION": "us-east-1",
        "S3_ENDPOINT": f"127.0.0.1:{s3.port}",
        "S3_USE_HTTPS": "0",
        "UNITSERVE_MODEL_CACHE": str(tmp_path / "cache"),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def files(folder: str | Path) -> dict[str, bytes]:
    root = Path(folder)
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".unitserve")
    }


def test_a_prefix_comes_down_as_a_folder(env: dict[str, str]) -> None:
    folder = download(f"s3://{BUCKET}/iris")
    assert files(folder) == {
        "model.joblib": b"iris model",
        "metadata.yaml": b"name: iris\n",
        "sub/notes.txt": b"notes",
    }
    assert Path(folder).is_relative_to(env["UNITSERVE_MODEL_CACHE"])


def test_a_single_object_comes_down_as_its_file(
    env: dict[str, str], s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    # KServe's variable: a whole URL, which wins over S3_ENDPOINT.
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.url)
    monkeypatch.setenv("S3_ENDPOINT", "127.0.0.1:1")
    path = download(f"s3://{BUCKET}/single/model.bst")
    assert Path(path).name == "model.bst"
    assert Path(path).read_bytes() == b"booster"


def test_many_files_all_arrive(env: dict[str, str]) -> None:
    got = files(download(f"s3://{BUCKET}/many/"))
    assert len(got) == MANY
    assert got["part-0123.bin"] == b"part 123"


def test_wrong_credentials_say_the_bucket_and_the_reason(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(AccessDenied) as caught:
        download(f"s3://{BUCKET}/iris")
    message = str(caught.value)
    assert "\n" not in message
    assert f"'{BUCKET}'" in message and "signature" in message.lower()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIANOSUCHKEY")
    with pytest.raises(AccessDenied, match="Access Key Id"):
        download(f"s3://{BUCKET}/iris")


def test_a_missing_key_is_not_found_naming_the_uri(env: dict[str, str]) -> None:
    with pytest.raises(NotFound) as caught:
        download(f"s3://{BUCKET}/no-such-model")
    assert str(caught.value).startswith(f"s3://{BUCKET}/no-such-model: not found")
    with pytest.raises(FileNotFoundError, match="nobucket"):
        download("s3://nobucket/iris")


def test_an_unchanged_model_is_not_fetched_again(env: dict[str, str]) -> None:
    first = download(f"s3://{BUCKET}/iris")
    # Had it been fetched again, this local change would be gone.
    (Path(first) / "model.joblib").write_bytes(b"changed locally")
    second = download(f"s3://{BUCKET}/iris")
    assert second == first
    assert (Path(second) / "model.joblib").read_bytes() == b"changed locally"


def test_a_changed_object_is_fetched_again(env: dict[str, str], s3: MotoS3) -> None:
    s3.put(BUCKET, "changing/model.joblib", b"version 1")
    first = download(f"s3://{BUCKET}/changing")
    s3.put(BUCKET, "changing/model.joblib", b"version 2")  # a new ETag
    second = download(f"s3://{BUCKET}/changing")
    assert second != first
    assert (Path(second) / "model.joblib").read_bytes() == b"version 2"
    # Untouched: this process asked for version 1, so it may still be reading it.
    assert (Path(first) / "model.joblib").read_bytes() == b"version 1"


def fetched(uri: str, env: dict[str, str]) -> tuple[Path, str]:
    """`unitserve fetch URI` into the cache: the path and what it logged."""
    done = run_cli("fetch", uri, env=env)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip()), done.stderr


def test_an_older_version_no_process_uses_is_removed(env: dict[str, str], s3: MotoS3) -> None:
    uri = f"s3://{BUCKET}/pruned"
    s3.put(BUCKET, "pruned/model.joblib", b"version 1")
    first, _ = fetched(uri, env)
    s3.put(BUCKET, "pruned/model.joblib", b"version 2")
    second, log = fetched(uri, env)
    assert second != first
    assert not first.exists()
    assert f"removed {first} from the cache: an older version of {uri}" in log
    assert (second / "model.joblib").read_bytes() == b"version 2"
    cache = Path(env["UNITSERVE_MODEL_CACHE"])
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".leases")] == [second.name]


HOLDER = """
import sys
from unitserve.storage import download
print(download(sys.argv[1]), flush=True)
sys.stdin.read()  # serves until told to stop
"""


def test_an_older_version_a_running_process_uses_is_kept(env: dict[str, str], s3: MotoS3) -> None:
    uri = f"s3://{BUCKET}/leased"
    s3.put(BUCKET, "leased/model.joblib", b"version 1")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, uri],
        env=clean_env(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        first = Path(holder.stdout.readline().strip())
        assert (first / "model.joblib").read_bytes() == b"version 1"
        s3.put(BUCKET, "leased/model.joblib", b"version 2")
        second, log = fetched(uri, env)
        assert second != first
        assert (first / "model.joblib").read_bytes() == b"version 1"  # still in use
        assert f"kept {first} in the cache: an older version of {uri}, still in use" in log
    finally:
        holder.communicate("", timeout=30)  # stdin closed: the holder ends
    assert holder.returncode == 0
    # Its process gone, the old version goes with the next download of the URI.
    again, log = fetched(uri, env)
    assert again == second and "not fetched" in log
    assert not first.exists()


def test_a_destination_folder_holds_the_model_and_is_updated(
    env: dict[str, str], s3: MotoS3, tmp_path: Path
) -> None:
    dest = tmp_path / "mnt" / "models"
    s3.put(BUCKET, "dest/model.joblib", b"one")
    assert download(f"s3://{BUCKET}/dest", dest) == str(dest)
    assert files(dest) == {"model.joblib": b"one"}
    s3.put(BUCKET, "dest/model.joblib", b"two")
    assert download(f"s3://{BUCKET}/dest", dest) == str(dest)
    assert files(dest) == {"model.joblib": b"two"}
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".partial")]


def test_an_archive_object_is_unpacked(env: dict[str, str], s3: MotoS3) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"packed model"
        member = tarfile.TarInfo("model.joblib")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    s3.put(BUCKET, "packed/iris.tar.gz", buffer.getvalue())
    folder = download(f"s3://{BUCKET}/packed/iris.tar.gz")
    assert files(folder) == {"model.joblib": b"packed model"}


def test_the_fetch_command_prints_the_path(env: dict[str, str], tmp_path: Path) -> None:
    done = run_cli("fetch", f"s3://{BUCKET}/iris", str(tmp_path / "out"), env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "out")
    assert "fetched s3://models/iris: 3 files" in done.stderr
    missing = run_cli("fetch", f"s3://{BUCKET}/nothing", env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"unitserve fetch: error: s3://{BUCKET}/nothing: not found "
        "(no object and no objects under it)"
    ]
