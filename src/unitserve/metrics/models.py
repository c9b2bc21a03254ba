"""Which models a worker serves: ``unitserve_model_ready{model,version,worker_id}``, 1
while the model serves in that worker, 0 while the worker holds it without serving it
(unloaded through the repository extension, to be loaded again).

The gauge is also what bounds the per-model series: a worker's metric files cannot
delete a series, so when the worker lets a model go (``model_released``) its ready
value becomes `RELEASED`, and the supervisor's exposition leaves out every series
labelled with a model that no live worker holds (see `supervisor.exposition`). The
gauge lives in the worker's "live" files, which go when the worker does: the models a
dead worker held stop counting at once.
"""

from __future__ import annotations

import threading
from typing import Protocol

from prometheus_client import Gauge

READY_METRIC = "unitserve_model_ready"
#: The ready value of a model the worker no longer holds: never exposed.
RELEASED = -1.0


class NamedModel(Protocol):
    """What the ready gauge needs of a served model."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str | None: ...


class ModelMetrics:
    """The registry's hooks of one worker (a ``RegistryHooks``): the ready gauge."""

    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        # 'livemostrecent': one value per series, the newest write of a live process
        # (a replaced worker and its replacement share a slot for a moment).
        self._ready = Gauge(
            READY_METRIC,
            "Whether the model serves in the worker (1) or is held without serving (0).",
            ["model", "version", "worker_id"],
            multiprocess_mode="livemostrecent",
            registry=None,
        )
        self._ready_lock = threading.Lock()
        # The series this worker wrote, so that a model released before it ever served
        # (a load that failed) adds no entry to the files.
        self._ready_written: set[tuple[str, str]] = set()

    def model_loaded(self, model: NamedModel) -> None:
        self._set_ready(model, 1.0)

    def model_unloaded(self, model: NamedModel) -> None:
        self._set_ready(model, 0.0)

    def model_released(self, model: NamedModel) -> None:
        key = (model.name, model.version or "")
        with self._ready_lock:
            if key not in self._ready_written:
                return
        self._set_ready(model, RELEASED)

    def _set_ready(self, model: NamedModel, value: float) -> None:
        key = (model.name, model.version or "")
        with self._ready_lock:
            self._ready_written.add(key)
        self._ready.labels(*key, self.worker_id).set(value)
