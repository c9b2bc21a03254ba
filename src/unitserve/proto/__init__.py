"""unitserve's protobuf types: Seldon's ``seldon.protos`` wire format, in a private pool.

The generated modules are wire-compatible with Seldon Core 1.x's
``prediction.proto`` (same package, message, field and service names and
numbers), but their descriptors live in :data:`POOL`, not in protobuf's default
pool, so seldon-core or TensorFlow can be imported in the same process. Two
consequences for code that mixes them:

* A message from another pool (seldon-core's ``SeldonMessage``, the default
  pool's ``google.protobuf.Value``...) cannot be assigned to or merged into one
  of ours: convert it with :func:`as_local` first. For our well-known-type
  fields use :data:`Any`, :data:`Value`, :data:`ListValue`, :data:`Struct`,
  :data:`Empty` from here, or fill them in place (``msg.jsonData.string_value =
  ...``, ``json_format.ParseDict(obj, msg.jsonData)``).
* ``json_format`` resolves the type inside a ``google.protobuf.Any`` through the
  default pool unless told otherwise: pass ``descriptor_pool=POOL`` to
  ``MessageToDict``/``MessageToJson``/``Parse``/``ParseDict`` when an ``Any`` may
  hold one of our types. gRPC server reflection needs ``pool=POOL`` likewise.

The generated modules are produced by ``scripts/gen_proto.py`` (``make proto``).
"""

from __future__ import annotations

from typing import Final, TypeVar, overload

from google.protobuf import message_factory
from google.protobuf.message import Message

from unitserve.proto import inference_pb2 as inference_pb2
from unitserve.proto import prediction_pb2 as prediction_pb2
from unitserve.proto import prediction_pb2_grpc as prediction_pb2_grpc
from unitserve.proto._pool import POOL, Any, Empty, ListValue, Struct, Value
from unitserve.proto.tensorflow import resource_handle_pb2 as resource_handle_pb2
from unitserve.proto.tensorflow import tensor_pb2 as tensor_pb2
from unitserve.proto.tensorflow import tensor_shape_pb2 as tensor_shape_pb2
from unitserve.proto.tensorflow import types_pb2 as types_pb2

__all__ = [
    "INFERENCE_SERVICE_NAME",
    "POOL",
    "SERVICE_NAMES",
    "Any",
    "Empty",
    "ListValue",
    "Struct",
    "Value",
    "as_local",
    "inference_pb2",
    "is_local",
    "prediction_pb2",
    "prediction_pb2_grpc",
    "resource_handle_pb2",
    "tensor_pb2",
    "tensor_shape_pb2",
    "types_pb2",
]

#: Full names of the seven Seldon gRPC services one unitserve servicer implements
#: (in ``prediction.proto`` order), e.g. for server reflection.
SERVICE_NAMES: Final[tuple[str, ...]] = (
    "seldon.protos.Generic",
    "seldon.protos.Model",
    "seldon.protos.Router",
    "seldon.protos.Transformer",
    "seldon.protos.OutputTransformer",
    "seldon.protos.Combiner",
    "seldon.protos.Seldon",
)

#: The Open Inference Protocol's service (``inference.proto``), served beside Seldon's.
INFERENCE_SERVICE_NAME: Final[str] = "inference.GRPCInferenceService"

M = TypeVar("M", bound=Message)


def _in_pool(descriptor: object) -> bool:
    full_name = getattr(descriptor, "full_name", None)
    if not isinstance(full_name, str):
        return False
    try:
        return POOL.FindMessageTypeByName(full_name) is descriptor
    except KeyError:
        return False


def is_local(message: Message | type[Message]) -> bool:
    """Whether ``message`` (an instance or a class) is one of unitserve's own types."""
    return _in_pool(getattr(message, "DESCRIPTOR", None))


@overload
def as_local(message: Message) -> Message: ...
@overload
def as_local(message: Message, expected: type[M]) -> M: ...
def as_local(message: Message, expected: type[Message] | None = None) -> Message:
    """Return ``message`` as an instance of unitserve's class of the same full name.

    ``message`` may come from any descriptor pool: seldon-core's
    ``seldon.protos.SeldonMessage``, protobuf's default ``google.protobuf.Any``,
    a dynamically built class... It is converted through its wire bytes
    (``SerializeToString``/``FromString``), so fields unknown to us survive as
    unknown fields. A message that already is one of ours is returned unchanged
    (not copied).

    Args:
        message: the message to convert.
        expected: optionally, the unitserve class the result must be, e.g.
            ``prediction_pb2.SeldonMessage``; the full names must match.

    Raises:
        TypeError: ``message`` is not a protobuf message, its type is not one of
            unitserve's types (or not ``expected``'s), or ``expected`` is not a
            unitserve class.
    """
    if expected is not None and type(message) is expected and _in_pool(expected.DESCRIPTOR):
        return message  # the common case, kept cheap
    if not isinstance(message, Message):
        raise TypeError(f"expected a protobuf message, got {type(message).__name__}")
    full_name = message.DESCRIPTOR.full_name
    if expected is None:
        try:
            descriptor = POOL.FindMessageTypeByName(full_name)
        except KeyError:
            raise TypeError(f"{full_name} is not a unitserve protobuf type") from None
        target: type[Message] = message_factory.GetMessageClass(descriptor)
    else:
        target = expected
        if not is_local(target):
            raise TypeError(f"{target.__qualname__} is not a unitserve protobuf class")
        if target.DESCRIPTOR.full_name != full_name:
            raise TypeError(f"expected {target.DESCRIPTOR.full_name}, got {full_name}")
    if message.DESCRIPTOR is target.DESCRIPTOR:
        return message
    return target.FromString(message.SerializeToString())
