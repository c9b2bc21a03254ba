"""``MLFLOW_SERVER``: an MLflow model folder (``MLmodel``) loaded as a pyfunc model.

On the Seldon protocol it answers as Seldon's MLFlowServer: with ``xtype="ndarray"``
the model gets the features as sent; otherwise a pandas DataFrame whose columns are the
request's feature names. A DataFrame result is sent as its values, its columns becoming
the class names. Where Seldon's server fails (an array, or a DataFrame without names,
sent to a model whose signature names its columns), the features become a DataFrame of
the signature's columns when their count matches.

On the Open Inference Protocol it answers as MLServer's mlflow runtime: the request's
``parameters.content_type`` says what the model gets (``pd`` a DataFrame, ``np`` an
array, ``str`` a list of text, ``dict`` a dict of arrays); without one, several inputs
(or a model whose signature names its columns) become a DataFrame; an array result is
the output ``output-1``, a DataFrame one output a column, a dict one output a key, and
the answer's ``parameters.content_type`` says which (``np``, ``pd``, ``dict``). Its
model metadata there lists the signature's inputs and outputs (`mlflow_signature`).

No conda or virtual environment is built at start (Seldon's image does so, slowly): the
libraries the model needs are installed with the server.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from unitserve.errors import SeldonNotImplementedError
from unitserve.message import COLUMNS, RuntimeOutputs
from unitserve.servers import mlflow_signature, model_files, request_content
from unitserve.user_model import SeldonComponent

log = logging.getLogger("unitserve.servers")

NAME = "MLFLOW_SERVER"
XTYPES = ("ndarray", "dataframe")
# The request content types of MLServer's mlflow runtime: its own dict of arrays too.
MLFLOW_CONTENT_TYPES = (*request_content.RUNTIME_CONTENT_TYPES, request_content.TENSOR_DICT)


class MLFlowServer(SeldonComponent):
    def __init__(self, model_uri: str | None = None, xtype: str = "ndarray") -> None:
        super().__init__()
        self.model_uri = model_uri
        self.xtype = xtype
        self._pyfunc = model_files.require(NAME, "mlflow.pyfunc")
        self._pd = model_files.require(NAME, "pandas")
        self.folder = model_files.find_model_file(model_uri, ("MLmodel",), NAME).parent
        self._model: Any = None
        self._columns: list[str] | None = None
        self._signature_columns: list[str] | None = None
        self.column_names: list[str] | None = None
        # The Open Inference Protocol's model metadata, from the model's signature.
        self.oip_model_metadata: dict[str, Any] | None = None

    def load(self) -> None:
        self._model = self._pyfunc.load_model(str(self.folder))
        schema = self._model.metadata.get_input_schema()
        if schema is not None and not schema.is_tensor_spec() and schema.has_input_names():
            self._signature_columns = list(schema.input_names())
        self.oip_model_metadata = mlflow_signature.oip_metadata(self._model.metadata.signature)
        log.info("%s: loaded %s (xtype %s)", NAME, self.folder, self.xtype)

    def predict(self, X: Any, names: Any = None, meta: Any = None) -> Any:
        wanted = model_files.requested_outputs(meta)
        if wanted is None:
            return self._seldon(X, list(names or []))
        result = self._run(self._decoded(X, request_content.request_content_type(meta)))
        if isinstance(result, self._pd.DataFrame):
            columns = {str(c): result[c].to_numpy() for c in result.columns}
            return RuntimeOutputs(columns, made_of=COLUMNS, content_type="pd")
        if isinstance(result, self._pd.Series):
            result = result.to_numpy()
        if isinstance(result, dict):
            return RuntimeOutputs({str(k): v for k, v in result.items()}, content_type="dict")
        return RuntimeOutputs({"output-1": result}, content_type="np")

    def _seldon(self, X: Any, names: list[str]) -> Any:
        if self.xtype == "ndarray":
            data = self._oip_input(X)
        else:
            columns = names or self._matching_columns(X)
            data = self._pd.DataFrame(data=X, columns=columns)
        result = self._run(data)
        if isinstance(result, self._pd.DataFrame):
            if self.column_names is None:
                self.column_names = [str(c) for c in result.columns]
            result = result.to_numpy()
        return result

    def _decoded(self, X: Any, content_type: str | None) -> Any:
        """What the model is given on the Open Inference Protocol: as the request's
        content type says (a table, an array, text or a dict of arrays), or, when it
        says none, as the model's signature suggests (`_oip_input`)."""
        if content_type is None:
            return self._oip_input(X)
        decoded = request_content.decode(X, content_type, MLFLOW_CONTENT_TYPES)
        return self._oip_input(decoded) if content_type == request_content.ARRAY else decoded

    def _oip_input(self, X: Any) -> Any:
        """What the model is given: several inputs as a DataFrame of one column each; an
        array whose columns match the columns the model's signature names, as a DataFrame
        of those columns (the model would refuse the bare array); else the array."""
        pd = self._pd
        if isinstance(X, dict):
            return pd.DataFrame({k: np.asarray(v).reshape(len(v), -1)[:, 0] for k, v in X.items()})
        columns = self._matching_columns(X)
        return X if columns is None else pd.DataFrame(X, columns=columns)

    def _matching_columns(self, X: Any) -> list[str] | None:
        columns = self._signature_columns
        if columns and isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[1] == len(columns):
            return columns
        return None

    def _run(self, data: Any) -> Any:
        try:
            return self._model.predict(data)
        except Exception as exc:
            # MLflow checks the input against the model's signature and says why it refuses
            if type(exc).__name__ in ("MlflowException", "ValueError", "TypeError", "KeyError"):
                raise model_files.bad_input(exc) from exc
            raise

    def class_names(self) -> list[str]:
        if self.column_names is not None:
            return self.column_names
        raise SeldonNotImplementedError("prediction result is not a dataframe")

    def init_metadata(self) -> dict[str, Any]:
        return model_files.read_metadata(self.folder)
