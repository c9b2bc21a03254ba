"""Write a small model repository in MLServer's format: scikit-learn, XGBoost and
LightGBM models trained on tiny made-up data, each in a folder with its
model-settings.json, plus the expected predictions (expected.json).

Run with the Python of the environment that serves the models (the models are read
back by the same library versions that wrote them):

    python train_tiny.py OUT_FOLDER

Run by tests/e2e/test_repository_mlserver.py, never imported by the tests.
"""

import json
import sys
from pathlib import Path

import joblib
import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(7)
X = rng.normal(size=(60, 4)).astype(np.float32)
y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)  # 3 classes
PROBE = X[:3]


def folder(root: Path, name: str, implementation: str, uri: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    settings = {
        "name": name,
        "implementation": implementation,
        "parameters": {"uri": uri, "version": "v1"},
    }
    (path / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return path


def main(root: Path) -> None:
    expected = {"probe": PROBE.tolist()}

    sk = LogisticRegression(max_iter=200).fit(X, y)
    joblib.dump(
        sk,
        folder(root, "iris-sklearn", "mlserver_sklearn.SKLearnModel", "./model.joblib")
        / "model.joblib",
    )
    expected["iris-sklearn"] = {
        "predict": sk.predict(PROBE).tolist(),
        "predict_proba": sk.predict_proba(PROBE).tolist(),
    }

    xg = xgb.XGBClassifier(n_estimators=4, max_depth=2).fit(X, y)
    xg.save_model(
        folder(root, "iris-xgboost", "mlserver_xgboost.XGBoostModel", "./model.json") / "model.json"
    )
    expected["iris-xgboost"] = {
        "predict": xg.predict(PROBE).tolist(),
        "predict_proba": xg.predict_proba(PROBE).tolist(),
    }

    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "min_data_in_leaf": 2},
        lgb.Dataset(X, label=y),
        num_boost_round=4,
    )
    booster.save_model(
        str(
            folder(root, "iris-lightgbm", "mlserver_lightgbm.LightGBMModel", "./model.bst")
            / "model.bst"
        )
    )
    expected["iris-lightgbm"] = {"predict": booster.predict(PROBE).tolist()}

    (root / "expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
