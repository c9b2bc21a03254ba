"""Errors a client can act on.

* `SeldonMicroserviceException(message, status_code, reason)` answers with that
  HTTP status and Seldon's error body on REST, and the matching gRPC code.
* Your own exception types can be formatted by a Flask Blueprint set as
  `model_error_handler` (REST only; needs Flask: see requirements.txt).
"""

import flask
import numpy as np

from unitserve import SeldonMicroserviceException


class InsufficientCredit(Exception):
    pass


errors = flask.Blueprint("credit_errors", __name__)


@errors.app_errorhandler(InsufficientCredit)
def insufficient_credit(error):
    response = flask.jsonify({"status": {"app_code": 1402, "info": str(error), "status": 1}})
    response.status_code = 402
    return response


class CreditModel:
    model_error_handler = errors

    def predict(self, X, features_names):
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != 2:
            raise SeldonMicroserviceException(
                "expected rows of [credit, price]", status_code=422, reason="BAD_SHAPE"
            )
        credit, price = X[:, 0], X[:, 1]
        if np.any(price > credit):
            raise InsufficientCredit(f"{int(np.sum(price > credit))} row(s) exceed the credit")
        return (credit - price).reshape(-1, 1)
