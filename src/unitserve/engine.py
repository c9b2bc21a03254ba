"""The Seldon component contract, independent of the wire.

Each operation (predict, transform_input, ..., health_status) is written as a
generator that reads top to bottom: it decides which user method to call,
*yields* the call, gets the result back, and returns ``(status, body)`` where
the body is whatever the codec produced. A driver runs the generator:
`run_sync` calls user methods directly (the engine then runs on the worker's
thread pool), `run_async` awaits ``async def`` methods on the event loop. The
operations are therefore written once for both kinds of user code.

Seldon's rules implemented here: method precedence (deprecated ``*_rest`` /
``*_grpc``, then ``*_raw``, then the normal method), SeldonNotImplementedError
falling through, `SeldonResponse` unwrapping, the tag / metric / requestPath /
puid merge (spec §5.3), metric validation, ``INCLUDE_METRICS_IN_CLIENT_RESPONSE``
and the payload kind of the answer (spec §5.1, §5.2).
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitserve.component import MethodTable, UserMethod, class_names_of
from unitserve.errors import (
    BadModelOutput,
    BadRequest,
    NotDefined,
    UnknownPayloadType,
    is_not_implemented,
)
from unitserve.protocol.message import (
    BIN,
    CUSTOM,
    DATA_KINDS,
    JSON,
    NDARRAY,
    STR,
    TENSOR,
    TFTENSOR,
    Codec,
    Message,
    Reply,
)
from unitserve.user_metrics import validate_metrics
from unitserve.user_model import SeldonResponse

log = logging.getLogger("unitserve")

# Metric `method` labels, as Seldon names them.
PREDICT = "predict"
TRANSFORM_INPUT = "inputtransform"
TRANSFORM_OUTPUT = "outputtransform"
ROUTE = "router"
AGGREGATE = "aggregate"
FEEDBACK = "feedback"
HEALTH = "health"

NOT_IMPLEMENTED: Any = object()  # sent back when a user method raised SeldonNotImplementedError


@dataclass(frozen=True, slots=True)
class Call:
    """One call of user code, yielded by an operation to its driver."""

    method: UserMethod
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None
    fallthrough: bool = False  # answer NOT_IMPLEMENTED instead of raising it


Outcome = tuple[int, Any]
Operation = Generator[Call, Any, Outcome]


class MetricsRecorder:
    """Where user metrics go (the Prometheus side implements it; this one drops them)."""

    def record(self, metrics: list[dict[str, Any]], method: str) -> None:
        pass

    def record_feedback(self, reward: float) -> None:
        pass


@dataclass(frozen=True)
class EngineConfig:
    unit_id: str | None = None  # PREDICTIVE_UNIT_ID
    unit_image: str = "NOT_IMPLEMENTED:NOT_IMPLEMENTED"  # PREDICTIVE_UNIT_IMAGE
    include_metrics: bool = True  # INCLUDE_METRICS_IN_CLIENT_RESPONSE
    record_rewards: bool = True  # SELDON_EXECUTOR_ENABLED

    @property
    def routing_key(self) -> str:
        return self.unit_id or "0"


# ----------------------------------------------------------------------------- drivers


_NO_GATE = nullcontext()


def run_sync(op: Operation, gate: AbstractContextManager[Any] = _NO_GATE) -> Outcome:
    """Run an operation calling every user method directly on this thread, each call
    inside `gate` (the worker's limit on concurrent user calls)."""
    sent: Any = None
    try:
        while True:
            call = op.send(sent)
            try:
                with gate:
                    sent = call.method.fn(*call.args, **(call.kwargs or {}))
            except Exception as exc:
                if call.fallthrough and is_not_implemented(exc):
                    sent = NOT_IMPLEMENTED
                else:
                    raise
    except StopIteration as stop:
        return stop.value


async def run_async(
    op: Operation, offload: Callable[[Callable[[], Any]], Awaitable[Any]]
) -> Outcome:
    """Run an operation on the event loop: ``async def`` methods are awaited here,
    synchronous ones are handed to `offload` (the worker's thread pool)."""
    sent: Any = None
    try:
        while True:
            call = op.send(sent)
            fn, args, kwargs = call.method.fn, call.args, call.kwargs or {}
            try:
                if call.method.is_async:
                    sent = await fn(*args, **kwargs)
                else:
                    sent = await offload(
                        lambda fn=fn, args=args, kwargs=kwargs: fn(*args, **kwargs)
                    )
            except Exception as exc:
                if call.fallthrough and is_not_implemented(exc):
                    sent = NOT_IMPLEMENTED
                else:
                    raise
    except StopIteration as stop:
        return stop.value


# ----------------------------------------------------------------------------- engine


@dataclass
class Engine:
    """One user object and the operations of the Seldon contract around it."""

    user: Any
    config: EngineConfig = field(default_factory=EngineConfig)
    recorder: MetricsRecorder = field(default_factory=MetricsRecorder)

    def __post_init__(self) -> None:
        self.m = MethodTable.of(self.user)
        self.class_names = class_names_of(self.user)
        self._class_names_method = (
            _plain_method("class_names", self.class_names) if callable(self.class_names) else None
        )
        self._own_path = (
            {self.config.unit_id: self.config.unit_image} if self.config.unit_id else {}
        )

    def wants_message(self, op: str) -> bool:
        """True if operation `op` may hand the request to a raw or deprecated method,
        which receive the protobuf message itself (not a decoded Message)."""
        return any(
            getattr(self.m, f"{op}{suffix}") is not None for suffix in ("_raw", "_rest", "_grpc")
        )

    def is_async(self, *names: str) -> bool:
        """True if any of the named user methods (or tags/metrics/class_names, which
        every answer may call) is ``async def``: the operation then runs on the loop."""
        methods = [getattr(self.m, n) for n in (*names, "tags", "metrics")]
        if self._class_names_method is not None and self._class_names_method.is_async:
            return True
        return any(m is not None and m.is_async for m in methods)

    # --------------------------------------------------------------- operations

    def predict(self, request: Any, codec: Codec) -> Operation:
        m = self.m
        deprecated = m.predict_grpc if codec.proto else m.predict_rest
        if deprecated is not None:
            return (yield from self._deprecated(deprecated, request, codec, True))
        if m.predict_raw is not None:
            answer = yield Call(m.predict_raw, (request,), fallthrough=True)
            if answer is not NOT_IMPLEMENTED:
                return self._raw(answer, request, codec, PREDICT, with_status=True)
        msg = codec.decode(request)
        result: Any = []
        if m.predict is not None:
            result = yield self._data_call(m.predict, msg)
            if result is NOT_IMPLEMENTED:
                result = []
        return (yield from self._respond(result, [msg], codec, PREDICT))

    def transform_input(self, request: Any, codec: Codec) -> Operation:
        return (
            yield from self._transform(
                request,
                codec,
                TRANSFORM_INPUT,
                self.m.transform_input,
                self.m.transform_input_raw,
                self.m.transform_input_rest or self.m.transform_input_grpc,
            )
        )

    def transform_output(self, request: Any, codec: Codec) -> Operation:
        return (
            yield from self._transform(
                request,
                codec,
                TRANSFORM_OUTPUT,
                self.m.transform_output,
                self.m.transform_output_raw,
                self.m.transform_output_rest or self.m.transform_output_grpc,
            )
        )

    def _transform(
        self,
        request: Any,
        codec: Codec,
        label: str,
        method: UserMethod | None,
        raw: UserMethod | None,
        deprecated: UserMethod | None,
    ) -> Operation:
        if deprecated is not None:
            return (yield from self._deprecated(deprecated, request, codec, False))
        if raw is not None:
            answer = yield Call(raw, (request,), fallthrough=True)
            if answer is not NOT_IMPLEMENTED:
                return self._raw(answer, request, codec, label)
        msg = codec.decode(request)
        result: Any = NOT_IMPLEMENTED
        if method is not None:
            result = yield self._data_call(method, msg)
        if result is NOT_IMPLEMENTED:  # identity
            result = msg.features
        return (yield from self._respond(result, [msg], codec, label))

    def route(self, request: Any, codec: Codec) -> Operation:
        m = self.m
        deprecated = m.route_rest or m.route_grpc
        if deprecated is not None:
            return (yield from self._deprecated(deprecated, request, codec, False))
        if m.route_raw is not None:
            answer = yield Call(m.route_raw, (request,), fallthrough=True)
            if answer is not NOT_IMPLEMENTED:
                return self._raw(answer, request, codec, ROUTE)
        msg = codec.decode(request)
        if m.route is None:
            # A SeldonComponent's inherited stub says so in its own words, as in Seldon.
            raise NotDefined(
                "route is not implemented" if hasattr(self.user, "route") else "Route not defined"
            )
        response = SeldonResponse.create((yield self._data_call(m.route, msg, fallthrough=False)))
        child = response.data
        if isinstance(child, bool) or not isinstance(child, int | np.integer):
            raise BadRequest(f"Routing response must be int but got {child}")
        response.data = np.array([[int(child)]])
        return (yield from self._respond(response, [msg], codec, ROUTE, merge_request=False))

    def aggregate(self, request: Any, codec: Codec) -> Operation:
        m = self.m
        deprecated = m.aggregate_rest or m.aggregate_grpc
        if deprecated is not None:
            return (yield from self._deprecated(deprecated, request, codec, False))
        if m.aggregate_raw is not None:
            answer = yield Call(m.aggregate_raw, (request,), fallthrough=True)
            if answer is not NOT_IMPLEMENTED:
                return self._raw(answer, request, codec, AGGREGATE)
        msgs = codec.decode_list(request)
        if m.aggregate is None:
            raise NotDefined(
                "aggregate is not implemented"
                if hasattr(self.user, "aggregate")
                else "Aggregate not defined"
            )
        features = [x.features for x in msgs]
        names = [x.names for x in msgs]
        result = yield Call(m.aggregate, (features, names))
        return (yield from self._respond(result, msgs, codec, AGGREGATE))

    def send_feedback(self, request: Any, codec: Codec) -> Operation:
        """`request` is a protobuf Feedback on both transports (REST converts first)."""
        m = self.m
        reward = float(getattr(request, "reward", 0.0))
        # A NaN or infinite reward (valid protobuf JSON: "NaN") would make the reward
        # sum NaN or infinite for the life of the worker: not recorded.
        if self.config.record_rewards and reward and math.isfinite(reward):
            self.recorder.record_feedback(reward)
        if m.send_feedback_rest is not None or m.send_feedback_grpc is not None:
            return (yield from self._deprecated_feedback(request, codec))
        if m.send_feedback_raw is not None:
            answer = yield Call(m.send_feedback_raw, (request,), fallthrough=True)
            if answer is not NOT_IMPLEMENTED:
                return self._raw(answer, request, codec, FEEDBACK)
        fb = codec.decode_feedback(request, self.config.routing_key)
        result: Any = None
        if m.send_feedback is not None:
            x = fb.request
            result = yield Call(
                m.send_feedback,
                (x.features, x.names, fb.reward, fb.truth),
                {"routing": fb.routing},
                fallthrough=True,
            )
            if result is NOT_IMPLEMENTED:
                result = None
        response = SeldonResponse.create(result)
        if response.data is None:
            response.data = np.array([])
        return (
            yield from self._respond(response, [fb.request], codec, FEEDBACK, merge_request=False)
        )

    def health_status(self, codec: Codec) -> Operation:
        m = self.m
        if m.health_status_raw is not None:
            answer = yield Call(m.health_status_raw, (), fallthrough=True)
            if answer is not NOT_IMPLEMENTED:
                return 200, codec.encode_raw(answer)
        # A SeldonComponent's inherited stub counts as "not implemented", as in Seldon.
        result: Any = (
            "not implemented - assuming healthy"
            if hasattr(self.user, "health_status")
            else "healthy"
        )
        if m.health_status is not None:
            result = yield Call(m.health_status, (), fallthrough=True)
            if result is NOT_IMPLEMENTED:
                result = "not implemented - assuming healthy"
        # Unlike Seldon, a probe does not call metrics(): probes must not bump counters.
        return (
            yield from self._respond(
                result,
                [Message(None, None)],
                codec,
                HEALTH,
                merge_request=False,
                static_metrics=False,
            )
        )

    # --------------------------------------------------------------- building answers

    def _data_call(self, method: UserMethod, msg: Message, fallthrough: bool = True) -> Call:
        kwargs = {"meta": msg.meta} if method.takes_meta else None
        return Call(method, (msg.features, msg.names), kwargs, fallthrough)

    def _respond(
        self,
        result: Any,
        msgs: list[Message],
        codec: Codec,
        label: str,
        merge_request: bool = True,
        static_metrics: bool = True,
    ) -> Operation:
        """Turn a user result into the codec's answer: metrics, tags, payload, names."""
        response = SeldonResponse.create(result)
        metrics: list[dict[str, Any]] = []
        if static_metrics and self.m.metrics is not None:
            static = yield Call(self.m.metrics, (), fallthrough=True)
            if static is not NOT_IMPLEMENTED and static is not None:
                metrics = list(validate_metrics(static))
        if response.metrics:
            metrics.extend(validate_metrics(response.metrics))
        if metrics:
            self.recorder.record(metrics, label)
        static_tags: Any = None
        if self.m.tags is not None:
            static_tags = yield Call(self.m.tags, (), fallthrough=True)
            if static_tags is NOT_IMPLEMENTED:
                static_tags = None
        meta = self._meta(
            msgs,
            merge_request,
            static_tags,
            response.tags,
            metrics if self.config.include_metrics else [],
        )
        reply = yield from self._reply(response.data, msgs[0].kind, meta, codec.proto)
        return 200, codec.encode(reply)

    def _meta(
        self,
        msgs: list[Message],
        merge_request: bool,
        static_tags: Any,
        runtime_tags: Any,
        metrics: list[dict[str, Any]],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first = msgs[0].meta
        if first and first.get("puid"):
            out["puid"] = first["puid"]
        tags: Any = None
        request_metrics: list[Any] = []
        path = dict(self._own_path)
        if merge_request:
            for msg in msgs:
                meta = msg.meta
                if not meta:
                    continue
                if "tags" in meta:
                    tags = _merge_tags(tags, meta["tags"], "meta.tags")
                if meta.get("metrics"):
                    if not isinstance(meta["metrics"], list):
                        raise BadRequest("meta.metrics must be a list")
                    request_metrics.extend(meta["metrics"])
                if meta.get("requestPath"):
                    if not isinstance(meta["requestPath"], dict):
                        raise BadRequest("meta.requestPath must be an object")
                    path.update(meta["requestPath"])
        for extra, where in ((static_tags, "tags()"), (runtime_tags, "SeldonResponse.tags")):
            if extra:
                if not isinstance(extra, dict):
                    raise BadModelOutput(f"{where} must return a dict, got {type(extra).__name__}")
                tags = _merge_tags(tags, extra, where)
        if tags:
            out["tags"] = tags
        if request_metrics or metrics:
            out["metrics"] = request_metrics + metrics
        if path:
            out["requestPath"] = path
        return out

    def _reply(
        self, data: Any, request_kind: str | None, meta: dict[str, Any], proto: bool
    ) -> Generator[Call, Any, Reply]:
        """Spec §5.1: the payload kind of the answer follows the result's type and,
        for numeric arrays, the request's kind."""
        if isinstance(data, dict):
            return Reply(JSON, data, None, meta)
        if isinstance(data, bytes | bytearray):
            return Reply(BIN, bytes(data), None, meta)
        if isinstance(data, str):
            return Reply(STR, data, None, meta)
        if proto and _is_any(data):
            return Reply(CUSTOM, data, None, meta)
        if not isinstance(data, np.ndarray | list):
            raise UnknownPayloadType(
                f"Unknown data type returned as payload (must be list or np array):{data}"
            )
        try:
            arr = data if isinstance(data, np.ndarray) else np.array(data)
        except (ValueError, TypeError) as exc:
            raise BadModelOutput(f"the model returned a list that is not an array: {exc}") from None
        numeric = arr.dtype.kind in "iufc"  # np.number: ints, floats, complex (not bool)
        if request_kind in DATA_KINDS:
            kind = request_kind if numeric and request_kind in (TENSOR, TFTENSOR) else NDARRAY
        else:
            kind = TENSOR if numeric else NDARRAY
        names: list[Any] = []
        if arr.ndim >= 2:
            names = yield from self._class_names(arr)
        value = data if kind == NDARRAY and isinstance(data, list) else arr
        return Reply(kind, value, names, meta)

    def _class_names(self, arr: np.ndarray) -> Generator[Call, Any, list[Any]]:
        if self._class_names_method is not None:
            got = yield Call(self._class_names_method, (), fallthrough=True)
            if got is not NOT_IMPLEMENTED:
                return list(got)
        elif self.class_names is not None:
            return self.class_names
        return _default_names(arr.shape[1])

    def _raw(
        self, answer: Any, request: Any, codec: Codec, label: str, with_status: bool = False
    ) -> Outcome:
        metrics = codec.raw_metrics(answer)
        if metrics:
            # Metrics the client sent and the method handed back are echoed, not recorded
            # (as for normal methods): a client must not create series on the metrics port.
            sent = codec.raw_metrics(request)
            own = [m for m in metrics if m not in sent] if sent else metrics
            if own:
                self.recorder.record(validate_metrics(own), label)
            if not self.config.include_metrics:
                answer = codec.without_raw_metrics(answer)
        status = _raw_status(answer) if with_status and not codec.proto else 200
        return status, codec.encode_raw(answer)

    def _deprecated(
        self, method: UserMethod, request: Any, codec: Codec, with_status: bool
    ) -> Operation:
        """Deprecated *_rest/*_grpc methods: called with the wire request, answer sent as is."""
        answer = yield Call(method, (request,))
        status = _raw_status(answer) if with_status and not codec.proto else 200
        return status, codec.encode_raw(answer)

    def _deprecated_feedback(self, request: Any, codec: Codec) -> Operation:
        from google.protobuf import json_format

        if self.m.send_feedback_rest is not None:
            answer = yield Call(self.m.send_feedback_rest, (json_format.MessageToJson(request),))
        else:
            answer = yield Call(self.m.send_feedback_grpc, (request,))
        return 200, codec.encode_raw(answer if answer is not None else {})


def _merge_tags(tags: Any, update: Any, where: str) -> Any:
    if tags is None:
        return update if not isinstance(update, dict) else dict(update)
    if not isinstance(tags, dict) or not isinstance(update, dict):
        raise BadRequest(f"{where}: tags must be JSON objects to be merged")
    tags.update(update)
    return tags


def _raw_status(answer: Any) -> int:
    """Seldon: a raw predict answer's ``status.code`` becomes the HTTP status."""
    if isinstance(answer, dict):
        status = answer.get("status")
        if isinstance(status, dict):
            code = status.get("code")
            if isinstance(code, int) and not isinstance(code, bool) and 100 <= code <= 599:
                return code
    return 200


def _is_any(value: Any) -> bool:
    descriptor = getattr(value, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) == "google.protobuf.Any"


def _default_names(columns: int) -> list[str]:
    """Seldon's ``t:0 … t:n-1`` (kept for the usual widths; callers never modify it)."""
    return _cached_default_names(columns) if columns <= 1024 else [f"t:{i}" for i in range(columns)]


@functools.lru_cache(maxsize=64)
def _cached_default_names(columns: int) -> list[str]:
    return [f"t:{i}" for i in range(columns)]


def _plain_method(name: str, fn: Callable[..., Any]) -> UserMethod:
    return UserMethod(name, fn, False, inspect.iscoroutinefunction(fn))
