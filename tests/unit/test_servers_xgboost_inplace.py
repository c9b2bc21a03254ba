"""XGBOOST_SERVER's direct ``predict`` and ``predict_proba`` give exactly what XGBoost's
scikit-learn interface gives: the same numbers, the same dtype and shape, for each kind
of model, loaded the way the server loads it (a regressor unless the file says
classifier), on float32, float64 and integer rows, with missing values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import server_models
from unitserve.servers import xgboost_inplace
from unitserve.servers.xgboost import XGBoostServer

xgb = pytest.importorskip("xgboost")


def trained(kind: str) -> Any:
    X, y = server_models.iris()
    params: dict[str, Any] = {"n_estimators": 6, "max_depth": 2, "n_jobs": 1}
    if kind == "binary":
        return xgb.XGBClassifier(**params).fit(X, (y == 2).astype(int))
    if kind == "softprob":
        return xgb.XGBClassifier(**params).fit(X, y)
    if kind == "softmax":
        return xgb.XGBClassifier(objective="multi:softmax", **params).fit(X, y)
    if kind == "regressor":
        return xgb.XGBRegressor(**params).fit(X[:, :3], X[:, 3])
    if kind == "early-stopping":  # a best iteration the answers must stop at
        model = xgb.XGBClassifier(n_estimators=60, early_stopping_rounds=2, max_depth=2)
        return model.fit(X[::2], y[::2], eval_set=[(X[1::2], y[1::2])], verbose=False)
    if kind == "gblinear":
        return xgb.XGBClassifier(booster="gblinear", n_estimators=4).fit(X, y)
    raise AssertionError(kind)


def loaded(tmp_path: Path, kind: str) -> XGBoostServer:
    trained(kind).save_model(tmp_path / "model.json")
    server = XGBoostServer(model_uri=str(tmp_path))
    server.load()
    return server


def rows(kind: str) -> list[np.ndarray]:
    X, _ = server_models.iris()
    X = X[:, :3] if kind == "regressor" else X
    with_missing = X[:7].copy()
    with_missing[1, 0] = with_missing[4, 2] = np.nan
    return [
        X[:1],
        X[::9],
        X[::5].astype(np.float32),
        np.rint(X[::11]).astype(np.int64),
        with_missing,
    ]


def assert_same(ours: Any, theirs: Any) -> None:
    assert type(ours) is type(theirs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


KINDS = ["binary", "softprob", "softmax", "regressor", "early-stopping", "gblinear"]


@pytest.mark.parametrize("kind", KINDS)
def test_direct_answers_are_the_wrappers(tmp_path: Path, kind: str) -> None:
    server = loaded(tmp_path, kind)
    model = server._model
    methods = xgboost_inplace.methods(model, xgb)
    outputs = ["predict"] if kind == "regressor" else ["predict", "predict_proba"]
    for X in rows(kind):
        for name in outputs:
            assert_same(methods[name](X), getattr(model, name)(X))


@pytest.mark.parametrize(
    "kind, direct",
    [
        ("binary", {"predict", "predict_proba"}),
        ("softprob", {"predict", "predict_proba"}),
        ("softmax", {"predict"}),  # its probabilities are a softmax of margins: the wrapper's
        ("regressor", {"predict"}),
        ("early-stopping", {"predict", "predict_proba"}),
        ("gblinear", set()),  # a linear booster takes the wrapper's other path
    ],
)
def test_which_answers_take_the_direct_path(tmp_path: Path, kind: str, direct: set[str]) -> None:
    model = loaded(tmp_path, kind)._model
    methods = xgboost_inplace.methods(model, xgb)
    wrapped = {name for name in methods if getattr(methods[name], "__self__", None) is model}
    assert set(methods) - wrapped == direct


def test_early_stopping_answers_stop_at_the_best_iteration(tmp_path: Path) -> None:
    model = loaded(tmp_path, "early-stopping")._model
    assert 0 < model.best_iteration < 59
    X = rows("early-stopping")[1]
    every_tree = model.get_booster().inplace_predict(X)
    best = xgboost_inplace.methods(model, xgb)["predict_proba"](X)
    assert not np.array_equal(best, every_tree)
    assert_same(best, model.predict_proba(X))


def test_the_servers_answers_on_both_protocols_are_the_wrappers(tmp_path: Path) -> None:
    """Through the server's own predict: the Open Inference Protocol's outputs, and the
    Seldon protocol's predict_proba method."""
    server = loaded(tmp_path, "softprob")
    X = rows("softprob")[1]
    meta = {"outputs": ["predict", "predict_proba"]}
    outputs = server.predict(X, meta=meta)
    assert set(outputs) == {"predict", "predict_proba"}
    for name, value in outputs.items():
        assert_same(value, getattr(server._model, name)(X))
    server.method = "predict_proba"
    assert_same(server.predict(X), server._model.predict_proba(X))
