"""One member of the ensemble: the sum of the features."""

import numpy as np


class Linear:
    def predict(self, X, features_names):
        return np.asarray(X, dtype=float).sum(axis=1, keepdims=True)

    def tags(self):
        return {"linear": "yes"}
