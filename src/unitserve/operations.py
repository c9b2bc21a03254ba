"""The operations a component serves, in one table.

Each operation is listed once with every name it goes by: the engine method
that runs it, the user methods it may call, the ``method`` label of the user
metrics it records, its REST paths (with the HTTP methods each accepts) and
its gRPC service methods. The REST route table, the gRPC service table, the
OpenAPI document and the choice of where an operation runs are all derived
from this table, so an operation is added or renamed here and nowhere else.

Operations without an engine method (``ping``, ``live``, ``ready``,
``metadata``, ``graph_metadata``, ``openapi``) are answered by the transports
themselves and never call user code per request.
"""

from __future__ import annotations

from dataclasses import dataclass

GET = frozenset({"GET"})
POST = frozenset({"POST"})
GET_POST = frozenset({"GET", "POST"})

# The gRPC services of Seldon's prediction.proto, in their registration order.
GRPC_SERVICES = (
    "Generic",
    "Model",
    "Router",
    "Transformer",
    "OutputTransformer",
    "Combiner",
    "Seldon",
)


@dataclass(frozen=True, slots=True)
class Operation:
    name: str  # the name requests are counted under (``operation`` label of unitserve_*)
    # The user methods it may call: the normal one first, then those that receive the
    # request as it came off the wire (``*_raw`` and the deprecated ``*_rest``/``*_grpc``).
    method: str | None = None
    wire_methods: tuple[str, ...] = ()
    label: str = ""  # ``method`` label of user metrics, as Seldon names it ("": none)
    rest: tuple[tuple[str, frozenset[str]], ...] = ()  # (path, HTTP methods)
    grpc: tuple[tuple[str, str], ...] = ()  # (service, method)

    @property
    def in_engine(self) -> bool:
        """True if an `Engine` method of the same name runs it (and may call user code)."""
        return self.method is not None

    @property
    def user_methods(self) -> tuple[str, ...]:
        return self.wire_methods if self.method is None else (self.method, *self.wire_methods)


PREDICT = Operation(
    "predict",
    method="predict",
    wire_methods=("predict_raw", "predict_rest", "predict_grpc"),
    label="predict",
    rest=(
        ("/predict", GET_POST),
        ("/api/v1.0/predictions", POST),
        ("/api/v0.1/predictions", POST),
    ),
    grpc=(("Model", "Predict"), ("Seldon", "Predict")),
)
TRANSFORM_INPUT = Operation(
    "transform_input",
    method="transform_input",
    wire_methods=("transform_input_raw", "transform_input_rest", "transform_input_grpc"),
    label="inputtransform",
    rest=(("/transform-input", GET_POST),),
    grpc=(("Generic", "TransformInput"), ("Transformer", "TransformInput")),
)
TRANSFORM_OUTPUT = Operation(
    "transform_output",
    method="transform_output",
    wire_methods=("transform_output_raw", "transform_output_rest", "transform_output_grpc"),
    label="outputtransform",
    rest=(("/transform-output", GET_POST),),
    grpc=(("Generic", "TransformOutput"), ("OutputTransformer", "TransformOutput")),
)
ROUTE = Operation(
    "route",
    method="route",
    wire_methods=("route_raw", "route_rest", "route_grpc"),
    label="router",
    rest=(("/route", GET_POST),),
    grpc=(("Generic", "Route"), ("Router", "Route")),
)
AGGREGATE = Operation(
    "aggregate",
    method="aggregate",
    wire_methods=("aggregate_raw", "aggregate_rest", "aggregate_grpc"),
    label="aggregate",
    rest=(("/aggregate", GET_POST),),
    grpc=(("Generic", "Aggregate"), ("Combiner", "Aggregate")),
)
SEND_FEEDBACK = Operation(
    "send_feedback",
    method="send_feedback",
    wire_methods=("send_feedback_raw", "send_feedback_rest", "send_feedback_grpc"),
    label="feedback",
    rest=(
        ("/send-feedback", GET_POST),
        ("/api/v1.0/feedback", POST),
        ("/api/v0.1/feedback", POST),
    ),
    grpc=(
        ("Generic", "SendFeedback"),
        ("Model", "SendFeedback"),
        ("Router", "SendFeedback"),
        ("Seldon", "SendFeedback"),
    ),
)
HEALTH_STATUS = Operation(
    "health_status",
    method="health_status",
    wire_methods=("health_status_raw",),
    label="health",
    rest=(("/health/status", GET), ("/api/v1.0/health/status", GET)),
)
PING = Operation("ping", rest=(("/health/ping", GET),))
METADATA = Operation(
    "metadata",
    rest=(("/metadata", GET), ("/api/v1.0/metadata", GET)),
    grpc=(("Model", "Metadata"), ("Seldon", "ModelMetadata")),
)
GRAPH_METADATA = Operation("graph_metadata", grpc=(("Seldon", "GraphMetadata"),))
OPENAPI = Operation("openapi", rest=(("/seldon.json", GET),))
LIVE = Operation("live", rest=(("/live", GET),))
READY = Operation("ready", rest=(("/ready", GET),))

# ----------------------------------------------------------------------------- V2
# The Open Inference Protocol. Its REST paths carry the model's name (and version),
# so they are not exact paths: the REST transport matches them itself under /v2
# (transport/rest/v2.py), and the names below are what its requests are counted under.

#: Inference: the component's main method by service type (predict, transform_input or
#: transform_output; see `Engine.infer`). Every method it may call is listed, so that
#: the invoker runs it on the event loop if any of them is ``async def``. Its user
#: metrics keep the label of the method that ran (``predict``, ...): no label here.
INFER = Operation(
    "infer",
    method="predict",
    wire_methods=(
        "predict_raw",
        "predict_rest",
        "predict_grpc",
        "transform_input",
        "transform_input_raw",
        "transform_input_rest",
        "transform_input_grpc",
        "transform_output",
        "transform_output_raw",
        "transform_output_rest",
        "transform_output_grpc",
    ),
)
SERVER_LIVE = Operation("server_live")
SERVER_READY = Operation("server_ready")
SERVER_METADATA = Operation("server_metadata")
MODEL_READY = Operation("model_ready")
MODEL_METADATA = Operation("model_metadata")
REPOSITORY_INDEX = Operation("repository_index")
REPOSITORY_MODEL_LOAD = Operation("repository_model_load")
REPOSITORY_MODEL_UNLOAD = Operation("repository_model_unload")

#: The ``protocol`` label of every Open Inference Protocol request, REST or gRPC.
V2_PROTOCOL = "v2"

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        PREDICT,
        TRANSFORM_INPUT,
        TRANSFORM_OUTPUT,
        ROUTE,
        AGGREGATE,
        SEND_FEEDBACK,
        HEALTH_STATUS,
        PING,
        METADATA,
        GRAPH_METADATA,
        OPENAPI,
        LIVE,
        READY,
        INFER,
        SERVER_LIVE,
        SERVER_READY,
        SERVER_METADATA,
        MODEL_READY,
        MODEL_METADATA,
        REPOSITORY_INDEX,
        REPOSITORY_MODEL_LOAD,
        REPOSITORY_MODEL_UNLOAD,
    )
}

# The operations an `Engine` runs (each calls user code).
ENGINE_OPERATIONS: tuple[Operation, ...] = tuple(op for op in OPERATIONS.values() if op.in_engine)
