"""How S3 objects come down: by pre-signed GETs where the server takes them, by botocore's
own calls where it does not (moto checking keys answers pre-signed URLs with a 500)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage_services import MotoS3
from unitserve.storage import NotFound, StorageError, download, s3_transfers

BUCKET = "signed"
FALLBACK = "fetching with botocore's calls instead"


def server_env(server: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", server.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.secret)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("S3_ENDPOINT", server.url)
    monkeypatch.setenv("UNITSERVE_MODEL_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def contents() -> dict[str, bytes]:
    # One object larger than a read block (streamed), and small ones (read whole).
    large = os.urandom(3 * s3_transfers.BLOCK + 12345)
    return {"large.bin": large, **{f"sub/part-{i:02d}": os.urandom(100 + i) for i in range(40)}}


@pytest.fixture(scope="module")
def open_server(contents: dict[str, bytes]) -> Iterator[MotoS3]:
    server = MotoS3(checked_keys=False)
    try:
        server.s3.create_bucket(Bucket=BUCKET)
        for name, body in contents.items():
            server.put(BUCKET, f"model/{name}", body)
        yield server
    finally:
        server.stop()


def read_all(folder: str) -> dict[str, bytes]:
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_objects_come_whole_by_signed_urls(
    open_server: MotoS3,
    contents: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server_env(open_server, tmp_path, monkeypatch)
    with caplog.at_level(logging.DEBUG, logger="unitserve.storage"):
        folder = download(f"s3://{BUCKET}/model")
    assert read_all(folder) == contents
    assert FALLBACK not in caplog.text
    single = download(f"s3://{BUCKET}/model/large.bin", tmp_path / "one")
    assert Path(single).read_bytes() == contents["large.bin"]


def test_an_object_gone_since_the_listing_is_not_found(
    open_server: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unitserve.storage import objects
    from unitserve.storage.locations import parse

    server_env(open_server, tmp_path, monkeypatch)
    location = parse(f"s3://{BUCKET}/model")
    fs = objects.filesystem(location)
    _, listed = objects.listing(fs, location)
    open_server.put(BUCKET, "model/gone.bin", b"soon gone")
    _, with_gone = objects.listing(fs, location)
    open_server.s3.delete_object(Bucket=BUCKET, Key="model/gone.bin")
    assert len(with_gone) == len(listed) + 1
    with pytest.raises(NotFound, match=r"gone\.bin"):
        objects.fetch(fs, location, with_gone, tmp_path / "out")


def test_a_server_refusing_signed_urls_gets_botocore_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = MotoS3(checked_keys=True)
    try:
        server.s3.create_bucket(Bucket=BUCKET)
        server.put(BUCKET, "model/a.bin", b"a")
        server.put(BUCKET, "model/b/c.bin", b"c")
        server_env(server, tmp_path, monkeypatch)
        with caplog.at_level(logging.DEBUG, logger="unitserve.storage"):
            folder = download(f"s3://{BUCKET}/model")
        assert read_all(folder) == {"a.bin": b"a", "b/c.bin": b"c"}
        assert FALLBACK in caplog.text
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore:Unverified HTTPS request")  # the test's own boto3 puts
def test_https_without_and_with_certificate_checks(
    contents: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = MotoS3(checked_keys=False, tls=True)  # a self-signed certificate
    try:
        server.s3.create_bucket(Bucket=BUCKET)
        for name, body in contents.items():
            server.put(BUCKET, f"model/{name}", body)
        server_env(server, tmp_path, monkeypatch)
        monkeypatch.setenv("S3_VERIFY_SSL", "0")
        with caplog.at_level(logging.DEBUG, logger="unitserve.storage"):
            folder = download(f"s3://{BUCKET}/model")
        assert read_all(folder) == contents
        assert FALLBACK not in caplog.text  # pre-signed GETs over TLS
        monkeypatch.delenv("S3_VERIFY_SSL")
        with pytest.raises(StorageError, match="CERTIFICATE_VERIFY_FAILED"):
            download(f"s3://{BUCKET}/model", tmp_path / "checked")
    finally:
        server.stop()


def test_a_public_bucket_without_credentials(
    open_server: MotoS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_server.s3.create_bucket(Bucket="public", ACL="public-read")
    for name in ("a.bin", "sub/b c.bin"):
        open_server.s3.put_object(
            Bucket="public", Key=f"model/{name}", Body=name.encode(), ACL="public-read"
        )
    server_env(open_server, tmp_path, monkeypatch)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("awsAnonymousCredential", "true")
    with caplog.at_level(logging.DEBUG, logger="unitserve.storage"):
        folder = download("s3://public/model")
    assert read_all(folder) == {"a.bin": b"a.bin", "sub/b c.bin": b"sub/b c.bin"}
    assert FALLBACK not in caplog.text  # plain GETs of unsigned URLs
