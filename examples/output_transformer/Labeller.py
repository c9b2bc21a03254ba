"""An output transformer: it turns the class probabilities of the model below it
into the name of the most likely class."""

import numpy as np


class Labeller:
    LABELS = np.array(["setosa", "versicolor", "virginica"])

    def class_names(self):
        return ["species"]

    def transform_output(self, X, features_names, meta=None):
        # One row of probabilities per request row → one label per row.
        best = np.argmax(np.asarray(X, dtype=float), axis=1)
        return self.LABELS[best].reshape(-1, 1)
