"""``XGBOOST_SERVER``: an XGBoost model (``model.json``, ``model.ubj``, then ``model.bst``).

On the Seldon protocol it answers as Seldon's XGBoostServer: the booster's prediction
on the features (a float32 array), or with ``method="predict_proba"`` the class
probabilities. On the Open Inference Protocol it answers as MLServer's xgboost runtime:
the model is loaded through XGBoost's scikit-learn interface (a regressor unless it was
saved as a classifier), ``predict`` unless the request names ``predict_proba``; a
request whose ``parameters.content_type`` is ``pd`` gives the model a DataFrame of one
column an input (XGBoost checks the names against the model's feature names). The
answers of that interface on arrays are computed as in `xgboost_inplace`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from unitserve.message import RuntimeOutputs
from unitserve.servers import model_files, request_content, xgboost_inplace
from unitserve.user_model import SeldonComponent

log = logging.getLogger("unitserve.servers")

NAME = "XGBOOST_SERVER"
# Seldon 1.19 reads model.json, else the deprecated model.bst; MLServer also model.ubj.
MODEL_FILES = ("model.json", "model.ubj", "model.bst")
OIP_OUTPUTS = ("predict", "predict_proba")
METHODS = ("predict", "predict_proba")


class XGBoostServer(SeldonComponent):
    def __init__(
        self,
        model_uri: str | None = None,
        method: str = "predict",
        nthread: int = 1,
        content_type: str | None = None,
    ) -> None:
        """`nthread`: XGBoost's threads for one prediction. One suits a server, which runs
        requests side by side already (XGBoost's default, every core for each request,
        makes small requests wait on each other's threads: about ten times slower on
        one-row requests); raise it for a few large requests at a time. `content_type`:
        how a request that names no content type is read (``np`` when unset), as
        MLServer's model settings ``parameters.content_type``."""
        super().__init__()
        self.nthread = int(nthread)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
        self.content_type = request_content.checked_default(
            content_type, request_content.RUNTIME_CONTENT_TYPES
        )
        self.model_uri = model_uri
        self.method = method
        self._xgb = model_files.require(NAME, "xgboost")
        self.model_file = model_files.find_model_file(model_uri, MODEL_FILES, NAME)
        self._model: Any = None
        self._booster: Any = None
        self._oip_methods: dict[str, xgboost_inplace.Method] = {}
        if self.model_file.name == "model.bst":
            log.warning(
                "%s: %s is XGBoost's old binary format: save the model as model.json",
                NAME,
                self.model_file,
            )

    def load(self) -> None:
        xgb = self._xgb
        try:  # as MLServer: a regressor, unless the file says it was a classifier
            model = xgb.XGBRegressor()
            model.load_model(self.model_file)
        except TypeError:
            model = xgb.XGBClassifier()
            model.load_model(self.model_file)
        model.set_params(n_jobs=self.nthread)
        self._model = model
        self._booster = model.get_booster()
        self._booster.set_param({"nthread": self.nthread})
        self._oip_methods = xgboost_inplace.methods(model, xgb)
        log.info(
            "%s: loaded %s (%d features)",
            NAME,
            type(model).__name__,
            self._booster.num_features(),
        )

    def predict(self, X: Any, names: Any = None, meta: Any = None) -> Any:
        wanted = model_files.requested_outputs(meta)
        if wanted is None:
            X = self._checked(X)
            if self.method == "predict_proba":
                return self._probabilities(X)
            return self._run(
                lambda: self._booster.predict(self._xgb.DMatrix(X, nthread=self.nthread))
            )
        outputs = model_files.check_outputs(NAME, wanted, OIP_OUTPUTS)
        if "predict_proba" in outputs and isinstance(self._model, self._xgb.XGBRegressor):
            raise model_files.bad_input(
                ValueError("XGBRegressor models do not support 'predict_proba'")
            )
        content_type = request_content.request_content_type(meta) or self.content_type
        X = request_content.decode(X, content_type)
        if model_files.is_table(X):  # a DataFrame: the interface's own methods
            methods = {name: getattr(self._model, name) for name in outputs}
        else:
            X, methods = self._checked(X), self._oip_methods
        return RuntimeOutputs({name: self._run(lambda n=name: methods[n](X)) for name in outputs})

    def _checked(self, X: Any) -> np.ndarray:
        if not isinstance(X, np.ndarray) or X.dtype.kind not in "biuf":
            raise model_files.bad_input(ValueError("XGBOOST_SERVER takes a numeric array"))
        expected = self._booster.num_features()
        got = X.shape[-1] if X.ndim else 0
        if X.ndim != 2 or got != expected:
            raise model_files.bad_input(
                ValueError(
                    f"Expected {expected} features, got {got} (features of shape "
                    f"{list(X.shape)}; one row per sample)"
                )
            )
        return X

    def _probabilities(self, X: np.ndarray) -> np.ndarray:
        if isinstance(self._model, self._xgb.XGBClassifier):
            return np.asarray(self._run(lambda: self._oip_methods["predict_proba"](X)))
        objective = str(self._model.get_params().get("objective") or "")
        raw = self._run(lambda: self._booster.predict(self._xgb.DMatrix(X, nthread=self.nthread)))
        if objective.startswith("binary:logistic"):
            return np.column_stack([1 - raw, raw])
        if objective.startswith("multi:softprob"):
            return np.asarray(raw)
        raise model_files.bad_input(
            ValueError(
                f"method predict_proba: the model's objective {objective!r} gives no probabilities"
            )
        )

    @staticmethod
    def _run(fn: Any) -> Any:
        try:
            return fn()
        except ValueError as exc:
            raise model_files.bad_input(exc) from exc

    def init_metadata(self) -> dict[str, Any]:
        return model_files.read_metadata(self.model_file)
