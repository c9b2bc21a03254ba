"""The transfers of a prefix's objects run side by side, a bounded number at a time: the
scheduling of `transfers._each`, which every store's download goes through, run on a
real event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from unitserve.storage import transfers


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
