"""A log line now and then while a large model is being written to disk."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger("unitserve.storage")

LARGE = 64 * 1024 * 1024  # below this a download is over before a line would help
EVERY = 5.0  # seconds between lines


def folder_bytes(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


class Progress:
    """Watches a staging folder fill up and logs how far it is (it measures the disk,
    so every kind of storage gets the same line without a hook in its library)."""

    def __init__(self, shown: str, folder: Path, expected: int | None) -> None:
        self.shown, self.folder, self.expected = shown, folder, expected
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.expected is None or self.expected >= LARGE:
            self._thread = threading.Thread(target=self._run, name="storage-progress")
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(EVERY):
            done = folder_bytes(self.folder)
            elapsed = time.monotonic() - self.started
            if self.expected:
                share = f"{done / 2**20:.0f} of {self.expected / 2**20:.0f} MiB "
                share += f"({100 * done / self.expected:.0f}%)"
            else:
                share = f"{done / 2**20:.0f} MiB"
            log.info("fetching %s: %s in %.0f s", self.shown, share, elapsed)
