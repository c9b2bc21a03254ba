"""Moving GCS and Azure objects' bytes to local files, many at once, on the file
system's own event loop (S3's are in s3_transfers.py).

The object stores' fsspec backends are asynchronous: every transfer here is a coroutine
on the loop the file system already runs, a fixed number in flight at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

# Files in flight at once. More adds little against a store far away (each transfer is
# already streamed), and on a small machine the client's own CPU per request starts to
# compete with the transfers.
CONCURRENT = 16


def fetch_all(fs: Any, sources: list[str], targets: list[Path]) -> None:
    """Write each of `sources` (paths in `fs`) to the matching local file."""
    from fsspec.asyn import sync

    pairs = list(zip(sources, targets, strict=True))
    sync(fs.loop, _each, pairs, lambda source, target: fs._get_file(source, str(target)))


async def _each(pairs: list[tuple[str, Path]], get: Callable[[str, Path], Awaitable[None]]) -> None:
    """`get` for every (source, target), CONCURRENT at a time."""
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(source: str, target: Path) -> None:
        async with gate:
            await get(source, target)

    await asyncio.gather(*(one(source, target) for source, target in pairs))
