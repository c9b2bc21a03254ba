"""A scikit-learn random forest, served with adaptive batching.

A forest pays a fixed cost per call (it walks its 100 trees one by one in Python),
so 64 one-row requests cost almost 64 times one 64-row call: with
``--max-batch-size``, unitserve stacks concurrent requests into one `predict` call.

The model is trained in `load()` on generated data, so the example needs no files.
`predict` works on any number of rows and answers one row of probabilities per input
row, which is all batching asks of it.
"""

import numpy as np

# The data the forest is trained on: generated, so that the example is reproducible.
FEATURES = 16
CLASSES = 3
SAMPLES = 2000


def training_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=SAMPLES,
        n_features=FEATURES,
        n_informative=8,
        n_classes=CLASSES,
        random_state=seed,
    )


def trained_forest(trees: int = 100, seed: int = 0):
    from sklearn.ensemble import RandomForestClassifier

    X, y = training_data(seed)
    # n_jobs=1: one worker's forest uses one core; scale with --workers instead.
    return RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1).fit(X, y)


class ForestClassifier:
    # Batches of more rows gain little more for a forest this size (see docs/batching.md).
    max_batch_size = 64

    def __init__(self, trees: int = 100) -> None:
        self.trees = int(trees)
        self.model = None

    def load(self) -> None:
        self.model = trained_forest(self.trees)

    def predict(self, X, features_names=None):
        return self.model.predict_proba(np.asarray(X, dtype=np.float64))

    def class_names(self):
        return [f"class_{i}" for i in range(CLASSES)]
