"""Custom Prometheus metrics: `metrics()` is called after every prediction and its
list is recorded on the metrics port (6000, path /metrics or /prometheus)."""

import time

import numpy as np

from unitserve import create_counter, create_gauge, create_timer


class Metered:
    def __init__(self):
        self.last_rows = 0
        self.last_ms = 0.0

    def predict(self, X, features_names):
        start = time.perf_counter()
        out = np.asarray(X, dtype=float) * 2
        self.last_rows = out.shape[0] if out.ndim else 1
        self.last_ms = (time.perf_counter() - start) * 1000.0
        return out

    def metrics(self):
        # Called right after predict() for the same request. With --threads > 1 another
        # request may run in between: per-request values then belong in a
        # SeldonResponse (see ../runtime_tags_metrics).
        return [
            # COUNTER: added up → metered_rows_total
            create_counter("metered_rows", self.last_rows),
            # GAUGE: last value wins → metered_last_batch_rows
            create_gauge("metered_last_batch_rows", self.last_rows),
            # TIMER: milliseconds in, a histogram in seconds out → metered_compute_seconds_*
            create_timer("metered_compute_seconds", self.last_ms),
            # Any metric may carry tags: they become Prometheus labels.
            {"type": "COUNTER", "key": "metered_calls", "value": 1, "tags": {"kind": "batch"}},
        ]
