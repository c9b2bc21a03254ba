"""S3 and S3-compatible stores through botocore's own client, used synchronously.

Not through s3fs: its asynchronous stack (aiobotocore, which imports httpx and, through
httpx's command line, rich and pygments when installed; aiohttp, which builds its TLS
contexts at import) cost `unitserve fetch` about half a second of CPU before its first
request, about what rclone takes for a whole 200 MB object. botocore alone lists, signs
and answers errors; the bytes come by plain GETs (s3_transfers.py). botocore's clients
may be shared between threads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from unitserve.storage.credentials import s3_options
from unitserve.storage.errors import AccessDenied, MissingExtra, NotFound, StorageError
from unitserve.storage.locations import Location

log = logging.getLogger("unitserve.storage")

# Connections botocore keeps to the store: one per transfer at once, for the fallback
# that fetches every object by botocore's own calls.
POOL = 16
# Error codes S3 answers for credentials it refuses (the HTTP status is 403 too, except
# for a HEAD, whose answer has no body to name the code).
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
_MISSING = {"NoSuchBucket", "NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class Store:
    """An S3 store as the environment describes it."""

    client: Any  # botocore's S3 client
    credentials: Any  # botocore's credentials the client signs with; None: anonymous
    verify: bool | str  # TLS checks: False (none), a CA bundle's path, or True


# Stores already made in this process, by the environment they were made from: creating
# a client reads botocore's service model and endpoint rules (0.1 s of CPU or more), which
# a server loading many models from one store pays once. botocore's clients may be shared
# between threads, and temporary credentials refresh themselves.
_made: dict[str, Store] = {}
_making = threading.Lock()


def connect(location: Location) -> Store:
    """botocore's S3 client, configured from the environment (credentials.py): the one
    made before in this process for the same environment, if any."""
    try:
        import botocore.session  # noqa: F401 - only whether it is there, before the cache
    except ImportError as exc:
        raise MissingExtra(location.shown, "botocore", "s3") from exc
    options = s3_options(os.environ)
    # Everything the client depends on: the options, and the variables botocore reads
    # itself (a profile, a role, a credentials file, ...).
    aws = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    key = json.dumps([options, aws], sort_keys=True, default=str)
    with _making:
        store = _made.get(key)
        if store is None:
            store = _connect(location, options)
            if store.credentials is not None or options.get("anon"):
                _made[key] = store  # (without credentials, look again next time)
    return store


def _connect(location: Location, options: dict[str, Any]) -> Store:
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.credentials import Credentials

    config: dict[str, Any] = {**options["config_kwargs"], "max_pool_connections": POOL}
    arguments: dict[str, Any] = dict(options.get("client_kwargs", {}))
    session = botocore.session.Session()
    if options.get("anon"):
        config["signature_version"] = UNSIGNED
        credentials = None
    elif "key" in options:
        arguments.update(aws_access_key_id=options["key"], aws_secret_access_key=options["secret"])
        arguments["aws_session_token"] = options.get("token")
        credentials = Credentials(options["key"], options["secret"], options.get("token"))
    else:
        # The SDK's own chain (profiles, roles), which the client then uses too.
        credentials = session.get_credentials()
    # Timestamps kept as the text S3 sends: parsing each listed object's last change
    # into a datetime was a third of a 1,000-object listing's time, and the versions
    # here come from ETags.
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    if arguments.get("verify") is False:
        # Asked for (S3_VERIFY_SSL=0): said once here, not by urllib3 on every request.
        log.info(
            "%s: the server's TLS certificate is not checked (S3_VERIFY_SSL=0)", location.shown
        )
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    try:
        client = session.create_client("s3", config=Config(**config), **arguments)
    except Exception as exc:
        raise translate(exc, location) from exc
    return Store(client, credentials, arguments.get("verify", True))


def listing(client: Any, location: Location) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """What the store says the key is (a HEAD's answer, None when no object has that
    name) and, when it is no object, every object under it as a folder. Both are asked
    at once: two round trips in the time of one."""
    with ThreadPoolExecutor(1, thread_name_prefix="s3-listing") as pool:
        prefix = f"{location.key.rstrip('/')}/" if location.key else ""
        listed: Future[list[dict[str, Any]]] = pool.submit(_list, client, location.bucket, prefix)
        try:
            head = _head(client, location) if location.key else None
            if head is not None:
                listed.cancel()  # one object: what is under it as a folder does not matter
                return head, []
            return None, listed.result()
        except Exception as exc:
            raise translate(exc, location) from exc


def _head(client: Any, location: Location) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        answer: dict[str, Any] = client.head_object(Bucket=location.bucket, Key=location.key)
    except ClientError as exc:
        # Not one object (or a HEAD refused, which says only "Forbidden"): the listing
        # says what is there, or the store's full reason.
        if _status(exc) in (403, 404):
            return None
        raise
    return answer


def _list(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(page.get("Contents", []))
    return found


def _status(exc: Any) -> int:
    return int(getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def translate(exc: BaseException, location: Location) -> StorageError:
    """botocore's error as one line naming the URI (or the bucket, for access)."""
    if isinstance(exc, StorageError):
        return exc
    detail = " ".join(str(exc).split()) or type(exc).__name__
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return AccessDenied(
            f"s3 bucket {location.bucket!r}: no credentials found (set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or awsAnonymousCredential=true for a public bucket)"
        )
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    status = _status(exc)
    if code in _DENIED or status in (401, 403):
        return AccessDenied(f"s3 bucket {location.bucket!r}: access denied: {detail}")
    if code in _MISSING or status == 404:
        return NotFound(f"{location.shown}: not found: {detail}")
    return StorageError(f"{location.shown}: s3 error: {name}: {detail}")
