"""SKLEARN_SERVER calls a plain Pipeline's steps directly: the answers are exactly the
Pipeline's own (numbers, dtype, shape), and so are the errors for features the model
refuses; the models that may not take that path do not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from tests import server_models
from tests.unit.test_servers import serve
from unitserve.servers import sklearn_pipeline
from unitserve.servers.sklearn import SKLearnServer


def fitted(kind: str) -> Any:
    X, y = server_models.iris()
    classifier = LogisticRegression(max_iter=500)
    steps: dict[str, list[tuple[str, Any]]] = {
        "one-step": [("clf", classifier)],
        "scaled": [("scale", StandardScaler()), ("clf", classifier)],
        "passthrough": [("skip", "passthrough"), ("none", None), ("clf", classifier)],
        "svc": [("scale", StandardScaler()), ("clf", SVC())],  # no predict_proba
    }
    return Pipeline(steps[kind]).fit(X, y)


def loaded(tmp_path: Path, model: Any) -> SKLearnServer:
    joblib.dump(model, tmp_path / "model.joblib")
    server = SKLearnServer(model_uri=str(tmp_path))
    server.load()
    return server


@pytest.mark.parametrize("kind", ["one-step", "scaled", "passthrough", "svc"])
def test_the_steps_answer_as_the_pipeline(tmp_path: Path, kind: str) -> None:
    server = loaded(tmp_path, fitted(kind))
    model = server._model
    X, _ = server_models.iris()
    wanted = {"predict", "decision_function"} | ({"predict_proba"} if kind != "svc" else set())
    assert set(server._direct) == wanted
    for rows in (X[:1], X[::7], X[::3].astype(np.float32)):
        for name in wanted:
            ours, theirs = server._direct[name](rows), getattr(model, name)(rows)
            assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
            np.testing.assert_array_equal(ours, theirs)


def test_features_the_model_refuses_get_the_pipelines_sentence(tmp_path: Path) -> None:
    model = fitted("scaled")
    joblib.dump(model, tmp_path / "model.joblib")
    with pytest.raises(ValueError) as theirs:
        model.predict_proba(np.ones((1, 3)))
    h = serve("SKLEARN_SERVER", tmp_path)
    r = h.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1.0, 2.0, 3.0]]}})
    assert r.status_code == 400 and str(theirs.value) in r.text


class OwnPipeline(Pipeline):
    """A subclass may do anything in its methods: it keeps them."""


def test_other_models_keep_their_own_methods(tmp_path: Path) -> None:
    X, y = server_models.iris()
    assert sklearn_pipeline.direct_methods(LogisticRegression(max_iter=500).fit(X, y)) == {}
    assert sklearn_pipeline.direct_methods(OwnPipeline([("clf", LogisticRegression())])) == {}
    unfitted = Pipeline([("clf", LogisticRegression())])
    assert sklearn_pipeline.direct_methods(unfitted) == {}
    with sklearn.config_context(enable_metadata_routing=True):
        assert sklearn_pipeline.direct_methods(fitted("one-step")) == {}
    assert set(sklearn_pipeline.direct_methods(fitted("one-step"))) == {
        "predict",
        "predict_proba",
        "decision_function",
    }
