"""The user's metrics and rewards, as Seldon labels them.

COUNTER → ``<key>_total``, GAUGE → ``<key>``, TIMER → a histogram ``<key>`` in seconds
with Seldon's 50 log-spaced buckets; labels: the user's tags, ``method``, the deployment
labels of `deployment_labels` and ``worker_id``. Feedback:
``seldon_api_model_feedback_total`` and ``seldon_api_model_feedback_reward_total``.
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Self

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from unitserve.engine import MetricsRecorder
from unitserve.errors import BadMetric
from unitserve.metadata import split_image
from unitserve.operations import SEND_FEEDBACK
from unitserve.settings import Settings
from unitserve.user_metrics import COUNTER, GAUGE, TIMER

# Seldon's value for a deployment label whose environment variable is unset.
UNSET_LABEL = "NOT_IMPLEMENTED"
# Seldon's TIMER buckets: 50 log-spaced upper bounds from 1 ms to 30 s (+Inf added).
SELDON_BUCKETS = tuple(float(b) for b in np.logspace(-3, np.log10(30), 50))
RESERVED_PREFIXES = ("unitserve_", "seldon_api_")


def deployment_labels(settings: Settings) -> dict[str, str]:
    """The labels Seldon puts on every custom metric, from the operator's env vars."""
    image, version = split_image(settings.unit_image or f"{UNSET_LABEL}:{UNSET_LABEL}")
    deployment = settings.deployment_id
    predictor_version = settings.predictor_labels.get("version") or UNSET_LABEL
    return {
        "deployment_name": deployment,
        "seldon_deployment_name": deployment,
        "model_name": settings.unit_id or UNSET_LABEL,
        "model_image": image or UNSET_LABEL,
        "image_name": image or UNSET_LABEL,
        "model_version": version or UNSET_LABEL,
        "image_version": version or UNSET_LABEL,
        "predictor_name": settings.predictor_id,
        "predictor_version": str(predictor_version),
    }


class UserMetrics(MetricsRecorder):
    """What the engine records for the user's code: its metrics and feedback rewards."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.worker_id = worker_id
        self.base = {**deployment_labels(settings), "worker_id": worker_id}
        self._families: dict[tuple[str, str, tuple[str, ...]], Any] = {}
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reward: Any = None

    def for_unit(self, unit_id: str, image: str | None) -> Self:
        """The same worker's recorder for one node of a graph: its user metrics and
        rewards carry the node's name (``model_name``) and image, as each node's own
        pod would label them."""
        clone = copy.copy(self)
        name, version = split_image(image or f"{UNSET_LABEL}:{UNSET_LABEL}")
        clone.base = {
            **self.base,
            "model_name": unit_id,
            "model_image": name or UNSET_LABEL,
            "image_name": name or UNSET_LABEL,
            "model_version": version or UNSET_LABEL,
            "image_version": version or UNSET_LABEL,
        }
        clone._reward = None
        return clone

    def for_model(self, name: str, version: str | None) -> Self:
        """The same worker's recorder for one model of a repository: its user metrics
        and rewards carry the model's name (``model_name``) and version
        (``model_version``), as MLServer labels a model's metrics."""
        clone = copy.copy(self)
        clone.base = {
            **self.base,
            "model_name": name,
            "model_version": version or UNSET_LABEL,
        }
        clone._reward = None
        return clone

    def record(self, metrics: list[dict[str, Any]], method: str) -> None:
        prepared = [self._prepare(m, method) for m in metrics]  # all valid, or none recorded
        for kind, child, value in prepared:
            if kind == COUNTER:
                child.inc(value)
            elif kind == GAUGE:
                child.set(value)
            else:
                child.observe(value / 1000.0)  # TIMER values are milliseconds

    def record_feedback(self, reward: float) -> None:
        labels = {"method": SEND_FEEDBACK.label, **self.base}
        self._family(COUNTER, "seldon_api_model_feedback", tuple(sorted(labels))).labels(
            **labels
        ).inc(1)
        with self._lock:
            if self._reward is None:
                # Rewards may be negative, which a Counter refuses: a Gauge summed over
                # the workers (dead ones included), under Seldon's counter name.
                self._reward = Gauge(
                    "seldon_api_model_feedback_reward_total",
                    "",
                    sorted(labels),
                    registry=None,
                    multiprocess_mode="sum",
                ).labels(**labels)
        self._reward.inc(reward)

    def _prepare(self, metric: dict[str, Any], method: str) -> tuple[str, Any, float]:
        kind, key, value = metric["type"], metric["key"], float(metric["value"])
        if key.startswith(RESERVED_PREFIXES):
            raise BadMetric(
                f"Bad metric created during request: key {key!r} uses a reserved "
                f"prefix ({', '.join(RESERVED_PREFIXES)})"
            )
        if kind == COUNTER and value < 0:
            raise BadMetric(
                f"Bad metric created during request: COUNTER {key!r} cannot "
                f"decrease (value {value})"
            )
        known = self._kinds.setdefault(key, kind)
        if known != kind:
            raise BadMetric(
                f"Bad metric created during request: {key!r} is a {known}, not a {kind}"
            )
        tags = metric.get("tags") or {}
        labels = {
            **{str(k): str(v) for k, v in tags.items()},
            "method": method,
            **self.base,
        }
        child = self._family(kind, key, tuple(sorted(labels))).labels(**labels)
        return kind, child, value

    def _family(self, kind: str, key: str, labelnames: tuple[str, ...]) -> Any:
        index = (kind, key, labelnames)
        family = self._families.get(index)
        if family is None:
            with self._lock:
                family = self._families.get(index)
                if family is None:
                    if kind == COUNTER:
                        family = Counter(key, "", labelnames, registry=None)
                    elif kind == GAUGE:
                        family = Gauge(
                            key,
                            "",
                            labelnames,
                            registry=None,
                            multiprocess_mode="livemostrecent",
                        )
                    elif kind == TIMER:
                        family = Histogram(
                            key, "", labelnames, registry=None, buckets=SELDON_BUCKETS
                        )
                    else:
                        raise BadMetric(f"Bad metric created during request: type {kind!r}")
                    self._families[index] = family
        return family
