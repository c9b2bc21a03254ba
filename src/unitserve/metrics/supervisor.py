"""The supervisor's side of the metrics: merging every worker's files into one
exposition, retiring a dead worker's files, and the supervisor's own counter."""

from __future__ import annotations

import glob
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _DirectoryCollector:
    """prometheus_client's multiprocess merge over the files of `directory`, minus the
    files a starting worker has created but not yet sized (they would fail the read)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Any:
        files = []
        for path in glob.glob(os.path.join(self.directory, "*.db")):
            try:
                if os.path.getsize(path) >= 8:
                    files.append(path)
            except FileNotFoundError:
                continue
        return MultiProcessCollector.merge(files, accumulate=True)


def exposition(directory: str) -> bytes:
    """The Prometheus text of every worker's files in `directory`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DirectoryCollector(directory))
    return generate_latest(registry)


def retire_worker(directory: str, pid: int) -> None:
    """A worker is gone: drop its live gauges and fold its counters and histograms into
    the archive, so that totals keep counting it once and its files do not pile up."""
    mark_process_dead(pid, directory)
    for kind in ("counter", "histogram", "gauge_sum"):  # the additive kinds
        path = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(path):
            continue
        archive = MmapedDict(os.path.join(directory, f"{kind}_archive.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(path):
                total, _ = archive.read_value(key)
                archive.write_value(key, total + value, timestamp)
        finally:
            archive.close()
        os.remove(path)


class SupervisorMetrics:
    """What the supervisor itself records (in its own multiprocess file)."""

    def __init__(self) -> None:
        self._restarts = Counter(
            "unitserve_worker_restarts", "Workers replaced, by reason.", ["reason"], registry=None
        )

    def worker_restarted(self, reason: str) -> None:
        self._restarts.labels(reason).inc()
