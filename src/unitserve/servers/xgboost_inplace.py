"""The answers of XGBoost's scikit-learn interface, ``predict`` and ``predict_proba``,
computed the way that interface computes them, without its cost on each call.

`XGBClassifier.predict` is `Booster.inplace_predict` followed by a step that turns
probabilities into labels; around it, the wrapper enters XGBoost's global configuration
twice, looks up the best iteration and the booster again, on every call: on a one-row
request that costs about as much as the prediction. Here those look-ups are done once,
when the model is loaded, and each call is the booster's `inplace_predict` with the
wrapper's arguments, then the wrapper's own step.

Only models whose answers are certain take this path: gbtree and dart boosters, and for
classifiers the objectives binary:logistic, multi:softprob and multi:softmax (and
predict_proba for the first two). Any other model, and any input `inplace_predict` does
not take, goes through the wrapper itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Method = Callable[[np.ndarray], Any]
CLASSIFIER_OBJECTIVES = ("binary:logistic", "multi:softprob", "multi:softmax")
PROBABILITY_OBJECTIVES = ("binary:logistic", "multi:softprob")


def methods(model: Any, xgb: Any) -> dict[str, Method]:
    """``predict`` (and a classifier's ``predict_proba``) of a loaded XGBRegressor or
    XGBClassifier, each the direct form where it gives exactly the wrapper's answer, else
    the wrapper's."""
    wrapped: dict[str, Method] = {
        name: getattr(model, name) for name in ("predict", "predict_proba") if hasattr(model, name)
    }
    if getattr(model, "booster", None) not in ("gbtree", "dart"):
        return wrapped
    predict_values = _values(model)
    if not isinstance(model, xgb.XGBClassifier):
        return {**wrapped, "predict": _or_wrapper(predict_values, model.predict)}
    objective = model.objective
    if objective not in CLASSIFIER_OBJECTIVES:
        return wrapped
    n_classes = int(model.n_classes_)

    def predict(X: np.ndarray) -> Any:
        return _labels(predict_values(X), n_classes, objective)

    fast = {"predict": _or_wrapper(predict, model.predict)}
    if objective in PROBABILITY_OBJECTIVES:

        def predict_proba(X: np.ndarray) -> Any:
            return _probabilities(predict_values(X), n_classes)

        fast["predict_proba"] = _or_wrapper(predict_proba, model.predict_proba)
    return {**wrapped, **fast}


def _values(model: Any) -> Method:
    """`XGBModel.predict`'s call of `inplace_predict`, with its arguments fixed at load."""
    booster = model.get_booster()
    try:  # the wrapper's iteration range: the best iteration, if trained with early stopping
        iteration_range = (0, model.best_iteration + 1)
    except AttributeError:
        iteration_range = (0, 0)
    missing = model.missing

    def values(X: np.ndarray) -> Any:
        return booster.inplace_predict(
            data=X,
            iteration_range=iteration_range,
            predict_type="value",
            missing=missing,
            base_margin=None,
            validate_features=True,
        )

    return values


def _or_wrapper(fast: Method, wrapper: Method) -> Method:
    def call(X: np.ndarray) -> Any:
        try:
            return fast(X)
        except TypeError:  # an input inplace_predict does not take: the wrapper's own path
            return wrapper(X)

    return call


def _labels(class_probs: Any, n_classes: int, objective: str) -> Any:
    """`XGBClassifier.predict`'s step from the booster's values to labels."""
    if len(class_probs.shape) > 1 and n_classes != 2:
        return np.argmax(class_probs, axis=1)
    if len(class_probs.shape) > 1 and class_probs.shape[1] != 1:  # multi-label
        labels = np.zeros(class_probs.shape)
        labels[class_probs > 0.5] = 1
        return labels
    if objective == "multi:softmax":
        return class_probs.astype(np.int32)
    labels = np.repeat(0, class_probs.shape[0])
    labels[class_probs > 0.5] = 1
    return labels


def _probabilities(prediction: Any, n_classes: int) -> Any:
    """`XGBClassifier.predict_proba`'s step for the probability objectives."""
    if len(prediction.shape) == 2 and prediction.shape[1] == n_classes:
        return prediction
    if len(prediction.shape) == 2 and n_classes == 2 and prediction.shape[1] >= n_classes:
        return prediction
    return np.vstack((1.0 - prediction, prediction)).transpose()
