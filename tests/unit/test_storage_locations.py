"""Model URIs and the storage options the environment gives them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from unitserve.storage import AccessDenied, MissingExtra, StorageError, download
from unitserve.storage.credentials import azure_options, gcs_options, s3_options
from unitserve.storage.locations import parse


@pytest.mark.parametrize(
    ("uri", "kind", "bucket", "key", "account"),
    [
        ("/mnt/models", "local", "", "/mnt/models", ""),
        ("models/iris", "local", "", "models/iris", ""),
        ("file:///mnt/my%20models", "local", "", "/mnt/my models", ""),
        ("s3://bucket/iris/", "s3", "bucket", "iris", ""),
        ("s3://bucket", "s3", "bucket", "", ""),
        ("gs://seldon-models/sklearn/iris", "gs", "seldon-models", "sklearn/iris", ""),
        ("https://acct.blob.core.windows.net/c/m/x.zip", "azure", "c", "m/x.zip", "acct"),
        ("az://c/m", "azure", "c", "m", ""),
        ("abfs://c@acct.dfs.core.windows.net/m", "azure", "c", "m", "acct"),
        ("https://example.com/m.tar.gz", "http", "", "https://example.com/m.tar.gz", ""),
    ],
)
def test_uri_forms(uri: str, kind: str, bucket: str, key: str, account: str) -> None:
    location = parse(uri)
    assert (location.kind, location.bucket, location.key, location.account) == (
        kind,
        bucket,
        key,
        account,
    )


def test_pvc_says_it_is_a_kubernetes_volume_in_one_line() -> None:
    with pytest.raises(StorageError) as caught:
        download("pvc://claim/models/iris")
    assert "Kubernetes volume claim" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("uri", "says"),
    [("ftp://host/m", "scheme ftp:// is not supported"), ("s3:///key", "no bucket"), ("", "empty")],
)
def test_unusable_uris(uri: str, says: str) -> None:
    with pytest.raises(StorageError, match=says):
        parse(uri)


def test_a_query_never_shows_in_messages() -> None:
    assert parse("https://h/m.zip?sig=secret").shown == "https://h/m.zip"


V4 = {"config_kwargs": {"signature_version": "s3v4"}}  # every S3 request signed with version 4


def test_s3_options_from_the_operators_variables() -> None:
    env = {
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "S3_ENDPOINT": "minio.minio:9000",
        "S3_USE_HTTPS": "0",
        "S3_VERIFY_SSL": "0",
    }
    assert s3_options(env) == {
        **V4,
        "key": "id",
        "secret": "secret",
        "token": "token",
        "client_kwargs": {
            "region_name": "eu-west-1",
            "endpoint_url": "http://minio.minio:9000",
            "verify": False,
        },
    }
    kserve = {"AWS_ENDPOINT_URL": "https://s3.local", "AWS_CA_BUNDLE": "/ca.pem"}
    assert s3_options({**kserve, "S3_ENDPOINT": "ignored:1"})["client_kwargs"] == {
        "endpoint_url": "https://s3.local",
        "verify": "/ca.pem",
    }
    assert s3_options({"awsAnonymousCredential": "true"}) == {**V4, "anon": True}
    assert s3_options({}) == V4  # the AWS SDK's own chain: profiles, roles


def test_gcs_options() -> None:
    assert gcs_options({"GOOGLE_APPLICATION_CREDENTIALS": "/sa.json"}) == {"token": "/sa.json"}
    assert gcs_options({"STORAGE_EMULATOR_HOST": "http://127.0.0.1:1"}) == {"token": "anon"}
    assert gcs_options({}) == {}


def test_an_unusable_gcs_key_file_names_the_bucket_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An emulator that is not there: nothing may leave this machine.
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(AccessDenied) as caught:
        download("gs://models/iris")
    assert str(caught.value) == (
        f"gs bucket 'models': GOOGLE_APPLICATION_CREDENTIALS is {tmp_path / 'missing.json'}, "
        "which is not a file (a service account's JSON key file)"
    )
    (tmp_path / "key.json").write_text('{"type": "service_account"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    with pytest.raises(AccessDenied) as caught:
        download("gs://models/iris")
    message = str(caught.value)
    assert message.startswith(
        f"gs bucket 'models': the key file {tmp_path / 'key.json'} "
        "(GOOGLE_APPLICATION_CREDENTIALS) cannot be used: "
    ), message
    assert "\n" not in message


def test_azure_options_in_kserves_order() -> None:
    location = parse("https://acct.blob.core.windows.net/c/m")
    assert azure_options({"AZURE_STORAGE_CONNECTION_STRING": "cs"}, location) == {
        "connection_string": "cs"
    }
    assert azure_options({"AZURE_STORAGE_ACCESS_KEY": "k"}, location) == {
        "account_name": "acct",
        "account_key": "k",
    }
    env = {"AZURE_STORAGE_ACCOUNT_NAME": "other", "AZURE_STORAGE_SAS_TOKEN": "sv=1"}
    assert azure_options(env, parse("az://c/m")) == {"account_name": "other", "sas_token": "sv=1"}
    principal = {"AZ_TENANT_ID": "t", "AZ_CLIENT_ID": "c", "AZ_CLIENT_SECRET": "s"}
    assert azure_options(principal, location) == {
        "account_name": "acct",
        "tenant_id": "t",
        "client_id": "c",
        "client_secret": "s",
    }
    assert azure_options({}, location) == {"account_name": "acct", "anon": True}


def test_a_sas_in_an_azure_url_is_used_and_never_shown() -> None:
    location = parse("https://acct.blob.core.windows.net/c/m?sv=2024&sig=secret")
    assert azure_options({}, location) == {
        "account_name": "acct",
        "sas_token": "sv=2024&sig=secret",
    }
    assert "secret" not in location.shown


def test_a_missing_library_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore.session", None)  # as if not installed
    with pytest.raises(MissingExtra) as caught:
        download("s3://bucket/model")
    assert str(caught.value) == (
        "s3://bucket/model: needs the botocore library, which is not installed: "
        "pip install 'unitserve[s3]'"
    )
    assert isinstance(caught.value, ImportError)
