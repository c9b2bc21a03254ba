"""The user metric contract: ``{"type": COUNTER|GAUGE|TIMER, "key": str, "value": number,
"tags": {str: str}?}``, the helpers that build such dicts, and their validation.

Validation follows Seldon (a list; every item has key, value and a known type;
the value is a number) and adds what keeps the Prometheus endpoint healthy: the
key and tag names must be valid Prometheus names, so that one bad metric is
answered at the request that made it (500 ``MICROSERVICE_BAD_METRIC``) instead
of breaking every later scrape.
"""

from __future__ import annotations

import json
import re
from numbers import Number
from typing import Any

from unitserve.errors import BadMetric

COUNTER = "COUNTER"
GAUGE = "GAUGE"
TIMER = "TIMER"
METRIC_TYPES = (COUNTER, GAUGE, TIMER)

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _metric(kind: str, key: str, value: float) -> dict[str, Any]:
    if isinstance(value, bool) or not isinstance(value, Number):
        raise TypeError(f"Invalid metric value {value!r}: a number is required")
    return {"type": kind, "key": key, "value": value}


def create_counter(key: str, value: float) -> dict[str, Any]:
    """A COUNTER increment: exposed as ``<key>_total``."""
    return _metric(COUNTER, key, value)


def create_gauge(key: str, value: float) -> dict[str, Any]:
    """A GAUGE value: exposed as ``<key>``."""
    return _metric(GAUGE, key, value)


def create_timer(key: str, value: float) -> dict[str, Any]:
    """A TIMER observation in milliseconds: exposed as a histogram in seconds."""
    return _metric(TIMER, key, value)


def _bad(metrics: Any) -> BadMetric:
    try:
        text = json.dumps(metrics)
    except (TypeError, ValueError):
        text = repr(metrics)
    return BadMetric(f"Bad metric created during request: {text}")


def _is_valid(metric: Any) -> bool:
    if not isinstance(metric, dict):
        return False
    key, value, kind = metric.get("key"), metric.get("value"), metric.get("type")
    if kind not in METRIC_TYPES or not isinstance(key, str) or not _METRIC_NAME.match(key):
        return False
    if isinstance(value, bool) or not isinstance(value, Number):
        return False
    tags = metric.get("tags")
    if tags is None:
        return True
    return isinstance(tags, dict) and all(
        isinstance(k, str) and _LABEL_NAME.match(k) and not k.startswith("__") for k in tags
    )


def validate_metrics(metrics: Any) -> list[dict[str, Any]]:
    """Return `metrics` if valid, else raise `BadMetric` naming the whole list."""
    if not isinstance(metrics, list) or not all(_is_valid(m) for m in metrics):
        raise _bad(metrics)
    return metrics
