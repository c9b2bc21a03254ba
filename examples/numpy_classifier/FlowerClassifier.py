"""A model trained in `load()`: softmax regression in plain numpy on the bundled
flowers.csv (no download, no ML framework). load() runs once per worker before
it is ready, so requests never see a half-trained model."""

import csv
from pathlib import Path

import numpy as np

DATA = Path(__file__).with_name("flowers.csv")


class FlowerClassifier:
    def __init__(self, epochs=500, learning_rate=0.5):
        # Constructor parameters: --parameters '[{"name": "epochs", "value": "200", "type": "INT"}]'
        self.epochs = int(epochs)
        self.learning_rate = float(learning_rate)

    def load(self):
        with DATA.open(newline="") as f:
            rows = list(csv.reader(f))
        header, rows = rows[0], rows[1:]
        self.features = header[:-1]
        self.labels = sorted({r[-1] for r in rows})
        X = np.array([[float(v) for v in r[:-1]] for r in rows])
        y = np.array([self.labels.index(r[-1]) for r in rows])
        self.mean, self.std = X.mean(axis=0), X.std(axis=0)
        Z = (X - self.mean) / self.std
        onehot = np.eye(len(self.labels))[y]
        self.W = np.zeros((Z.shape[1], len(self.labels)))
        self.b = np.zeros(len(self.labels))
        for _ in range(self.epochs):  # full-batch gradient descent on the cross-entropy
            error = self._softmax(Z @ self.W + self.b) - onehot
            self.W -= self.learning_rate * Z.T @ error / len(Z)
            self.b -= self.learning_rate * error.mean(axis=0)

    @staticmethod
    def _softmax(logits):
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def class_names(self):
        return self.labels

    def predict(self, X, features_names):
        X = np.asarray(X, dtype=float).reshape(-1, len(self.features))
        return self._softmax(((X - self.mean) / self.std) @ self.W + self.b)

    def init_metadata(self):
        return {
            "name": "flower-classifier",
            "inputs": [{"messagetype": "ndarray", "schema": {"names": self.features}}],
            "outputs": [{"messagetype": "ndarray", "schema": {"names": self.labels}}],
        }
