"""A scikit-learn Pipeline's answers, computed the way the Pipeline computes them, without
its cost on each call.

`Pipeline.predict` (likewise `predict_proba` and `decision_function`) checks that the
pipeline is fitted, then hands the features through each step's `transform` and calls
the last step's method. The check alone (it collects every step's tags, copying them)
costs about a sixth of a one-row call of a small model such as Seldon's iris example, a
one-step Pipeline around a LogisticRegression. A loaded model does not change, so here
it is checked once, at load, and each call is the steps' own methods in the Pipeline's
order: the same calls on the same objects, so the same answers and the same errors for
features the model refuses.

Only a plain `Pipeline` (not a subclass, which may change what its methods do) takes
this path, and only while scikit-learn's metadata routing is off (with it on, the
Pipeline hands request metadata to the steps, which a server never sends, but the
routing is the Pipeline's to do).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Method = Callable[[Any], Any]
METHODS = ("predict", "predict_proba", "decision_function")


def direct_methods(model: Any) -> dict[str, Method]:
    """The model's `METHODS` that can be called on its steps directly ({} for any model
    that is not a fitted plain Pipeline, or when metadata routing is on)."""
    from sklearn import get_config
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if type(model) is not Pipeline or get_config().get("enable_metadata_routing", False):
        return {}
    try:
        check_is_fitted(model)
    except NotFittedError:
        return {}  # the Pipeline's own methods say so on each call
    *heads, (_, final) = model.steps
    if final is None or final == "passthrough":
        return {}
    # The steps the Pipeline itself skips (None, "passthrough") are skipped here too.
    transforms = [step.transform for _, step in heads if step is not None and step != "passthrough"]
    out = {}
    for name in METHODS:
        method = getattr(final, name, None)  # absent where the Pipeline's is too
        if method is not None:
            out[name] = _through(transforms, method)
    return out


def _through(transforms: Sequence[Method], method: Method) -> Method:
    if not transforms:
        return method

    def call(X: Any) -> Any:
        for transform in transforms:
            X = transform(X)
        return method(X)

    return call
