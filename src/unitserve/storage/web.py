"""A model behind a plain http(s) URL: one file, an archive of a folder or a single
file. One GET serves both the version check and the download: its ETag (or its
Last-Modified and length) is read before the body, and the body is not read at all when
that version is already on disk. (A HEAD first would fail on pre-signed URLs, which are
signed for GET only.)"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from unitserve.storage.errors import AccessDenied, NotFound, StorageError
from unitserve.storage.locations import Location

CHUNK = 1024 * 1024


def file_name(location: Location) -> str:
    name = posixpath.basename(unquote(urlsplit(location.uri).path))
    return name if name not in ("", ".", "..") else "model"


@contextlib.contextmanager
def opened(location: Location) -> Iterator[httpx.Response]:
    """The GET response, headers read, body not yet; errors as one line."""
    # httpx logs each request at INFO, which the "fetched" line (or the error) says
    # already; the user's own level for it stands.
    requests_log = logging.getLogger("httpx")
    if requests_log.level == logging.NOTSET:
        requests_log.setLevel(logging.WARNING)
    try:
        with (
            httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0)) as client,
            client.stream("GET", location.uri) as response,
        ):
            _check(response, location)
            yield response
    except httpx.HTTPError as exc:
        raise StorageError(f"{location.shown}: {type(exc).__name__}: {exc}") from exc


def _check(response: httpx.Response, location: Location) -> None:
    status = response.status_code
    if status == 404 or status == 410:
        raise NotFound(f"{location.shown}: not found (HTTP {status})")
    if status in (401, 403):
        raise AccessDenied(f"{location.shown}: access denied (HTTP {status})")
    if status >= 400:
        raise StorageError(f"{location.shown}: HTTP {status} {response.reason_phrase}")


def version_of(response: httpx.Response) -> str:
    """The server's version of the file: its ETag, else its Last-Modified and length;
    empty when it tells neither."""
    etag = response.headers.get("etag")
    if etag:
        return f"etag {etag}"
    modified = response.headers.get("last-modified")
    if modified:
        return f"modified {modified} length {response.headers.get('content-length', '')}"
    return ""


def expected_size(response: httpx.Response) -> int | None:
    length = response.headers.get("content-length", "")
    return int(length) if length.isdigit() else None


def write_body(response: httpx.Response, path: Path, location: Location) -> None:
    try:
        with path.open("wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise StorageError(f"{location.shown}: download cut: {exc}") from exc
    expected = expected_size(response)
    if expected is not None and "content-encoding" not in response.headers:
        got = path.stat().st_size
        if got != expected:
            raise StorageError(f"{location.shown}: download cut: {got} of {expected} bytes")
