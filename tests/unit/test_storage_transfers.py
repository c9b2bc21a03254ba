"""The transfers of a prefix's objects run side by side, a bounded number at a time: the
scheduling of `transfers._each` (GCS and Azure), run on a real event loop, and of
`s3_transfers._each` (S3), in real threads."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from unitserve.storage import s3_transfers, transfers


def test_objects_are_fetched_side_by_side_and_no_more_than_the_bound() -> None:
    pairs = [(f"bucket/model/part-{i}", Path(f"part-{i}")) for i in range(3 * transfers.CONCURRENT)]
    active = peak = 0
    done: list[str] = []

    async def run() -> None:
        # Each transfer holds its slot until CONCURRENT of them are in flight together:
        # one at a time would never get there (and the time limit below would fail it).
        all_in = asyncio.Event()

        async def get(source: str, target: Path) -> None:
            nonlocal active, peak
            active += 1
            peak = max(peak, active)
            if active == transfers.CONCURRENT:
                all_in.set()
            await all_in.wait()
            active -= 1
            done.append(source)

        await asyncio.wait_for(transfers._each(pairs, get), timeout=30)

    asyncio.run(run())
    assert peak == transfers.CONCURRENT
    assert sorted(done) == sorted(source for source, _ in pairs)


def test_s3_objects_are_fetched_side_by_side_and_no_more_than_the_bound() -> None:
    bound = s3_transfers.CONCURRENT
    pairs = [(f"model/part-{i}", Path(f"part-{i}")) for i in range(3 * bound)]
    lock = threading.Lock()
    active = peak = 0
    done: list[str] = []
    # Each transfer waits until `bound` of them are in flight together: one at a time
    # would never get there (and the barrier's time limit would fail it).
    all_in = threading.Barrier(bound, timeout=30)

    def get(key: str, target: Path) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        all_in.wait()
        with lock:
            active -= 1
            done.append(key)

    s3_transfers._each(pairs, get)
    assert peak == bound
    assert sorted(done) == sorted(key for key, _ in pairs)


def test_an_s3_transfers_failure_is_raised() -> None:
    def get(key: str, target: Path) -> None:
        if key == "model/part-7":
            raise s3_transfers.TransferFailed(f"{key}: broken")

    pairs = [(f"model/part-{i}", Path(f"part-{i}")) for i in range(100)]
    with pytest.raises(s3_transfers.TransferFailed, match="part-7: broken"):
        s3_transfers._each(pairs, get)
