"""An answer mixing strings and numbers in each row: a dtype=object numpy array,
sent as an `ndarray` whose items keep their own JSON types."""

import numpy as np


class MixedRows:
    def class_names(self):
        return ["label", "score"]

    def predict(self, X, features_names):
        scores = np.asarray(X, dtype=float).max(axis=1)
        out = np.empty((len(scores), 2), dtype=object)
        out[:, 0] = ["high" if s > 0.5 else "low" for s in scores]
        out[:, 1] = [float(s) for s in scores]
        return out
