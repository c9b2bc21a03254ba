"""``SKLEARN_SERVER``: a scikit-learn model saved with joblib (``model.joblib``).

On the Seldon protocol it answers as Seldon's SKLearnServer: the constructor's `method`
(``predict_proba`` by default, ``decision_function``, anything else ``predict``) on the
features as sent. On the Open Inference Protocol it answers as MLServer's sklearn
runtime: ``predict`` (or the ``predict_fn`` parameter) unless the request names its
outputs (``predict``, ``predict_proba``, ``transform``), each output named after its
method and written as MLServer writes it (a table's columns as outputs of their own).
The request's ``parameters.content_type`` says what the model is given: ``pd`` a
DataFrame of one column an input (a Pipeline fitted on named columns), ``str`` a list
of text, ``np`` (the default) the one input's array.
A plain Pipeline's methods are called on its steps directly, as `sklearn_pipeline` says.

Unlike Seldon's class it does not swallow errors: features the model refuses are a 400
with scikit-learn's sentence, and a model saved by another scikit-learn version is
logged with both versions.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

from unitserve.message import COLUMNS, RuntimeOutputs
from unitserve.servers import model_files, request_content, sklearn_pipeline
from unitserve.user_model import SeldonComponent

log = logging.getLogger("unitserve.servers")

NAME = "SKLEARN_SERVER"
# Seldon's server reads model.joblib only; MLServer's runtime also model.pickle, model.pkl.
MODEL_FILES = ("model.joblib", "model.pickle", "model.pkl")
OIP_OUTPUTS = ("predict", "predict_proba", "transform")


class SKLearnServer(SeldonComponent):
    def __init__(
        self,
        model_uri: str | None = None,
        method: str = "predict_proba",
        predict_fn: str | None = None,
        content_type: str | None = None,
    ) -> None:
        """`method`: what the Seldon protocol answers. `predict_fn`: what the Open
        Inference Protocol answers when the request names no outputs (``predict`` when
        unset), as the setting of that name of MLServer's sklearn runtime.
        `content_type`: how a request that names no content type is read (``np`` when
        unset), as MLServer's model settings ``parameters.content_type``."""
        super().__init__()
        self.model_uri = model_uri
        self.method = method
        if predict_fn is not None and predict_fn not in OIP_OUTPUTS:
            raise ValueError(
                f"predict_fn must be one of {', '.join(OIP_OUTPUTS)}, not {predict_fn!r}"
            )
        self.predict_fn = predict_fn
        self.content_type = request_content.checked_default(
            content_type, request_content.RUNTIME_CONTENT_TYPES
        )
        self._sklearn = model_files.require(NAME, "sklearn")
        self._joblib = model_files.require(NAME, "joblib")
        self.model_file = model_files.find_model_file(model_uri, MODEL_FILES, NAME)
        self._model: Any = None
        # A Pipeline's methods called on its steps directly (see sklearn_pipeline).
        self._direct: dict[str, sklearn_pipeline.Method] = {}
        log.info("%s: model %s, method %s", NAME, self.model_file, method)

    def load(self) -> None:
        installed = self._sklearn.__version__
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                self._model = self._joblib.load(self.model_file)
            except Exception as exc:
                saved = saved_sklearn_version(self.model_file)
                if saved and saved != installed:
                    log.error(
                        "%s was saved by scikit-learn %s; scikit-learn %s is installed and "
                        "cannot load it (%s: %s): install scikit-learn==%s, or save the "
                        "model again with %s",
                        self.model_file,
                        saved,
                        installed,
                        type(exc).__name__,
                        exc,
                        saved,
                        installed,
                    )
                raise
        for w in caught:
            saved = getattr(w.message, "original_sklearn_version", None)
            if saved is not None:
                log.warning(
                    "%s was saved by scikit-learn %s and is loaded by scikit-learn %s: "
                    "its answers may differ (%s)",
                    self.model_file,
                    saved,
                    installed,
                    getattr(w.message, "estimator_name", "an estimator"),
                )
                break
        self._direct = sklearn_pipeline.direct_methods(self._model)
        log.info("%s: loaded %s", NAME, type(self._model).__name__)

    def predict(self, X: Any, names: Any = None, meta: Any = None) -> Any:
        wanted = model_files.requested_outputs(meta)
        if wanted is None:
            return self._call(self._seldon_method(), X)
        if not wanted and self.predict_fn is not None:
            wanted = [self.predict_fn]
        names = model_files.check_outputs(NAME, wanted, OIP_OUTPUTS)
        if "predict_proba" in names and not hasattr(self._final_step(), "predict_proba"):
            raise model_files.bad_input(
                ValueError(f"{type(self._final_step())} models do not support 'predict_proba'")
            )
        content_type = request_content.request_content_type(meta) or self.content_type
        X = request_content.decode(X, content_type)
        outputs = {}
        for name in names:
            result = self._call(name, X)
            if model_files.is_table(result):  # ``set_output(transform="pandas")``
                if len(names) > 1:
                    raise model_files.bad_input(
                        ValueError(
                            f"{name} returned a table and {names} were requested: "
                            "the columns of a table are the whole answer"
                        )
                    )
                columns = {str(c): result[c].to_numpy() for c in result.columns}
                return RuntimeOutputs(columns, made_of=COLUMNS)
            outputs[name] = result
        return RuntimeOutputs(outputs)

    def _seldon_method(self) -> str:
        if self.method in ("predict_proba", "decision_function"):
            return self.method
        return "predict"

    def _final_step(self) -> Any:
        steps = getattr(self._model, "steps", None)
        return steps[-1][-1] if steps else self._model

    def _call(self, method: str, X: Any) -> Any:
        fn = self._direct.get(method) or getattr(self._model, method, None)
        if fn is None:
            raise model_files.bad_input(
                AttributeError(f"{type(self._model).__name__} has no method {method}")
            )
        try:
            return fn(X)
        except (ValueError, TypeError) as exc:  # scikit-learn's checks of the features
            raise model_files.bad_input(exc) from exc

    def init_metadata(self) -> dict[str, Any]:
        return model_files.read_metadata(self.model_file)


_VERSION_AFTER_KEY = re.compile(rb"_sklearn_version.{1,12}?(\d+\.\d+(?:\.\d+)?(?:\w+\d*)?)", re.S)


def saved_sklearn_version(path: Path) -> str | None:
    """The scikit-learn version recorded in a pickle file (see `saved_sklearn_version_of`)."""
    try:
        return saved_sklearn_version_of(path.read_bytes())
    except OSError:
        return None


def saved_sklearn_version_of(data: bytes) -> str | None:
    """The scikit-learn version recorded in pickled bytes (each estimator pickles its
    ``_sklearn_version``), read without unpickling: it is needed exactly when the pickle
    cannot be loaded. None when not found (a compressed joblib file, say)."""
    found = _VERSION_AFTER_KEY.search(data)
    return found.group(1).decode() if found else None
