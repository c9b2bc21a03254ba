"""The chain's input transformer: features standardised with a mean and a spread given
as the node's parameters in graph.yaml."""

import numpy as np


class Scaler:
    def __init__(self, mean=0.0, spread=1.0):
        self.mean = float(mean)
        self.spread = float(spread)

    def transform_input(self, X, features_names):
        return (np.asarray(X, dtype=float) - self.mean) / self.spread
