"""What the batch tool counts as it runs (`Stats`) and how it shows it (`Progress`): a
bar on a terminal, a line every ten seconds otherwise."""

from __future__ import annotations

import random
import sys
import time


class Stats:
    def __init__(self, total_bytes: int, start_byte: int) -> None:
        self.sent = self.ok = self.failed = self.retried = 0
        self.lines = 0
        self.latencies: list[float] = []
        self.seen = 0
        self.started = time.monotonic()
        self.total_bytes, self.read_bytes, self.start_byte = total_bytes, start_byte, start_byte

    def latency(self, seconds: float) -> None:
        # A fixed-size random sample keeps memory flat on any file.
        self.seen += 1
        if len(self.latencies) < 100_000:
            self.latencies.append(seconds)
        else:
            slot = random.randrange(self.seen)
            if slot < len(self.latencies):
                self.latencies[slot] = seconds


class Progress:
    def __init__(self, mode: str, stats: Stats) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.stats = mode, stats
        self.last = time.monotonic()

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        every = 0.2 if self.mode == "bar" else 10.0
        if self.mode == "none" or (not final and now - self.last < every):
            return
        self.last = now
        s = self.stats
        elapsed = max(now - s.started, 1e-9)
        rate = s.lines / elapsed
        todo = s.total_bytes - s.start_byte
        share = (s.read_bytes - s.start_byte) / todo if todo > 0 else 1.0
        eta = elapsed * (1 - share) / share if share > 0 else 0.0
        if self.mode == "bar":
            filled = int(30 * share)
            bar = "#" * filled + "-" * (30 - filled)
            end = "\n" if final else ""
            sys.stderr.write(
                f"\r[{bar}] {share:4.0%} {s.lines} lines {rate:.0f}/s ETA {eta:.0f}s{end}"
            )
        else:
            sys.stderr.write(
                f"batch: {s.lines} lines written, {s.failed} failed, {rate:.0f} lines/s, "
                f"{share:.0%} read, ETA {eta:.0f}s\n"
            )
        sys.stderr.flush()
