"""The supervisor's side of the metrics: merging every worker's files into one
exposition, retiring a dead worker's files, and the supervisor's own counter.

The exposition holds the per-model series of the models some live worker holds, and
no others: a worker's files keep a series for every model it ever counted (they cannot
delete one), so the series of models unloaded long ago are left out here, and the
exposition stays bounded by the models loaded now however many came and went. Which
models are held is read from the workers' ready gauge (``metrics/models.py``).
"""

from __future__ import annotations

import glob
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.samples import Sample

from unitserve.metrics.models import READY_METRIC, RELEASED

CONTENT_TYPE = CONTENT_TYPE_LATEST


#: The label of our per-model series: the served model's name ("" for none).
MODEL_LABEL = "model"
#: The label that names the model on the user's metrics (Seldon's).
USER_MODEL_LABEL = "model_name"
#: Our metric families; the others are the user's and Seldon's feedback metrics.
OWN_PREFIX = "unitserve_"


class _DirectoryCollector:
    """prometheus_client's multiprocess merge over the files of `directory`, minus the
    files a starting worker has created but not yet sized (they would fail the read),
    and minus the series of models no live worker holds."""

    def __init__(self, directory: str, user_metrics_by_model: bool) -> None:
        self.directory = directory
        self.user_metrics_by_model = user_metrics_by_model

    def collect(self) -> Any:
        files = []
        for path in glob.glob(os.path.join(self.directory, "*.db")):
            try:
                if os.path.getsize(path) >= 8:
                    files.append(path)
            except FileNotFoundError:
                continue
        families = list(MultiProcessCollector.merge(files, accumulate=True))
        return held_models_only(families, self.user_metrics_by_model)


def held_models_only(families: list[Any], user_metrics_by_model: bool) -> list[Any]:
    """`families` without the series labelled with a model that no live worker holds
    (the ready series of a released model included). With `user_metrics_by_model`
    (a model repository, whose user metrics name their model in ``model_name``), the
    user's metrics of such models go too."""
    ready = next((f for f in families if f.name == READY_METRIC), None)
    held: set[str] = set()
    if ready is not None:
        ready.samples = [s for s in ready.samples if s.value != RELEASED]
        held = {s.labels.get(MODEL_LABEL, "") for s in ready.samples}

    def kept(sample: Sample, label: str) -> bool:
        model = sample.labels.get(label)
        return not model or model in held

    kept_families = []
    for family in families:
        if family is not ready:
            family.samples = [s for s in family.samples if kept(s, MODEL_LABEL)]
            if user_metrics_by_model and not family.name.startswith(OWN_PREFIX):
                family.samples = [s for s in family.samples if kept(s, USER_MODEL_LABEL)]
        if family.samples:
            kept_families.append(family)
    return kept_families


def exposition(directory: str, user_metrics_by_model: bool = False) -> bytes:
    """The Prometheus text of every worker's files in `directory` (see
    `held_models_only` for `user_metrics_by_model`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DirectoryCollector(directory, user_metrics_by_model))
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
