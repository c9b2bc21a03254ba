"""One botocore client per environment in a process: made once, made anew when the
environment changes (no request is made: creating a client calls no server)."""

from __future__ import annotations

import pytest

from unitserve.storage import s3
from unitserve.storage.locations import parse

pytest.importorskip("botocore.session")

LOCATION = parse("s3://models/iris")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "S3_ENDPOINT", "awsAnonymousCredential"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    return monkeypatch


def test_the_same_environment_gets_the_same_client(env: pytest.MonkeyPatch) -> None:
    first = s3.connect(LOCATION)
    assert s3.connect(parse("s3://other-bucket/model")) is first
    assert first.client.meta.region_name == "eu-west-1"
    assert first.credentials.secret_key == "secret"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AWS_SECRET_ACCESS_KEY", "rotated"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:10"),
        ("AWS_MAX_ATTEMPTS", "7"),  # read by botocore itself
    ],
)
def test_a_changed_environment_gets_a_new_client(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    first = s3.connect(LOCATION)
    env.setenv(name, value)
    second = s3.connect(LOCATION)
    assert second is not first
    assert s3.connect(LOCATION) is second
