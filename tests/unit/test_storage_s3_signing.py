"""Pre-signed URLs made by unitserve's signer are botocore's own, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest

from unitserve.storage.s3_signing import UrlSigner

botocore_session = pytest.importorskip("botocore.session")
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

KEYS = ["model/part-0001.bin", "a b/c+d~é.bin", "x/y%z?w=1#h", "deep/er/and/deeper.txt"]


def client(**arguments: Any) -> Any:
    return botocore_session.Session().create_client(
        "s3", config=Config(signature_version="s3v4"), **arguments
    )


def same_second_urls(signer: UrlSigner, s3: Any, bucket: str, key: str) -> tuple[str, str]:
    """The signer's URL and botocore's, made within the same second (the signature
    covers the time, to the second)."""
    for _ in range(20):
        ours = signer.url(key)
        theirs = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=signer.lifetime
        )
        if ours.split("X-Amz-Date=")[1][:16] == theirs.split("X-Amz-Date=")[1][:16]:
            return ours, theirs
    raise AssertionError("no two URLs in the same second")


@pytest.mark.parametrize(
    "arguments",
    [
        {"endpoint_url": "http://127.0.0.1:9000", "region_name": "us-east-1"},  # path style
        {"region_name": "eu-west-1"},  # AWS: the bucket in the host name
        {"endpoint_url": "https://minio.example:9000", "region_name": "us-west-2"},
    ],
)
@pytest.mark.parametrize("token", [None, "session-token"])
def test_urls_are_botocores_own(arguments: dict[str, Any], token: str | None) -> None:
    s3 = client(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        aws_session_token=token,
        **arguments,
    )
    signer = UrlSigner(s3, "models", Credentials("AKIDEXAMPLE", "secret", token), 3600)
    signer.url("first/key.bin")  # botocore's, read for the address and region
    assert signer._base is not None  # the next ones are the signer's own
    for key in KEYS:
        ours, theirs = same_second_urls(signer, s3, "models", key)
        assert ours == theirs


def test_an_anonymous_bucket_gets_botocores_unsigned_urls() -> None:
    from botocore import UNSIGNED

    s3 = botocore_session.Session().create_client(
        "s3",
        config=Config(signature_version=UNSIGNED),
        endpoint_url="http://127.0.0.1:9000",
        region_name="us-east-1",
    )
    signer = UrlSigner(s3, "models", None, 60)
    assert signer.url("a") == "http://127.0.0.1:9000/models/a"
    assert signer._base is None
    assert signer.url("b c") == "http://127.0.0.1:9000/models/b%20c"
