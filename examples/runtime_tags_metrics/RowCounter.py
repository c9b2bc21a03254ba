"""Runtime tags and metrics: wrap an answer in `SeldonResponse` to attach tags and
metrics computed for this very request."""

import numpy as np

from unitserve import SeldonResponse, create_counter, create_gauge


class RowCounter:
    def tags(self):
        return {"source": "static", "model": "row-counter"}

    def predict(self, X, features_names):
        X = np.asarray(X, dtype=float)
        rows = X.shape[0] if X.ndim else 1
        return SeldonResponse(
            X.sum(axis=-1, keepdims=True),
            # Runtime tags win over the request's and tags()' for the same key.
            tags={"source": "runtime", "rows": rows},
            metrics=[create_counter("rows_seen", rows), create_gauge("last_rows", rows)],
        )
