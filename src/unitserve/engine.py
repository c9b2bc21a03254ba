"""The Seldon component contract, independent of the wire.

Each operation (predict, transform_input, ..., health_status) is written as a
generator that reads top to bottom: it decides which user method to call,
*yields* the call, gets the result back, and returns ``(status, body)`` where
the body is whatever the codec produced. The drivers in `unitserve.calls` run
the generator: on a user thread calling methods directly, or on the event loop
awaiting ``async def`` methods. The operations are therefore written once for
both kinds of user code.

Seldon's rules implemented here: method precedence (deprecated ``*_rest`` /
``*_grpc``, then ``*_raw``, then the normal method), SeldonNotImplementedError
falling through, `SeldonResponse` unwrapping, the tag / metric / requestPath /
puid merge, metric validation, ``INCLUDE_METRICS_IN_CLIENT_RESPONSE`` and the
payload kind of the answer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from unitserve import tracing
from unitserve.component import MethodTable, UserMethod, class_names_of
from unitserve.errors import (
    BadRequest,
    NotDefined,
    WrongComponent,
)
from unitserve.message import (
    BIN,
    JSON,
    NDARRAY,
    STR,
    Codec,
    Message,
    Reply,
)
from unitserve.operations import (
    AGGREGATE,
    HEALTH_STATUS,
    INFER,
    OPERATIONS,
    PREDICT,
    ROUTE,
    SEND_FEEDBACK,
    TRANSFORM_INPUT,
    TRANSFORM_OUTPUT,
)
from unitserve.replies import answer_meta, default_names, reply_of
from unitserve.user_metrics import validate_metrics
from unitserve.user_model import SeldonResponse
from unitserve.wire_methods import WireMethods, plain_method, raw_status, wire_methods_of

if TYPE_CHECKING:
    from unitserve.settings import Settings

log = logging.getLogger("unitserve")

# What a driver sends back for a fall-through call whose user method raised
# SeldonNotImplementedError: the operation then goes on as if the method did not exist.
FELL_THROUGH: Any = object()


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__,
# about 3 µs per call of user code, and a request makes one to three of them.
@dataclass(slots=True)
class Call:
    """One call of user code, yielded by an operation to its driver (never changed
    once yielded)."""

    method: UserMethod
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None
    fallthrough: bool = False  # answer FELL_THROUGH instead of raising it
    # The decoded request of a data call (features, names, meta): what the batcher
    # (unitserve.batching) reads to stack the calls of several requests into one.
    msg: Message | None = None


Outcome = tuple[int, Any]
Steps = Generator[Call, Any, Outcome]  # one run of an operation, driven by unitserve.calls


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
    service_type: str = "MODEL"  # what the Open Inference Protocol's inference calls

    @classmethod
    def of(cls, settings: Settings) -> EngineConfig:
        """What the engine needs to know about the pod, from the resolved settings."""
        return cls(
            unit_id=settings.unit_id,
            # Unset, the engine keeps Seldon's placeholder image name.
            unit_image=settings.unit_image or cls.unit_image,
            include_metrics=settings.include_metrics,
            record_rewards=settings.record_rewards,
            service_type=settings.service_type,
        )

    @property
    def routing_key(self) -> str:
        return self.unit_id or "0"


# ----------------------------------------------------------------------------- engine


@dataclass
class Engine:
    """One user object and the operations of the Seldon contract around it.

    Every operation is a method ``op(request, codec)`` named as in
    `unitserve.operations` (``health_status`` ignores its request)."""

    user: Any
    config: EngineConfig = field(default_factory=EngineConfig)
    recorder: MetricsRecorder = field(default_factory=MetricsRecorder)

    def __post_init__(self) -> None:
        self.methods = MethodTable.of(self.user)
        if tracing.ACTIVE is not None:  # each user call in a span of its own
            self.methods = tracing.ACTIVE.traced_methods(self.methods)
        self.class_names = class_names_of(self.user)
        self._class_names_list = None if callable(self.class_names) else self.class_names
        self._class_names_method = (
            plain_method("class_names", self.class_names) if callable(self.class_names) else None
        )
        # What an answer needs to know of class_names: asked of a method, or a list.
        self._names_known = (self._class_names_method is not None, self._class_names_list)
        self._own_path = (
            {self.config.unit_id: self.config.unit_image} if self.config.unit_id else {}
        )
        m = self.methods
        self._wire = wire_methods_of(m)
        # A class without metrics(), tags() or class_names() methods: an answer then calls
        # no user code, and the usual operations build it without a generator of its own.
        self._answers_plainly = (
            m.metrics is None and m.tags is None and self._class_names_method is None
        )
        # Open Inference Protocol inference: the operation of the service type, decided once.
        self._infer_op = _INFER_BY_SERVICE.get(self.config.service_type)
        infer_wire = self._wire.get(self._infer_op.name) if self._infer_op else None
        # A raw answer's ``status.code`` is a Seldon message's: an inference answer has none.
        self._infer_wire = (
            dataclasses.replace(infer_wire, with_status=False) if infer_wire is not None else None
        )

    def wants_message(self, op: str) -> bool:
        """True if operation `op` may hand the request to a raw or deprecated method,
        which receive the protobuf message itself (not a decoded Message)."""
        return any(getattr(self.methods, name) is not None for name in OPERATIONS[op].wire_methods)

    def batchable(self, op: str) -> bool:
        """True if operation `op` hands one request's decoded features to one user method
        before anything else (no raw or deprecated method may take the request first):
        the batcher may then stack the features of several requests into that call."""
        if op == INFER.name:
            return self._infer_op is not None and self._infer_wire is None
        return op in (PREDICT.name, TRANSFORM_INPUT.name, TRANSFORM_OUTPUT.name) and (
            self._wire[op] is None
        )

    def is_async(self, *names: str) -> bool:
        """True if any of the named user methods (or tags/metrics/class_names, which
        every answer may call) is ``async def``: the operation then runs on the loop."""
        methods = [getattr(self.methods, n) for n in (*names, "tags", "metrics")]
        if self._class_names_method is not None and self._class_names_method.is_async:
            return True
        return any(m is not None and m.is_async for m in methods)

    # --------------------------------------------------------------- operations

    def predict(self, request: Any, codec: Codec) -> Steps:
        wire = self._wire[PREDICT.name]
        if wire is not None and (answered := (yield from self._on_wire(wire, request, codec))):
            return answered
        msg = codec.decode(request)
        m = self.methods
        result: Any = []
        if m.predict is not None:
            result = yield self._data_call(m.predict, msg)
            if result is FELL_THROUGH:
                result = []
        if self._answers_plainly:
            return self._respond_plainly(result, msg, codec, PREDICT.label)
        return (yield from self._respond(result, [msg], codec, PREDICT.label))

    # The transforms hand back `_transform`'s own steps rather than delegating to them
    # with ``yield from``: one generator per request instead of two.
    def transform_input(self, request: Any, codec: Codec) -> Steps:
        return self._transform(request, codec, TRANSFORM_INPUT.name, self.methods.transform_input)

    def transform_output(self, request: Any, codec: Codec) -> Steps:
        return self._transform(request, codec, TRANSFORM_OUTPUT.name, self.methods.transform_output)

    def _transform(self, request: Any, codec: Codec, op: str, method: UserMethod | None) -> Steps:
        wire = self._wire[op]
        if wire is not None and (answered := (yield from self._on_wire(wire, request, codec))):
            return answered
        msg = codec.decode(request)
        result: Any = FELL_THROUGH
        if method is not None:
            result = yield self._data_call(method, msg)
        if result is FELL_THROUGH:  # identity
            result = msg.features
        if self._answers_plainly:
            return self._respond_plainly(result, msg, codec, OPERATIONS[op].label)
        return (yield from self._respond(result, [msg], codec, OPERATIONS[op].label))

    def route(self, request: Any, codec: Codec) -> Steps:
        wire = self._wire[ROUTE.name]
        if wire is not None and (answered := (yield from self._on_wire(wire, request, codec))):
            return answered
        msg = codec.decode(request)
        m = self.methods
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
        return (yield from self._respond(response, [msg], codec, ROUTE.label, merge_request=False))

    def aggregate(self, request: Any, codec: Codec) -> Steps:
        wire = self._wire[AGGREGATE.name]
        if wire is not None and (answered := (yield from self._on_wire(wire, request, codec))):
            return answered
        msgs = codec.decode_list(request)
        m = self.methods
        if m.aggregate is None:
            raise NotDefined(
                "aggregate is not implemented"
                if hasattr(self.user, "aggregate")
                else "Aggregate not defined"
            )
        features = [x.features for x in msgs]
        names = [x.names for x in msgs]
        result = yield Call(m.aggregate, (features, names))
        return (yield from self._respond(result, msgs, codec, AGGREGATE.label))

    def send_feedback(self, request: Any, codec: Codec) -> Steps:
        """`request` is a protobuf Feedback on both transports (REST converts first)."""
        reward = float(getattr(request, "reward", 0.0))
        # A NaN or infinite reward (valid protobuf JSON: "NaN") would make the reward
        # sum NaN or infinite for the life of the worker: not recorded.
        if self.config.record_rewards and reward and math.isfinite(reward):
            self.recorder.record_feedback(reward)
        wire = self._wire[SEND_FEEDBACK.name]
        if wire is not None and (answered := (yield from self._on_wire(wire, request, codec))):
            return answered
        fb = codec.decode_feedback(request, self.config.routing_key)
        m = self.methods
        result: Any = None
        if m.send_feedback is not None:
            x = fb.request
            result = yield Call(
                m.send_feedback,
                (x.features, x.names, fb.reward, fb.truth),
                {"routing": fb.routing},
                fallthrough=True,
            )
            if result is FELL_THROUGH:
                result = None
        response = SeldonResponse.create(result)
        if response.data is None:
            response.data = np.array([])
        return (
            yield from self._respond(
                response, [fb.request], codec, SEND_FEEDBACK.label, merge_request=False
            )
        )

    def health_status(self, request: Any, codec: Codec) -> Steps:
        """`request` is unused: a probe has no body."""
        m = self.methods
        if m.health_status_raw is not None:
            answer = yield Call(m.health_status_raw, (), fallthrough=True)
            if answer is not FELL_THROUGH:
                return 200, codec.encode_raw(answer)
        # A SeldonComponent's inherited stub counts as "not implemented", as in Seldon.
        result: Any = (
            "not implemented - assuming healthy"
            if hasattr(self.user, "health_status")
            else "healthy"
        )
        if m.health_status is not None:
            result = yield Call(m.health_status, (), fallthrough=True)
            if result is FELL_THROUGH:
                result = "not implemented - assuming healthy"
        # Unlike Seldon, a probe does not call metrics(): probes must not bump counters.
        return (
            yield from self._respond(
                result,
                [Message(None, None)],
                codec,
                HEALTH_STATUS.label,
                merge_request=False,
                static_metrics=False,
            )
        )

    def infer(self, request: Any, codec: Codec) -> Steps:
        """The Open Inference Protocol's inference: the component's main method by its
        service type, with the same method precedence, meta merge, metrics and errors
        as the Seldon operation of that method. The answer is built from the user's
        result as it is (a tuple, a list of arrays of different shapes, a scalar, a
        str), for the codec to turn into outputs; only the class's own class_names
        ride along, never the default ``t:0`` ... names."""
        op = self._infer_op
        if op is None:
            raise WrongComponent(
                f"a {self.config.service_type} has no inference on the Open Inference "
                "Protocol: it answers the Seldon protocol only (serve the component as a "
                "MODEL, TRANSFORMER or OUTPUT_TRANSFORMER)"
            )
        wire = self._infer_wire
        if wire is not None:
            # The raw and deprecated methods get the request in the protocol's own form
            # (REST: the JSON object), which a codec may have to rebuild from the body.
            wire_form = getattr(codec, "wire_request", None)
            on_wire = wire_form(request) if wire_form is not None else request
            if answered := (yield from self._on_wire(wire, on_wire, codec)):
                return answered
        msg = codec.decode(request)
        method: UserMethod | None = getattr(self.methods, op.name)
        result: Any = FELL_THROUGH
        if method is not None:
            result = yield self._data_call(method, msg)
        if result is FELL_THROUGH:
            # As the Seldon operations: predict answers an empty list, a transformer
            # hands its input on.
            result = [] if op is PREDICT else msg.features
        return (yield from self._respond(result, [msg], codec, op.label, as_is=True))

    def _on_wire(
        self, wire: WireMethods, request: Any, codec: Codec
    ) -> Generator[Call, Any, Outcome | None]:
        """The methods that take the request as it came off the wire, in Seldon's order:
        a deprecated method answers as is; a ``*_raw`` one unless it raised
        SeldonNotImplementedError. None when neither answered: the operation goes on
        with the decoded request and the normal method."""
        deprecated = wire.proto if codec.proto else wire.json
        if deprecated is not None:
            answer = yield Call(deprecated, (request,))
            status = raw_status(answer) if wire.with_status and not codec.proto else 200
            return status, codec.encode_raw(answer)
        if wire.raw is not None:
            answer = yield Call(wire.raw, (request,), fallthrough=True)
            if answer is not FELL_THROUGH:
                return self._raw(answer, request, codec, wire.label, wire.with_status)
        return None

    # --------------------------------------------------------------- building answers

    def _data_call(self, method: UserMethod, msg: Message, fallthrough: bool = True) -> Call:
        kwargs = {"meta": msg.meta} if method.takes_meta else None
        return Call(method, (msg.features, msg.names), kwargs, fallthrough, msg)

    def _respond(
        self,
        result: Any,
        msgs: list[Message],
        codec: Codec,
        label: str,
        merge_request: bool = True,
        static_metrics: bool = True,
        as_is: bool = False,
    ) -> Steps:
        """Turn a user result into the codec's answer: metrics, tags, payload, names."""
        # A plain result (the usual case) is not wrapped in a SeldonResponse: it has
        # no runtime tags or metrics.
        if isinstance(result, SeldonResponse):
            data, runtime_tags, runtime_metrics = result.data, result.tags, result.metrics
        else:
            data, runtime_tags, runtime_metrics = result, None, None
        methods = self.methods
        metrics: list[dict[str, Any]] = []
        if static_metrics and methods.metrics is not None:
            static = yield Call(methods.metrics, (), fallthrough=True)
            if static is not FELL_THROUGH and static is not None:
                metrics = list(validate_metrics(static))
        if runtime_metrics:
            metrics.extend(validate_metrics(runtime_metrics))
        if metrics:
            self.recorder.record(metrics, label)
        static_tags: Any = None
        if methods.tags is not None:
            static_tags = yield Call(methods.tags, (), fallthrough=True)
            if static_tags is FELL_THROUGH:
                static_tags = None
        meta = answer_meta(
            self._own_path,
            msgs,
            merge_request,
            static_tags,
            runtime_tags,
            metrics if self.config.include_metrics else [],
        )
        if as_is:
            reply = yield from self._reply_as_is(data, meta)
        else:
            reply, columns = reply_of(data, msgs[0].kind, meta, codec.proto, *self._names_known)
            if columns is not None:  # the class's class_names() names the columns
                assert self._class_names_method is not None
                got = yield Call(self._class_names_method, (), fallthrough=True)
                reply.names = default_names(columns) if got is FELL_THROUGH else list(got)
        return 200, codec.encode(reply)

    def _respond_plainly(self, result: Any, msg: Message, codec: Codec, label: str) -> Outcome:
        """`_respond` for a class without metrics(), tags() or class_names() (see
        `_answers_plainly`), in the same order, with none of the user calls."""
        if isinstance(result, SeldonResponse):
            data, runtime_tags, runtime_metrics = result.data, result.tags, result.metrics
        else:
            data, runtime_tags, runtime_metrics = result, None, None
        metrics: list[dict[str, Any]] = []
        if runtime_metrics:
            metrics = list(validate_metrics(runtime_metrics))
            self.recorder.record(metrics, label)
        meta = answer_meta(
            self._own_path,
            [msg],
            True,
            None,
            runtime_tags,
            metrics if self.config.include_metrics else [],
        )
        reply, _ = reply_of(data, msg.kind, meta, codec.proto, *self._names_known)
        return 200, codec.encode(reply)

    def _reply_as_is(self, data: Any, meta: dict[str, Any]) -> Generator[Call, Any, Reply]:
        """The user's result for a codec that names outputs itself (Open Inference
        Protocol): nothing is refused or converted here. The kind says only which
        shape it has: a dict, a str, bytes, or anything else (arrays, lists, tuples,
        numbers) as NDARRAY. Names are the class's own class_names, asked for only
        when the result may be a table that they label."""
        if isinstance(data, dict):
            return Reply(JSON, data, None, meta)
        if isinstance(data, str):
            return Reply(STR, data, None, meta)
        if isinstance(data, bytes | bytearray):
            return Reply(BIN, bytes(data), None, meta)
        names: list[Any] | None = None
        table = (isinstance(data, np.ndarray) and data.ndim >= 2) or (
            isinstance(data, list) and bool(data) and isinstance(data[0], list)
        )
        if table:
            if self._class_names_method is not None:
                got = yield Call(self._class_names_method, (), fallthrough=True)
                if got is not FELL_THROUGH and got is not None:
                    names = list(got)
            elif self._class_names_list is not None:
                names = list(self._class_names_list)
        return Reply(NDARRAY, data, names, meta)

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
        status = raw_status(answer) if with_status and not codec.proto else 200
        return status, codec.encode_raw(answer)


_INFER_BY_SERVICE = {
    "MODEL": PREDICT,
    "TRANSFORMER": TRANSFORM_INPUT,
    "OUTPUT_TRANSFORMER": TRANSFORM_OUTPUT,
}
