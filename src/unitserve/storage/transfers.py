"""Moving GCS and Azure objects' bytes to local files, many at once, on the file
system's own event loop (S3's are in s3_transfers.py).

The object stores' fsspec backends are asynchronous: every transfer here is a coroutine
on the loop the file system already runs, a fixed number in flight at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

# Files in flight at once. More adds little against a store far away (each transfer is
# already streamed), and on a small machine the client's own CPU per request starts to
# compete with the transfers.
CONCURRENT = 16


def fetch_all(fs: Any, sources: list[str], targets: list[Path]) -> None:
    """Write each of `sources` (paths in `fs`) to the matching local file."""
    from fsspec.asyn import sync

    sync(fs.loop, _fetch_all, fs, sources, targets)


async def _fetch_all(fs: Any, sources: list[str], targets: list[Path]) -> None:
    gate = asyncio.Semaphore(CONCURRENT)

    async def one(source: str, target: Path) -> None:
        async with gate:
            await fs._get_file(source, str(target))

    await asyncio.gather(*(one(s, t) for s, t in zip(sources, targets, strict=True)))
