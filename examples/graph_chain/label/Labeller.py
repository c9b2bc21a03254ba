"""The chain's output transformer: the most probable class of each row, by name."""

import numpy as np


class Labeller:
    labels = ("low", "high")

    def transform_output(self, X, features_names):
        return [self.labels[i] for i in np.asarray(X, dtype=float).argmax(axis=1)]
