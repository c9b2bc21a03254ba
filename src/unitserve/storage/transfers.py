"""Moving objects' bytes to local files, many at once, on the file system's own event loop.

The object stores' fsspec backends are asynchronous: every transfer here is a coroutine
on the loop the file system already runs, a fixed number in flight at once (only a
small file's write goes to a thread: creating a file can take milliseconds on a busy
disk, and the other transfers need not wait for it).

For S3 the bytes come by plain GETs of pre-signed URLs: botocore signs each object's URL
(the same signing and credentials as the listing), and one aiohttp session fetches them.
A full botocore call per object costs several milliseconds of the client's CPU (its
event hooks, parsing of every response header, a user-agent string per request); on a
small machine that CPU is taken from the transfers, and a prefix of many small files
came down at half the speed of rclone. A large object comes as one stream, written in
large blocks, as rclone fetches objects below its multi-thread cut-off: a second
stream's ranges bring nothing when one stream fills the link, and cost another request.
A server that refuses pre-signed URLs (some S3-compatible ones accept only signed
headers) is found out by the first object, and then every object goes through botocore's
own calls. Other stores go through their backend's own ``_get_file``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from unitserve.storage.errors import NotFound, StorageError

# Files in flight at once. More adds little against a store far away (each transfer is
# already streamed), and on a small machine the client's own CPU per request starts to
# compete with the transfers.
CONCURRENT = 16
BLOCK = 1024 * 1024  # bytes read and written at a time
ATTEMPTS = 3  # tries per object when the connection fails or the store answers 5xx
URL_LIFETIME = 3600  # seconds a pre-signed URL stays valid: longer than any one transfer


log = logging.getLogger("unitserve.storage")


class TransferFailed(StorageError):
    """One object could not be fetched; the message names it and the reason."""


def fetch_all(fs: Any, sources: list[str], targets: list[Path], s3: bool) -> None:
    """Write each of `sources` (paths in `fs`) to the matching local file."""
    from fsspec.asyn import sync

    sync(fs.loop, _fetch_all, fs, sources, targets, s3)


async def _fetch_all(fs: Any, sources: list[str], targets: list[Path], s3: bool) -> None:
    pairs = list(zip(sources, targets, strict=True))
    if not s3:
        await _each(pairs, lambda source, target: fs._get_file(source, str(target)))
        return
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONCURRENT, ssl=_ssl_of(fs))
    proxy = _proxy_for(fs._s3.meta.endpoint_url)
    async with aiohttp.ClientSession(connector=connector) as http:
        try:
            # The first object alone: whether the store takes pre-signed URLs at all.
            await _s3_get(fs, http, *pairs[0], proxy)
        except _Unsigned as refused:
            # Some S3-compatible servers take only signed headers (moto with its access
            # checks answers a 500); a real refusal is then told by botocore's call.
            log.debug("%s; fetching with botocore's calls instead", refused)
            await _each(pairs, lambda source, target: fs._get_file(source, str(target)))
            return
        await _each(pairs[1:], lambda source, target: _s3_get(fs, http, source, target, proxy))


async def _each(pairs: list[tuple[str, Path]], get: Callable[[str, Path], Awaitable[None]]) -> None:
    """`get` for every (source, target), CONCURRENT at a time."""
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(source: str, target: Path) -> None:
        async with gate:
            await get(source, target)

    await asyncio.gather(*(one(source, target) for source, target in pairs))


def _proxy_for(endpoint: str) -> str | None:
    """The proxy the environment names for the endpoint (``HTTPS_PROXY``, ``NO_PROXY``,
    ...), as botocore would use: looked up once, not per request."""
    from urllib.request import getproxies, proxy_bypass

    host = urlsplit(endpoint).hostname or ""
    if not host or proxy_bypass(host):
        return None
    return getproxies().get(urlsplit(endpoint).scheme)


def _ssl_of(fs: Any) -> ssl.SSLContext | bool:
    """The TLS checks botocore was told to make (``verify``): off, a CA bundle, or the
    default ones."""
    verify = (getattr(fs, "client_kwargs", None) or {}).get("verify")
    if verify is False:
        return False
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return True


async def _s3_get(fs: Any, http: Any, source: str, target: Path, proxy: str | None) -> None:
    import aiohttp

    bucket, key, version = fs.split_path(source)
    params = {"Bucket": bucket, "Key": key}
    if version:
        params["VersionId"] = version
    for attempt in range(1, ATTEMPTS + 1):
        url = await fs._s3.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=URL_LIFETIME
        )
        try:
            async with http.get(url, proxy=proxy) as response:
                if response.status >= 500 and attempt < ATTEMPTS:
                    await asyncio.sleep(0.2 * attempt)
                    continue
                if response.status == 404:
                    raise NotFound(f"{source}: not found (HTTP 404)")
                if response.status >= 300:
                    raise _Unsigned(source, response.status, await response.text())
                if (response.content_length or 0) <= BLOCK:
                    data = await response.read()
                    await asyncio.to_thread(target.write_bytes, data)
                    return
                with open(target, "wb") as out:
                    async for block in response.content.iter_chunked(BLOCK):
                        out.write(block)
                return
        except (TimeoutError, aiohttp.ClientError) as exc:
            if attempt == ATTEMPTS:
                raise TransferFailed(f"{source}: {type(exc).__name__}: {exc}") from exc
            await asyncio.sleep(0.2 * attempt)


class _Unsigned(StorageError):
    """The store refused a pre-signed URL (its own code and HTTP status)."""

    def __init__(self, source: str, status: int, body: str) -> None:
        code = body.split("<Code>", 1)[-1].split("</Code>", 1)[0] if "<Code>" in body else ""
        super().__init__(f"{source}: pre-signed GET refused: HTTP {status} {code}".strip())
