"""The other member: the sum of the squared features."""

import numpy as np


class Quadratic:
    def predict(self, X, features_names):
        return (np.asarray(X, dtype=float) ** 2).sum(axis=1, keepdims=True)

    def tags(self):
        return {"quadratic": "yes"}
