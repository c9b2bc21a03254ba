"""The user-thread pool (`unitserve.calls.Offloader`): a pool that starts small grows
only when calls overlap, and never past its size."""

from __future__ import annotations

import asyncio
import threading

from unitserve.calls import Offloader


def test_a_small_start_grows_only_for_overlapping_calls() -> None:
    async def main() -> None:
        pool = Offloader(asyncio.get_running_loop(), 3, "test", start=1)
        try:
            # One call at a time: the first thread answers them all.
            for i in range(20):
                # mypy cannot infer a lambda's type from its default argument
                assert await asyncio.wait_for(pool.submit(lambda i=i: i), 10) == i  # type: ignore[misc]
            assert len(pool.threads) == 1
            # A call that blocks, then another: a second thread answers it meanwhile.
            release = threading.Event()
            blocked = pool.submit(lambda: release.wait(10))
            assert await asyncio.wait_for(pool.submit(lambda: "second"), 10) == "second"
            assert len(pool.threads) == 2
            release.set()
            assert await asyncio.wait_for(blocked, 10) is True
            # Never more threads than the pool's size, however many calls wait.
            gate = threading.Event()
            waiting = [pool.submit(lambda: gate.wait(10)) for _ in range(6)]
            assert len(pool.threads) == 3
            gate.set()
            assert await asyncio.wait_for(asyncio.gather(*waiting), 10) == [True] * 6
            assert pool.in_flight == 0
        finally:
            pool.close()

    asyncio.run(main())


def test_a_cancelled_call_is_skipped_and_no_longer_counted() -> None:
    async def main() -> None:
        pool = Offloader(asyncio.get_running_loop(), 1, "test")
        try:
            release = threading.Event()
            ran: list[str] = []
            blocked = pool.submit(lambda: release.wait(10))
            skipped = pool.submit(lambda: ran.append("skipped"))
            skipped.cancel()
            release.set()
            await asyncio.wait_for(blocked, 10)
            assert await asyncio.wait_for(pool.submit(lambda: "after"), 10) == "after"
            assert ran == []
            assert pool.in_flight == 0
        finally:
            pool.close()

    asyncio.run(main())
