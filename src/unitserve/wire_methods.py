"""Which user method takes a request as it came off the wire, per operation, in
Seldon's precedence: a deprecated method (``*_rest`` for requests of a JSON codec,
``*_grpc`` for protobuf; for the operations but predict, whichever exists), then
``*_raw``. Looked up once per user object; the engine asks it on each request."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unitserve.component import MethodTable, UserMethod
from unitserve.operations import (
    AGGREGATE,
    PREDICT,
    ROUTE,
    SEND_FEEDBACK,
    TRANSFORM_INPUT,
    TRANSFORM_OUTPUT,
)


@dataclass(frozen=True, slots=True)
class WireMethods:
    """The user methods of one operation that take the request as it came off the
    wire (looked up once): a deprecated method for each codec family, then ``*_raw``."""

    json: UserMethod | None  # deprecated, for requests of a JSON codec
    proto: UserMethod | None  # deprecated, for requests of a protobuf codec
    raw: UserMethod | None
    label: str
    with_status: bool  # a raw answer's ``status.code`` becomes the HTTP status (predict)


def wire_methods_of(m: MethodTable) -> dict[str, WireMethods | None]:
    """Each operation's wire methods (None: the operation has none, and goes straight
    to its normal method)."""
    # Predict calls the deprecated method of the request's transport; the other
    # operations call whichever of *_rest / *_grpc exists (first *_rest), as Seldon.
    return {
        PREDICT.name: _one_operation(
            m.predict_rest, m.predict_grpc, m.predict_raw, PREDICT.label, with_status=True
        ),
        TRANSFORM_INPUT.name: _one_operation(
            _either(m.transform_input_rest, m.transform_input_grpc),
            _either(m.transform_input_rest, m.transform_input_grpc),
            m.transform_input_raw,
            TRANSFORM_INPUT.label,
        ),
        TRANSFORM_OUTPUT.name: _one_operation(
            _either(m.transform_output_rest, m.transform_output_grpc),
            _either(m.transform_output_rest, m.transform_output_grpc),
            m.transform_output_raw,
            TRANSFORM_OUTPUT.label,
        ),
        ROUTE.name: _one_operation(
            _either(m.route_rest, m.route_grpc),
            _either(m.route_rest, m.route_grpc),
            m.route_raw,
            ROUTE.label,
        ),
        AGGREGATE.name: _one_operation(
            _either(m.aggregate_rest, m.aggregate_grpc),
            _either(m.aggregate_rest, m.aggregate_grpc),
            m.aggregate_raw,
            AGGREGATE.label,
        ),
        SEND_FEEDBACK.name: _one_operation(
            _deprecated_feedback(m),
            _deprecated_feedback(m),
            m.send_feedback_raw,
            SEND_FEEDBACK.label,
        ),
    }


def raw_status(answer: Any) -> int:
    """Seldon: a raw predict answer's ``status.code`` becomes the HTTP status."""
    if isinstance(answer, dict):
        status = answer.get("status")
        if isinstance(status, dict):
            code = status.get("code")
            if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
                return code
    return 200


def plain_method(name: str, fn: Callable[..., Any]) -> UserMethod:
    return UserMethod(name, fn, False, inspect.iscoroutinefunction(fn))


def _either(first: UserMethod | None, second: UserMethod | None) -> UserMethod | None:
    return first if first is not None else second


def _one_operation(
    json: UserMethod | None,
    proto: UserMethod | None,
    raw: UserMethod | None,
    label: str,
    with_status: bool = False,
) -> WireMethods | None:
    """None when the operation has no such method: it then goes straight to the normal
    method, with no step to skip per request."""
    if json is None and proto is None and raw is None:
        return None
    return WireMethods(json, proto, raw, label, with_status)


def _deprecated_feedback(m: MethodTable) -> UserMethod | None:
    """The deprecated feedback method, called alike on both transports (the first of
    ``send_feedback_rest``, which gets the Feedback as protobuf JSON text, and
    ``send_feedback_grpc``, which gets the message), with a None answer made ``{}``."""
    method = _either(m.send_feedback_rest, m.send_feedback_grpc)
    if method is None:
        return None
    fn = method.fn
    as_text = method is m.send_feedback_rest
    call: Callable[[Any], Any]
    if method.is_async:

        async def call(request: Any) -> Any:
            answer = await fn(_feedback_json(request) if as_text else request)
            return {} if answer is None else answer

    else:

        def call(request: Any) -> Any:
            answer = fn(_feedback_json(request) if as_text else request)
            return {} if answer is None else answer

    return UserMethod(method.name, call, False, method.is_async)


def _feedback_json(request: Any) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(request)
