"""The chain's model: the probabilities of "low" and "high" from the mean of the
standardised features (a logistic curve)."""

import numpy as np


class Scorer:
    def predict(self, X, features_names):
        high = 1.0 / (1.0 + np.exp(-np.asarray(X, dtype=float).mean(axis=1)))
        return np.stack([1.0 - high, high], axis=1)

    def class_names(self):
        return ["low", "high"]
