"""The gRPC transport: the seven Seldon services, in the same worker process as
REST, calling the same invoker (and so the same user object).

The handlers are synchronous and run on the gRPC server's threads: a request is
parsed, answered by the engine and serialised in that thread, with no hand-off
to another thread (measured: twice the small-request rate of ``grpc.aio``
handlers that hand the work to the user threads). Errors map to proper status
codes with their message in ``details`` (Seldon answers UNKNOWN and loses the
text).

Which services are served follows the registry's default model: a component's seven,
or a deployment's ``seldon.protos.Seldon`` alone (the orchestrator's API, whose
``ModelMetadata`` names one of the deployment's members).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from google.protobuf import empty_pb2, json_format
from google.protobuf.message import DecodeError

from unitserve.calls import WIRE_GRPC
from unitserve.errors import NO_DEFAULT_MODEL, MalformedMessage, UnknownModel, describe, log_error
from unitserve.message import Codec
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import DEPLOYMENT_API, ServedModel
from unitserve.operations import GRPC_SERVICES, OPERATIONS
from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.seldon.proto_fast import BytesCodec
from unitserve.transport.accounting import PuidCodec, RequestAccounting

log = logging.getLogger("unitserve")

PACKAGE = "seldon.protos"
# The services of a deployment: the orchestrator's (its members' services are theirs).
DEPLOYMENT_SERVICES = ("Seldon",)

# service → {method: operation name}, from the operation table
SERVICES: dict[str, dict[str, str]] = {
    service: {
        method: op.name
        for op in OPERATIONS.values()
        for in_service, method in op.grpc
        if in_service == service
    }
    for service in GRPC_SERVICES
}

_REQUEST_TYPES: dict[str, Any] = {
    "aggregate": pb.SeldonMessageList,
    "send_feedback": pb.Feedback,
}


def _serialize(response: Any) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def _identity(data: bytes) -> bytes:
    return data


def _checked(
    message_type: Any, handler: Callable[[Any, grpc.ServicerContext], Any]
) -> Callable[[bytes, grpc.ServicerContext], Any]:
    """Parse the request here rather than in grpcio, which answers UNKNOWN to bytes it
    cannot parse in a deserializer; we answer as for every other RPC."""

    def handle(data: bytes, context: grpc.ServicerContext) -> Any:
        try:
            request = message_type.FromString(data)
        except DecodeError:
            context.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
        return handler(request, context)

    return handle


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~3x per request
class GrpcRequest:
    """An RPC's request bytes, with the codec that reads them and the protobuf message
    type to parse them into (None: SeldonMessage requests stay serialised, for the
    codec's fast reader)."""

    body: bytes
    codec: Codec
    message_type: Any
    puid: str | None = None  # a deployment's request id (seldon-puid), read and set by the model
    wire: ClassVar[str] = WIRE_GRPC  # which transport's forms a deployment answers in

    def read(self) -> Any:
        if self.message_type is None:
            return self.body
        try:
            return self.message_type.FromString(self.body)
        except DecodeError as exc:
            raise MalformedMessage(str(exc)) from None


class SeldonGrpc:
    """Handlers for every RPC of the seven services."""

    def __init__(self, registry: ModelRegistry, accounting: RequestAccounting) -> None:
        self.registry = registry  # the Seldon services answer with its default model
        self.accounting = accounting
        self.codec = BytesCodec()

    def services(self) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
        """{full service name: {method: handler}}: a component's seven services, or a
        deployment's seldon.protos.Seldon alone."""
        deployment = self._default().seldon_api == DEPLOYMENT_API
        return {
            f"{PACKAGE}.{service}": {
                name: self._handler(service, name, op, deployment) for name, op in methods.items()
            }
            for service, methods in SERVICES.items()
            if not deployment or service in DEPLOYMENT_SERVICES
        }

    def _handler(self, service: str, name: str, op: str, deployment: bool) -> grpc.RpcMethodHandler:
        if op in ("metadata", "graph_metadata"):
            request_type: Any
            answer: Callable[[Any, grpc.ServicerContext], Any]
            if name == "ModelMetadata":  # names a model: one of a deployment's members
                request_type, answer = pb.SeldonModelMetadataRequest, self._member_metadata
            elif op == "metadata":
                request_type, answer = empty_pb2.Empty, self._metadata
            else:  # the graph's metadata is a deployment's own
                request_type = empty_pb2.Empty
                answer = self._graph_metadata if deployment else self._no_graph_metadata
            return grpc.unary_unary_rpc_method_handler(
                _checked(request_type, answer),
                request_deserializer=_identity,  # parsed in the handler: see _checked
                response_serializer=_serialize,
            )
        message_type = None
        if op in _REQUEST_TYPES or self._default().wants_message(op):
            # aggregate, feedback and raw methods work on protobuf objects
            message_type = _REQUEST_TYPES.get(op, pb.SeldonMessage)
        where = f"/{PACKAGE}.{service}/{name}"
        return grpc.unary_unary_rpc_method_handler(
            self._operation(op, message_type, where),
            request_deserializer=_identity,
            response_serializer=_serialize,
        )

    def _operation(
        self, op: str, message_type: Any, where: str
    ) -> Callable[[bytes, grpc.ServicerContext], Any]:
        codec = self.codec
        carries_puid = self._default().carries_puid
        # Only the access line wants a request's puid: without it nothing looks for one.
        note_puid = self.accounting.access_log_enabled

        def handle(data: bytes, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            self.accounting.started("grpc")
            code = "OK"
            request: GrpcRequest | None = None
            try:
                request = GrpcRequest(data, codec, message_type)
                if carries_puid:
                    request.puid = dict(context.invocation_metadata() or ()).get("seldon-puid")
                elif note_puid:
                    request.codec = PuidCodec(codec, request)
                _, answer = self._default().call_blocking(op, request)
                if carries_puid and request.puid:
                    context.send_initial_metadata((("seldon-puid", str(request.puid)),))
                return answer
            except MalformedMessage as exc:
                # grpcio's own words for a request it cannot deserialise
                log.info("%s: request bytes do not parse: %s", where, exc)
                code = grpc.StatusCode.INTERNAL.name
                context.abort(grpc.StatusCode.INTERNAL, "Exception deserializing request!")
            except Exception as exc:
                code = describe(exc).grpc_code.name
                _abort(context, exc, where)
            finally:
                self.accounting.finished(
                    op, "grpc", code, time.perf_counter() - started, where, context.peer,
                    request.puid if note_puid and request is not None else None,
                )  # fmt: skip

        return handle

    def _default(self) -> ServedModel:
        model = self.registry.default
        if model is None:
            raise UnknownModel(NO_DEFAULT_MODEL)
        return model

    # The gRPC server starts once the default model is ready: no waiting here.

    def _metadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _model_metadata(self._default().metadata, context)

    def _member_metadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        """A component answers with its own metadata whatever the name; a deployment with
        its member's, or NOT_FOUND."""
        try:
            meta = self._default().member_metadata(request.name)
        except UnknownModel as exc:
            _abort(context, exc, f"/{PACKAGE}.Seldon/ModelMetadata")
            return None
        return _model_metadata(meta, context)

    def _graph_metadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        """A deployment's own metadata (its graph's), in the protobuf message's names."""
        meta = self._default().metadata
        if meta is None:
            context.abort(grpc.StatusCode.INTERNAL, "Model metadata unavailable")  # raises
            return None
        as_proto = {
            "name": meta["name"],
            "models": meta["models"],
            "inputs": meta["graphinputs"],
            "outputs": meta["graphoutputs"],
        }
        return json_format.ParseDict(as_proto, pb.SeldonGraphMetadata(), ignore_unknown_fields=True)

    def _no_graph_metadata(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "GraphMetadata not available on the Model level."
        )


def _model_metadata(meta: dict[str, Any] | None, context: grpc.ServicerContext) -> Any:
    if meta is None:
        context.abort(grpc.StatusCode.INTERNAL, "Model metadata unavailable")  # raises
        return None
    return json_format.ParseDict(meta, pb.SeldonModelMetadata(), ignore_unknown_fields=True)


def _abort(context: grpc.ServicerContext, exc: BaseException, where: str) -> None:
    log_error(exc, where)
    answer = describe(exc)
    context.abort(answer.grpc_code, answer.message or type(exc).__name__)
