"""Model storage: turn a model URI into a local path.

A leaf of the package: it imports nothing of unitserve's above it, so that the
prepackaged servers, the graph runner and users' own ``load()`` can all call it.

    >>> from unitserve.storage import download
    >>> folder = download("s3://models/iris")          # doctest: +SKIP

Schemes, credentials and the cache are described in docs/storage.md.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from unitserve.storage import archives, cache, leases, objects
from unitserve.storage.errors import (
    AccessDenied,
    MissingExtra,
    NotFound,
    StorageError,
    UnsafeArchive,
)
from unitserve.storage.locations import Location, parse
from unitserve.storage.progress import Progress

__all__ = [
    "AccessDenied",
    "MissingExtra",
    "NotFound",
    "StorageError",
    "UnsafeArchive",
    "download",
]

log = logging.getLogger("unitserve.storage")


def download(uri: str, dest: str | Path | None = None) -> str:
    """The local path holding `uri`'s model, fetched if need be.

    For a URI naming one plain file, the path of that file; for a folder, a prefix of
    objects or an archive (``.tar``, ``.tar.gz``, ``.tgz``, ``.zip``, unpacked), a folder.

    Without `dest`, a local path (or ``file://``) is returned as it is, and a remote
    model goes to the cache (``UNITSERVE_MODEL_CACHE``, else ``~/.cache/unitserve/models``),
    one folder per URI and version. With `dest`, the model is put in that folder (a
    local one is copied), which must be new, empty or an earlier download's.

    Either way a model that is already there at the same version (ETag, generation, or
    last change and size) is not fetched again, and an interrupted download never leaves
    a half model. A cached version is never removed while this process uses it: until
    the served model whose load downloaded it is unloaded, or else until the process
    ends (leases.py). Errors are `StorageError`s (`NotFound`, `AccessDenied`,
    `UnsafeArchive`, `MissingExtra`) whose message is one line naming the URI.
    """
    location = parse(str(uri))
    if location.kind == "local":
        return _local(location, dest)
    if location.kind == "http":
        return _http(location, dest)
    return _objects(location, dest)


def _local(location: Location, dest: str | Path | None) -> str:
    source = Path(location.key).expanduser()
    if not source.exists():
        raise NotFound(f"{location.uri}: no such file or folder")
    if dest is None:
        return str(source)
    if Path(dest).expanduser().absolute().resolve().is_relative_to(source.resolve()):
        raise StorageError(f"{location.uri}: the destination {dest} is inside the model")
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    parts = [(str(p), str(p.stat().st_mtime_ns), p.stat().st_size) for p in files]
    single = source.is_file()

    def copy(staging: Path) -> None:
        if single:
            shutil.copy2(source, staging / source.name)
        else:
            shutil.copytree(source, staging, dirs_exist_ok=True)

    return _put(location, dest, cache.version_of(parts), single, source.name, None, copy)


def _http(location: Location, dest: str | Path | None) -> str:
    # Imported here: the HTTP client is no part of a fetch from an object store.
    from unitserve.storage import web

    name = web.file_name(location)
    with web.opened(location) as response:
        version = web.version_of(response)
        if not version:
            log.info("%s: the server gives no ETag nor Last-Modified: fetched anew", location.shown)
            version = f"unversioned {uuid.uuid4()}"

        def fetch(staging: Path) -> None:
            web.write_body(response, staging / name, location)

        return _put(location, dest, version, True, name, web.expected_size(response), fetch)


def _objects(location: Location, dest: str | Path | None) -> str:
    fs = objects.filesystem(location)
    single, files = objects.listing(fs, location)
    version = cache.version_of([(f.name, f.version, f.size) for f in files])
    total = sum(f.size for f in files)

    def fetch(staging: Path) -> None:
        objects.fetch(fs, location, files, staging)

    return _put(location, dest, version, single, files[0].name, total, fetch, len(files))


def _put(
    location: Location,
    dest: str | Path | None,
    version: str,
    single: bool,
    name: str,
    size: int | None,
    fetch: Callable[[Path], None],
    count: int = 1,
) -> str:
    """Fetch into the target folder unless it holds this version; the local path."""
    target = cache.Target(location.uri, version, dest)
    unpacked = single and archives.is_archive(name)
    result = target.folder / name if single and not unpacked else target.folder
    # Before looking: a version this process leases is never removed under it.
    holder = None if target.chosen else leases.hold(target.folder)
    if target.holds_it():
        log.info("%s: already at %s (unchanged), not fetched", location.shown, result)
        _prune(target, location)
        return str(result)
    started = time.monotonic()
    try:
        with target.staged() as staging:
            landing = staging / ".archive" if unpacked else staging
            landing.mkdir(exist_ok=True)
            with Progress(location.shown, staging, size):
                fetch(landing)
            if unpacked:
                archives.unpack(landing / name, staging, location.shown)
                shutil.rmtree(landing)
    except BaseException:
        if holder is not None:
            leases.release(target.folder, holder)  # nothing came of it to use
        raise
    elapsed = time.monotonic() - started
    log.info(
        "fetched %s: %d file%s, %.1f MiB in %.1f s, to %s",
        location.shown,
        count,
        "" if count == 1 else "s",
        (size or 0) / 2**20,
        elapsed,
        result,
    )
    _prune(target, location)
    return str(result)


def _prune(target: cache.Target, location: Location) -> None:
    """With the current version in the cache, the older ones no process uses go."""
    if not target.chosen:
        leases.prune(target.folder, target.family, location.shown)
