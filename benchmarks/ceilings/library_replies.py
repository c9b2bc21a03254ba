"""The least a Python server must do to answer a prepackaged server's request: parse the
JSON, make the NumPy array, call the library, write the answer in the form the server
writes it. No routing, validation, metrics, logging or thread hand-off: the cost of a
server that adds nothing to the library's own.

Each maker loads a model file and returns the function from request body to reply body:

- seldon-sklearn: Seldon protocol `ndarray`, scikit-learn `predict_proba` (the default of
  Seldon's SKLearnServer), answered as `{"data": {"names": ["t:0", ...], "ndarray": ...}}`;
- v2-sklearn, v2-xgboost: Open Inference Protocol, the first input's `data` and `shape`,
  the model's `predict` as MLServer's runtimes load and call it (XGBoost through its
  scikit-learn interface, a regressor unless the file says classifier; one thread, as a
  server running requests side by side should), answered as MLServer answers: one output
  `predict`, `[N, 1]` for a column of labels, `content_type` "np".
"""

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

OPTIONS = orjson.OPT_SERIALIZE_NUMPY
V2_DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}
V2_NAMES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32"}

Reply = Callable[[bytes], bytes]


def seldon_sklearn(model_file: Path) -> Reply:
    import joblib

    predict_proba = joblib.load(model_file).predict_proba

    def reply(body: bytes) -> bytes:
        features = np.asarray(orjson.loads(body)["data"]["ndarray"], dtype=np.float64)
        probabilities = predict_proba(features)
        names = [f"t:{i}" for i in range(probabilities.shape[-1])]
        data = {"names": names, "ndarray": probabilities}
        return orjson.dumps({"data": data, "meta": {}}, option=OPTIONS)

    return reply


def v2_sklearn(model_file: Path) -> Reply:
    import joblib

    return _v2_reply(joblib.load(model_file).predict)


def v2_xgboost(model_file: Path) -> Reply:
    import xgboost as xgb

    model: Any
    try:
        model = xgb.XGBRegressor()
        model.load_model(model_file)
    except TypeError:  # saved as a classifier: MLServer's runtime loads it as one
        model = xgb.XGBClassifier()
        model.load_model(model_file)
    model.set_params(n_jobs=1)
    return _v2_reply(model.predict)


def _v2_reply(predict: Callable[[np.ndarray], np.ndarray]) -> Reply:
    def reply(body: bytes) -> bytes:
        request = orjson.loads(body)
        tensor = request["inputs"][0]
        features = np.asarray(tensor["data"], dtype=V2_DTYPES[tensor["datatype"]])
        result = predict(features.reshape(tensor["shape"]))
        shape = list(result.shape) if result.ndim > 1 else [len(result), 1]
        output = {
            "name": "predict",
            "shape": shape,
            "datatype": V2_NAMES[result.dtype.name],
            "parameters": {"content_type": "np"},
            "data": result.ravel(),
        }
        answer = {"model_name": "identity", "id": str(uuid.uuid4()), "outputs": [output]}
        return orjson.dumps(answer, option=OPTIONS)

    return reply


MAKERS: dict[str, Callable[[Path], Reply]] = {
    "seldon-sklearn": seldon_sklearn,
    "v2-sklearn": v2_sklearn,
    "v2-xgboost": v2_xgboost,
}
