"""S3 objects' bytes to local files: pre-signed GETs on plain HTTP connections, in threads.

botocore signs each object's URL (the same signing and credentials as the listing, at a
third of the cost of its own call per URL: s3_signing.py) and
Python's own http.client fetches it, in a pool of threads, each keeping its connection
open where the store allows. A full botocore call per object costs several milliseconds
of the client's CPU (its event hooks, endpoint rules, parsing of every response header);
on a small machine that CPU is taken from the transfers (and, against a local server,
from the server). The threads spend their time waiting on sockets and disks, which lets
go of the interpreter's lock, so a pool needs no event loop and no asynchronous HTTP
library (importing aiohttp alone cost a third of a second of CPU).

A large object comes as one stream, read into one buffer and written in large blocks, as
rclone fetches objects below its multi-thread cut-off (256 MiB). A server that refuses
pre-signed URLs (some S3-compatible ones accept only signed headers) is found out by the
first object, and then every object goes through botocore's own calls; so does every
object when the environment names a proxy for the store, which botocore knows how to use.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from unitserve.storage.errors import NotFound, StorageError
from unitserve.storage.s3 import Store
from unitserve.storage.s3_signing import UrlSigner

# Files in flight at once. More adds little against a store far away (each transfer is
# already streamed), and on a small machine the client's own CPU per request starts to
# compete with the transfers.
CONCURRENT = 16
BLOCK = 1024 * 1024  # bytes read and written at a time
ATTEMPTS = 3  # tries per object when the connection fails or the store answers 5xx
URL_LIFETIME = 3600  # seconds a pre-signed URL stays valid: longer than any one transfer
TIMEOUT = 60.0  # seconds a connection may stay silent (botocore's own default)

log = logging.getLogger("unitserve.storage")


class TransferFailed(StorageError):
    """One object could not be fetched; the message names it and the reason."""


def fetch_all(store: Store, bucket: str, keys: list[str], targets: list[Path]) -> None:
    """Write each of `keys` in `bucket` to the matching local file."""
    pairs = list(zip(keys, targets, strict=True))
    client = store.client
    endpoint = client.meta.endpoint_url
    if _proxy_for(endpoint):
        log.debug("a proxy is set for %s: fetching with botocore's calls", endpoint)
        _each(pairs, lambda key, target: _botocore_get(client, bucket, key, target))
        return
    signer = UrlSigner(client, bucket, store.credentials, URL_LIFETIME)
    getter = _Presigned(signer, bucket, _ssl_context(endpoint, store.verify))
    try:
        try:
            # The first object alone: whether the store takes pre-signed URLs at all.
            getter.get(*pairs[0])
        except _Unsigned as refused:
            # Some S3-compatible servers take only signed headers (moto with its access
            # checks answers a 500); a real refusal is then told by botocore's call.
            log.debug("%s; fetching with botocore's calls instead", refused)
            _each(pairs, lambda key, target: _botocore_get(client, bucket, key, target))
            return
        _each(pairs[1:], getter.get)
    finally:
        getter.close()


def _each(pairs: list[tuple[str, Path]], get: Any) -> None:
    """`get` for every (key, target), CONCURRENT at a time; the first error stops the
    rest and is raised."""
    if not pairs:
        return
    with ThreadPoolExecutor(min(CONCURRENT, len(pairs)), thread_name_prefix="s3-get") as pool:
        futures = [pool.submit(get, key, target) for key, target in pairs]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception()), None)
        if failed is not None:
            for future in futures:
                future.cancel()
            failed.result()


class _Presigned:
    """GETs of pre-signed URLs, each thread on connections of its own."""

    def __init__(self, signer: UrlSigner, bucket: str, context: ssl.SSLContext | None) -> None:
        self.signer, self.bucket, self.context = signer, bucket, context
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []  # every thread's, to close

    def close(self) -> None:
        for connection in self._opened:
            connection.close()

    def get(self, key: str, target: Path) -> None:
        source = f"{self.bucket}/{key}"
        for attempt in range(1, ATTEMPTS + 1):
            url = urlsplit(self.signer.url(key))
            connection = self._connection(url.scheme, url.netloc)
            try:
                # (An anonymous bucket's URLs carry no query.)
                connection.request("GET", f"{url.path}?{url.query}" if url.query else url.path)
                response = connection.getresponse()
                if response.status >= 500 and attempt < ATTEMPTS:
                    response.read()
                    time.sleep(0.2 * attempt)
                    continue
                if response.status == 404:
                    response.read()
                    raise NotFound(f"{source}: not found (HTTP 404)")
                if response.status >= 300:
                    raise _Unsigned(
                        source, response.status, response.read().decode(errors="replace")
                    )
                _write(response, target)  # (a connection the store closes opens anew)
                return
            except StorageError:
                connection.close()
                raise
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                if attempt == ATTEMPTS:
                    raise TransferFailed(f"{source}: {type(exc).__name__}: {exc}") from exc
                time.sleep(0.2 * attempt)

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        """This thread's connection to `netloc` (http.client opens it again by itself
        when the store closed it)."""
        connections: dict[str, http.client.HTTPConnection] = self._local.__dict__
        connection = connections.get(netloc)
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    netloc, timeout=TIMEOUT, context=self.context
                )
            else:
                connection = http.client.HTTPConnection(netloc, timeout=TIMEOUT)
            connections[netloc] = connection
            self._opened.append(connection)  # (list.append is atomic)
        return connection


def _write(response: http.client.HTTPResponse, target: Path) -> None:
    expected = response.length
    if expected is not None and expected <= BLOCK:
        target.write_bytes(response.read())  # read() raises when the body comes short
        return
    written = 0
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    with open(target, "wb") as out:
        while count := response.readinto(buffer):
            out.write(view[:count])
            written += count
    if expected is not None and written != expected:
        raise http.client.IncompleteRead(b"", expected - written)


def _botocore_get(client: Any, bucket: str, key: str, target: Path) -> None:
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise NotFound(f"{bucket}/{key}: not found (HTTP 404)") from exc
        raise
    with open(target, "wb") as out:
        for block in body.iter_chunks(BLOCK):
            out.write(block)


def _proxy_for(endpoint: str) -> str | None:
    """The proxy the environment names for the endpoint (``HTTPS_PROXY``, ``NO_PROXY``,
    ...), as botocore would use."""
    from urllib.request import getproxies, proxy_bypass

    host = urlsplit(endpoint).hostname or ""
    if not host or proxy_bypass(host):
        return None
    return getproxies().get(urlsplit(endpoint).scheme)


def _ssl_context(endpoint: str, verify: bool | str) -> ssl.SSLContext | None:
    """The TLS checks botocore makes (off, a CA bundle, or the default ones); None for a
    plain HTTP store (building a context reads the CA certificates: not for nothing)."""
    if not endpoint.startswith("https:"):
        return None
    context = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
    if verify is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _Unsigned(StorageError):
    """The store refused a pre-signed URL (its own code and HTTP status)."""

    def __init__(self, source: str, status: int, body: str) -> None:
        code = body.split("<Code>", 1)[-1].split("</Code>", 1)[0] if "<Code>" in body else ""
        super().__init__(f"{source}: pre-signed GET refused: HTTP {status} {code}".strip())
