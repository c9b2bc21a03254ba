"""A numeric model served over the Open Inference Protocol: a linear price estimate
from three features. The class is an ordinary Seldon class; nothing in it knows which
protocol a request came by."""

import numpy as np

FEATURES = ["area_m2", "rooms", "age_years"]


class HousePrices:
    def load(self):
        # Stands in for reading trained weights from a file.
        self.weights = np.array([3000.0, 15000.0, -500.0], dtype=np.float32)
        self.bias = np.float32(50000.0)

    def predict(self, X, feature_names):
        # X is one FP32 input of shape [N, 3]: one price per row, FP32 [N].
        return np.asarray(X, dtype=np.float32) @ self.weights + self.bias

    def init_metadata(self):
        # Served as the model metadata of GET /v2/models/HousePrices (and ModelMetadata).
        return {
            "platform": "numpy",
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}],
            "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [-1]}],
        }
