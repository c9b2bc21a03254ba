"""Object stores: S3 through botocore (s3.py), GCS and Azure blob through fsspec and
their maintained backends.

A URI names either one object, or a prefix read as a folder (``s3://b/models/iris``
holds ``models/iris/model.joblib``, ``models/iris/metadata.yaml``, ...). The store is
asked once whether the URI is one object and, at the same time, for the listing under
it; the objects are then fetched many at once (see transfers.py and s3_transfers.py).
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitserve.storage import s3
from unitserve.storage.archives import escapes
from unitserve.storage.credentials import options_for
from unitserve.storage.errors import AccessDenied, MissingExtra, NotFound, StorageError
from unitserve.storage.locations import Location

# kind → (fsspec protocol, backend module, extra, scheme shown in messages)
_BACKENDS = {
    "gs": ("gcs", "gcsfs", "gcs", "gs"),
    "azure": ("abfs", "adlfs", "azure", "azure blob"),
}
# Names the backends give an object's version, in order of preference: the ETag (Azure),
# the generation (GCS), then the last change and size.
_VERSION_FIELDS = ("ETag", "etag", "generation", "md5Hash", "LastModified", "last_modified")


@dataclass(frozen=True)
class RemoteFile:
    path: str  # in the file system, bucket first; for S3 the object's key
    name: str  # relative to the model folder
    size: int
    version: str


def filesystem(location: Location) -> Any:
    """What `listing` and `fetch` read the store through: botocore's client for S3, an
    fsspec file system for the others."""
    if location.kind == "s3":
        return s3.connect(location)
    protocol, module, extra, _ = _BACKENDS[location.kind]
    _quiet_backend_logs(location.kind)  # before the import: gcsfs logs as it is imported
    try:
        import fsspec

        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(location.shown, module, extra) from exc
    options = options_for(location)
    # A fresh instance without a listing cache: a changed object must be seen as
    # changed, and credentials from the environment may have changed too.
    options.update(skip_instance_cache=True, use_listings_cache=False)
    key_file = options.get("token") if location.kind == "gs" else None
    if key_file is not None and key_file != "anon" and not Path(key_file).is_file():
        # gcsfs would take the text for an access token and ask Google about it
        raise AccessDenied(
            f"gs bucket {location.bucket!r}: GOOGLE_APPLICATION_CREDENTIALS is {key_file}, "
            "which is not a file (a service account's JSON key file)"
        )
    try:
        if location.kind == "gs" and os.environ.get("STORAGE_EMULATOR_HOST"):
            # gcsfs's default class first asks Google's gRPC control API for each
            # bucket's layout, which an emulator does not serve (a minute's timeout per
            # bucket); its base class speaks only the JSON API that emulators do.
            from gcsfs.core import GCSFileSystem

            return GCSFileSystem(**options)
        return fsspec.filesystem(protocol, **options)
    except Exception as exc:
        if key_file is not None and key_file != "anon":
            detail = " ".join(str(exc).split())
            raise AccessDenied(
                f"gs bucket {location.bucket!r}: the key file {key_file} "
                f"(GOOGLE_APPLICATION_CREDENTIALS) cannot be used: {type(exc).__name__}: {detail}"
            ) from exc
        raise translate(exc, location) from exc


# Backend loggers that would fill a server's log (at INFO, as Seldon's is) with what the
# one-line error or the "fetched" line already says:
_NOISY_LOGGERS = {
    # the Azure SDK logs every HTTP request and answer, headers included, at INFO
    "azure": (("azure.core.pipeline.policies.http_logging_policy", logging.WARNING),),
    # gcsfs logs a line as it is imported, and a traceback for each failed request
    # (at ERROR) before raising the error that the one-line message reports
    "gs": (("gcsfs", logging.CRITICAL),),
}


def _quiet_backend_logs(kind: str) -> None:
    """Raise the level of the backend's noisy loggers, unless the user set it."""
    for name, level in _NOISY_LOGGERS.get(kind, ()):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(level)


def listing(fs: Any, location: Location) -> tuple[bool, list[RemoteFile]]:
    """(True, [the object]) if the URI names one object, else (False, [every object
    under the prefix]); `NotFound` if there are none."""
    if location.kind == "s3":
        head, contents = s3.listing(fs.client, location)
        if head is not None:
            name = location.key.rsplit("/", 1)[-1]
            return True, [_s3_remote(location.key, name, head, "ContentLength")]
        prefix = len(location.key.rstrip("/")) + 1 if location.key else 0
        return False, _folder(location, [(o["Key"], o["Key"][prefix:], o) for o in contents])
    from fsspec.asyn import sync

    root = f"{location.bucket}/{location.key}".rstrip("/")
    try:
        info, found = sync(fs.loop, _info_and_listing, fs, root, bool(location.key))
    except Exception as exc:
        raise translate(exc, location) from exc
    if info and info.get("type") == "file":
        return True, [_remote(info, root.rsplit("/", 1)[-1])]
    entries = [
        (path, path[len(root) :].lstrip("/"), info)
        for path, info in found.items()
        if info.get("type") == "file"
    ]
    return False, _folder(location, entries)


def _folder(location: Location, entries: list[tuple[str, str, dict[str, Any]]]) -> list[RemoteFile]:
    """The files of a prefix, from (path, name under the prefix, what the store says)."""
    files = []
    for path, name, info in sorted(entries):
        if not name or name.endswith("/"):
            continue  # folder markers some tools write as empty objects
        if escapes(name) or "/../" in f"/{name}/":
            raise StorageError(f"{location.shown}: refused: the object {path!r} escapes")
        if location.kind == "s3":
            files.append(_s3_remote(path, name, info, "Size"))
        else:
            files.append(_remote(info, name))
    if not files:
        raise NotFound(f"{location.shown}: not found (no object and no objects under it)")
    return files


async def _info_and_listing(
    fs: Any, root: str, keyed: bool
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """What the store says `root` is (None when it is no object), and every object under
    it, asked at once: two round trips in the time of one."""
    import asyncio  # here: S3's fetches need no event loop, and its import costs

    listing = asyncio.ensure_future(fs._find(root, detail=True))
    info = None
    if keyed:
        try:
            info = await fs._info(root)
        except (FileNotFoundError, PermissionError):
            # Not one object (or a HEAD refused, which says only "Forbidden"): the
            # listing says what is there, or the store's full reason.
            info = None
        except BaseException:
            await _drop(listing)
            raise
    if info and info.get("type") == "file":
        await _drop(listing)
        return info, {}
    return info, await listing


async def _drop(task: Any) -> None:
    """Stop a listing no longer needed, and wait until it has stopped: left running, it
    would outlive the call on the file system's loop (a command that then exits sees it
    fail as the interpreter shuts down, and prints a traceback after its error line). An
    error it ended with is of no interest (and, read here, is not reported as never
    retrieved)."""
    import asyncio

    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _remote(info: dict[str, Any], name: str) -> RemoteFile:
    version = next((str(info[f]) for f in _VERSION_FIELDS if info.get(f)), "")
    return RemoteFile(info["name"], name, int(info.get("size") or 0), version)


def _s3_remote(key: str, name: str, info: dict[str, Any], size: str) -> RemoteFile:
    # The ETag as S3 sends it, quotes and all: the version the cache keys on.
    version = str(info.get("ETag") or info.get("LastModified") or "")
    return RemoteFile(key, name, int(info.get(size) or 0), version)


def fetch(fs: Any, location: Location, files: list[RemoteFile], folder: Path) -> None:
    """Write `files` under `folder`, concurrently. (For S3 a file's path is its key.)"""
    local = [folder / f.name for f in files]
    for parent in sorted({path.parent for path in local}):
        parent.mkdir(parents=True, exist_ok=True)
    try:
        if location.kind == "s3":
            from unitserve.storage import s3_transfers

            s3_transfers.fetch_all(fs, location.bucket, [f.path for f in files], local)
        else:
            from unitserve.storage.transfers import fetch_all

            fetch_all(fs, [f.path for f in files], local)
    except Exception as exc:
        raise translate(exc, location) from exc


def translate(exc: BaseException, location: Location) -> StorageError:
    """The backend's error as one line naming the URI (or the bucket, for access)."""
    if location.kind == "s3":
        return s3.translate(exc, location)
    scheme = _BACKENDS[location.kind][3]
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, StorageError):
        return exc
    status = getattr(exc, "status_code", None)  # Azure's errors carry the HTTP status
    if isinstance(exc, PermissionError) or status in (401, 403):
        return AccessDenied(f"{scheme} bucket {location.bucket!r}: access denied: {detail}")
    if isinstance(exc, FileNotFoundError) or status == 404:
        if location.kind == "gs" and detail == f"b/{location.bucket}/o":
            # gcsfs names only the API path it listed: the bucket's objects
            detail = f"the bucket {location.bucket!r} does not exist"
        return NotFound(f"{location.shown}: not found: {detail}")
    return StorageError(f"{location.shown}: {scheme} error: {type(exc).__name__}: {detail}")
