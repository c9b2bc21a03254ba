"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``, on the
same server, port and threads as the Seldon services, calling the same invoker.

Every RPC parses its own request bytes (grpcio would answer UNKNOWN to bytes it
cannot parse), so that each failure is a proper status with a sentence in
``details``: INVALID_ARGUMENT for a bad request, NOT_FOUND for another model or
version, UNAVAILABLE while the model is not ready or unloaded, FAILED_PRECONDITION
for a component type inference has no meaning for, and the user's own status for
an exception it raises.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from google.protobuf.message import DecodeError

from unitserve.errors import MalformedMessage, ServingError, describe, log_error
from unitserve.message import Codec
from unitserve.models.dataplane import DataPlane
from unitserve.operations import INFER, V2_PROTOCOL
from unitserve.proto import INFERENCE_SERVICE_NAME
from unitserve.proto import inference_pb2 as pb
from unitserve.protocol.v2.proto_codec import fill_parameters
from unitserve.protocol.v2.proto_fast import V2BytesCodec, read_request
from unitserve.transport.accounting import RequestAccounting

log = logging.getLogger("unitserve")

SERVICE = INFERENCE_SERVICE_NAME

# The request metric labels of ModelInfer.
OPERATION_LABEL = "infer"
PROTOCOL_LABEL = V2_PROTOCOL  # counted apart from the Seldon protocol's RPCs


def _identity(data: bytes) -> bytes:
    return data


def _serialize(response: Any) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


@dataclass(slots=True)
class _InferRequest:
    """A parsed ModelInferRequest with the codec of this one call (it remembers the
    request's id and raw-ness for the answer)."""

    message: Any
    codec: Codec

    def read(self) -> Any:
        return self.message


def _puid(request: Any, answer: Any) -> str | None:
    """An inference call's puid for its access line: its id, the answer's (made up
    when the request had none) or else the request's (no answer: it failed)."""
    if isinstance(answer, bytes):
        answer = _parsed_answer(answer)
    found = getattr(answer, "id", None) or getattr(request, "id", None)
    return str(found) if found else None


def _parsed_answer(answer: bytes) -> Any:
    """ModelInfer answers are serialised bytes already (see V2BytesCodec): read back
    for the access log alone. A raw method's own bytes may not parse: no id then."""
    try:
        return pb.ModelInferResponse.FromString(answer)
    except DecodeError:
        return None


class InferenceGrpc:
    """Handlers for the RPCs of ``inference.GRPCInferenceService``."""

    def __init__(
        self,
        plane: DataPlane,
        accounting: RequestAccounting,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.plane = plane
        self.accounting = accounting
        self.loop = loop  # the worker's: where the repository operations run

    #: Each RPC: its request type and the method answering it.
    RPCS: ClassVar[dict[str, tuple[Any, str]]] = {
        "ServerLive": (pb.ServerLiveRequest, "server_live"),
        "ServerReady": (pb.ServerReadyRequest, "server_ready"),
        "ModelReady": (pb.ModelReadyRequest, "model_ready"),
        "ServerMetadata": (pb.ServerMetadataRequest, "server_metadata"),
        "ModelMetadata": (pb.ModelMetadataRequest, "model_metadata"),
        "ModelInfer": (pb.ModelInferRequest, "model_infer"),
        "RepositoryIndex": (pb.RepositoryIndexRequest, "repository_index"),
        "RepositoryModelLoad": (pb.RepositoryModelLoadRequest, "repository_load"),
        "RepositoryModelUnload": (pb.RepositoryModelUnloadRequest, "repository_unload"),
    }

    def services(self) -> dict[str, dict[str, grpc.RpcMethodHandler]]:
        """{full service name: {method: handler}}."""
        return {
            SERVICE: {
                name: grpc.unary_unary_rpc_method_handler(
                    self._handler(name, message_type, getattr(self, answer)),
                    request_deserializer=_identity,  # parsed in the handler
                    response_serializer=_serialize,
                )
                for name, (message_type, answer) in self.RPCS.items()
            }
        }

    def _handler(
        self, name: str, message_type: Any, answer: Callable[[Any], Any]
    ) -> Callable[[bytes, grpc.ServicerContext], Any]:
        where = f"/{SERVICE}/{name}"
        counted = name == "ModelInfer"
        # ModelInfer's common requests are read without protobuf objects, unless a raw or
        # deprecated user method may take the request, which must then be the message.
        fast = counted and not any(m.wants_message(INFER.name) for m in self.plane.registry.all())

        def handle(data: bytes, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            if counted:
                self.accounting.started(PROTOCOL_LABEL)
            code = "OK"
            failure: BaseException | None = None
            request = result = None
            try:
                request = read_request(data) if fast else None
                if request is None:
                    try:
                        request = message_type.FromString(data)
                    except DecodeError as exc:
                        raise MalformedMessage(
                            f"the request is not a valid {message_type.DESCRIPTOR.full_name}: {exc}"
                        ) from None
                result = answer(request)
                return result
            except Exception as exc:
                failure = exc
                code = describe(exc).grpc_code.name
            finally:
                if counted:
                    self.accounting.finished(
                        OPERATION_LABEL,
                        PROTOCOL_LABEL,
                        code,
                        time.perf_counter() - started,
                        where,
                        context.peer,
                        _puid(request, result) if self.accounting.access_log_enabled else None,
                        request.model_name if request is not None else "",
                    )
            # Outside the try: abort raises, and that must reach grpcio untouched.
            assert failure is not None
            described = describe(failure)
            log_error(failure, where, said_as=described.grpc_code.name)
            context.abort(described.grpc_code, described.message or type(failure).__name__)

        return handle

    # ------------------------------------------------------------------ health

    def server_live(self, request: Any) -> Any:
        return pb.ServerLiveResponse(live=self.plane.server_live())

    def server_ready(self, request: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.plane.server_ready())

    def model_ready(self, request: Any) -> Any:
        return pb.ModelReadyResponse(ready=self.plane.model_ready(request.name, request.version))

    # ------------------------------------------------------------------ metadata

    def server_metadata(self, request: Any) -> Any:
        return pb.ServerMetadataResponse(**self.plane.server_metadata)

    def model_metadata(self, request: Any) -> Any:
        found = self.plane.model_metadata(request.name, request.version)
        answer = pb.ModelMetadataResponse()
        answer.name = found["name"]
        answer.versions.extend(found.get("versions", []))
        answer.platform = found["platform"]
        for key in ("inputs", "outputs"):
            for tensor in found[key]:
                fields = {k: v for k, v in tensor.items() if k != "parameters"}
                try:
                    added = getattr(answer, key).add(**fields)
                except (TypeError, ValueError) as exc:
                    raise ServingError(f"model metadata {key} entry {tensor!r}: {exc}") from None
                fill_parameters(added.parameters, tensor.get("parameters") or {})
        fill_parameters(answer.parameters, found.get("parameters") or {})
        return answer

    # ------------------------------------------------------------------ inference

    def model_infer(self, request: Any) -> Any:
        """`request` is a ModelInferRequest or, for the common form, a FastRequest."""
        model = self.plane.inference_model(request.model_name, request.model_version)
        # The answer is serialised bytes (see V2BytesCodec); a raw method's own answer
        # may still be a message, which the response serializer turns into bytes.
        codec = V2BytesCodec(model.name, model.version)
        _, answer = model.call_blocking(INFER.name, _InferRequest(request, codec))
        return answer

    # ------------------------------------------------------------------ repository

    def repository_index(self, request: Any) -> Any:
        # On the event loop, which owns the registry (the look at the folder is made
        # off it, on a thread).
        index = self.plane.repository_index(request.ready)
        answer = pb.RepositoryIndexResponse()
        for entry in asyncio.run_coroutine_threadsafe(index, self.loop).result():
            answer.models.add(**entry)
        return answer

    def repository_load(self, request: Any) -> Any:
        load = self.plane.load(request.model_name, dict(request.parameters))
        asyncio.run_coroutine_threadsafe(load, self.loop).result()
        return pb.RepositoryModelLoadResponse()

    def repository_unload(self, request: Any) -> Any:
        unload = self.plane.unload(request.model_name)
        asyncio.run_coroutine_threadsafe(unload, self.loop).result()
        return pb.RepositoryModelUnloadResponse()
