"""Typed errors and how each one is answered on REST and gRPC.

Everything that can go wrong while serving a request ends up here as one
`ServingError` (ours) or as an exception raised by user code. The transports
ask `describe` for an exception's answer and never decide a status themselves.

The REST error body is Seldon's: ``{"status": {"code": -1, "info": ...,
"reason": ..., "status": 1}}``.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import grpc

log = logging.getLogger("unitserve")

BAD_DATA = "MICROSERVICE_BAD_DATA"
INTERNAL_ERROR = "MICROSERVICE_INTERNAL_ERROR"
BAD_METRIC = "MICROSERVICE_BAD_METRIC"
BAD_METADATA = "MICROSERVICE_BAD_METADATA"


class SeldonMicroserviceException(Exception):
    """An error a user method raises to answer with its own status and reason.

    Same constructor as Seldon's ``seldon_core.flask_utils.SeldonMicroserviceException``:
    ``status_code`` defaults to 400 and ``reason`` to ``MICROSERVICE_BAD_DATA``;
    ``payload`` is accepted and kept, as Seldon does, but never sent.
    """

    status_code = 400

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        payload: Any = None,
        reason: str = BAD_DATA,
    ) -> None:
        Exception.__init__(self, message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.payload = payload
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {"status": {"status": 1, "info": self.message, "code": -1, "reason": self.reason}}


class SeldonNotImplementedError(SeldonMicroserviceException):
    """Raised by the `SeldonComponent` base methods: "the user did not write this one".

    The engine treats it as an absent method (falls through to the next
    candidate), exactly where Seldon does.
    """

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)


class ServingError(Exception):
    """An error found by unitserve itself, with its answer on both transports."""

    http_status = 500
    reason = INTERNAL_ERROR
    grpc_code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail  # logged, not sent: for messages fixed by compatibility


class BadRequest(ServingError):
    """The client sent something we cannot serve (bad JSON, wrong shapes, ...)."""

    http_status = 400
    reason = BAD_DATA
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT


class MalformedMessage(BadRequest):
    """Request bytes that are not the protobuf message the RPC takes."""


class PayloadTooLarge(BadRequest):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class NotDefined(ServingError):
    """The operation needs a user method the class does not have (route, aggregate)."""

    http_status = 400
    reason = BAD_DATA
    grpc_code = grpc.StatusCode.UNIMPLEMENTED


class BadMetric(ServingError):
    """User metrics that do not follow the metric contract."""

    reason = BAD_METRIC


class BadModelOutput(ServingError):
    """The user method returned something unitserve cannot send."""


class UnknownPayloadType(BadModelOutput):
    """A result of no payload type (an int, None, a tuple...). Seldon answers 400 and
    clients rely on it; gRPC says what it is, an internal error."""

    http_status = 400
    reason = BAD_DATA


class UnknownModel(ServingError):
    """A request for a model (or a version) this server does not serve."""

    http_status = 404
    reason = "MICROSERVICE_NOT_FOUND"
    grpc_code = grpc.StatusCode.NOT_FOUND


class WrongComponent(ServingError):
    """An operation this kind of component has no answer to (inference on a router or
    a combiner): the client asked the wrong component, not with a wrong body."""

    http_status = 400
    reason = BAD_DATA
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class NotReady(ServingError):
    http_status = 503
    reason = "MICROSERVICE_NOT_READY"
    grpc_code = grpc.StatusCode.UNAVAILABLE


class ModelLoadFailed(ServingError):
    """A repository load of a model that cannot be built or whose load() failed: the
    model's files or code are wrong, not the server (MLServer and Triton answer so)."""

    http_status = 400
    reason = "MODEL_LOAD_FAILED"
    grpc_code = grpc.StatusCode.FAILED_PRECONDITION


class Timeout(ServingError):
    http_status = 504
    reason = "MICROSERVICE_TIMEOUT"
    grpc_code = grpc.StatusCode.DEADLINE_EXCEEDED


class StartupError(Exception):
    """A user mistake found at start-up: printed as one line, exit non-zero, no traceback."""


# HTTP status → gRPC code, for user exceptions that carry an HTTP status
# (the usual HTTP/gRPC correspondence; anything else 4xx is a failed precondition).
_HTTP_TO_GRPC = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_code_for_http(status: int) -> grpc.StatusCode:
    code = _HTTP_TO_GRPC.get(status)
    if code is not None:
        return code
    if 400 <= status < 500:
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


def _is_seldon_exception(exc: BaseException) -> bool:
    """Ours, or seldon_core's own class when a user still imports it from there."""
    if isinstance(exc, SeldonMicroserviceException):
        return True
    return any(k.__name__ == "SeldonMicroserviceException" for k in type(exc).__mro__)


def is_not_implemented(exc: BaseException) -> bool:
    """True for `SeldonNotImplementedError`, ours or seldon_core's."""
    if isinstance(exc, SeldonNotImplementedError):
        return True
    return any(k.__name__ == "SeldonNotImplementedError" for k in type(exc).__mro__)


def status_body(info: str, reason: str) -> dict[str, Any]:
    return {"status": {"code": -1, "info": info, "reason": reason, "status": 1}}


class ErrorAnswer(NamedTuple):
    """How an exception is answered on both transports."""

    http_status: int
    reason: str  # Seldon's reason (MICROSERVICE_...)
    message: str  # the sentence the client reads
    grpc_code: grpc.StatusCode


def describe(exc: BaseException) -> ErrorAnswer:
    """The answer to any exception: ours, a Seldon exception of the user's, or a bug."""
    if isinstance(exc, ServingError):
        return ErrorAnswer(exc.http_status, exc.reason, exc.message, exc.grpc_code)
    if _is_seldon_exception(exc):
        status = getattr(exc, "status_code", 400)
        if not isinstance(status, int) or not 100 <= status <= 599:
            status = 500
        message = str(getattr(exc, "message", "") or exc)
        reason = str(getattr(exc, "reason", BAD_DATA))
        return ErrorAnswer(status, reason, message, grpc_code_for_http(status))
    return ErrorAnswer(500, INTERNAL_ERROR, str(exc), grpc.StatusCode.INTERNAL)


def log_error(exc: BaseException, where: str, *, said_as: str | None = None) -> None:
    """Log once per failed request: client errors without a traceback, ours and user bugs with.

    A rejection is logged with the words its protocol answered with: by default the
    HTTP status and Seldon reason; `said_as` replaces them (an Open Inference request
    has no Seldon reason: its REST status, or its gRPC code, is what the client saw)."""
    status, reason, message, _ = describe(exc)
    if status >= 500 and not isinstance(exc, ServingError | SeldonMicroserviceException):
        log.error("%s failed: %s", where, message or type(exc).__name__, exc_info=exc)
    elif status >= 500:
        log.error("%s failed: %s %s", where, reason, message)
    else:
        detail = getattr(exc, "detail", None)
        log.info(
            "%s rejected (%s): %s%s",
            where,
            said_as if said_as is not None else f"{status} {reason}",
            message,
            f" ({detail})" if detail else "",
        )


# The Seldon protocol's answer on a server with no default model (a model repository).
NO_DEFAULT_MODEL = (
    "this server serves models by name (a model repository): use the Open Inference "
    "Protocol, /v2/models/<name>/infer or ModelInfer"
)
