"""Seldon's ``model_error_handler``: a Flask Blueprint whose ``app_errorhandler``
functions format the answer for the user's own exception types.

Flask is imported only when the user class has such a Blueprint (install the
``unitserve[flask]`` extra). The handlers run in a throw-away Flask request
context and their response's status, content type and body are sent as is.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("unitserve")


class FlaskErrorHandlers:
    def __init__(self, blueprint: Any) -> None:
        import flask

        self._app = flask.Flask("unitserve-error-handlers")
        self._app.register_blueprint(blueprint)

    def answer(self, exc: BaseException) -> tuple[int, bytes, str] | None:
        """(status, body, content type) from the user's handler, or None if it has none."""
        if not isinstance(exc, Exception):  # Flask handles exceptions, not exits
            return None
        app = self._app
        with app.test_request_context():
            try:
                rv = app.handle_user_exception(exc)
            except Exception as other:
                if other is not exc:
                    log.error("model_error_handler failed on %r: %s", exc, other)
                return None
            response = app.make_response(rv)
            return response.status_code, response.get_data(), response.content_type


def error_handlers_of(user: Any) -> FlaskErrorHandlers | None:
    handler = getattr(user, "model_error_handler", None)
    if handler is None or not type(handler).__module__.startswith("flask"):
        return None
    try:
        return FlaskErrorHandlers(handler)
    except ImportError:
        log.warning(
            "model_error_handler is a Flask Blueprint but Flask is not installed: "
            "pip install flask (the flask extra: pip install -e '.[flask]' in a clone) to use it"
        )
        return None
