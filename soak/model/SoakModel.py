"""The model served during the soak: cheap, but it walks the paths a real component
walks on every request (numpy arithmetic, names, static tags, the three kinds of user
metric, feedback), so that a leak anywhere on them shows up in the workers' memory."""

import numpy as np


class SoakModel:
    def __init__(self):
        self.weights = np.zeros(0)

    def load(self):
        self.weights = np.linspace(0.5, 1.5, 64)

    def predict(self, X, features_names, meta=None):
        if isinstance(X, str | bytes | dict):
            return X
        arr = np.asarray(X, dtype=np.float64)
        return arr * self.weights[: arr.shape[-1]]

    def tags(self):
        return {"model": "soak"}

    def metrics(self):
        return [
            {"type": "COUNTER", "key": "soak_calls", "value": 1},
            {"type": "GAUGE", "key": "soak_weights", "value": float(self.weights.size)},
            {"type": "TIMER", "key": "soak_model_ms", "value": 0.5},
        ]

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        return None
