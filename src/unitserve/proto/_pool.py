"""The private descriptor pool that holds every unitserve protobuf type.

seldon-core and TensorFlow register ``seldon.protos.*`` and ``tensorflow.*`` in
protobuf's *default* pool. Registering our wire-compatible copies there too
would fail with "duplicate symbol" whenever one of them is imported beside
unitserve, so the generated modules (see ``scripts/gen_proto.py``) add their
files to :data:`POOL` instead.

A pool cannot refer to another pool's descriptors, so the well-known types our
files import (``any``, ``empty``, ``struct``) are added to :data:`POOL` first, from
the serialized descriptors protobuf ships. The message classes for them below
are therefore *not* the classes of ``google.protobuf.any_pb2`` and friends: use
these (or :func:`unitserve.proto.as_local`) when filling a field of one of our
messages. They keep protobuf's well-known-type helpers (``Any.Pack``/``Unpack``,
``Struct.update``, ``ListValue.extend``...), which protobuf attaches by full name.

The generated modules also build their message classes with
:func:`build_top_descriptors_and_messages` below rather than protobuf's
``builder.BuildTopDescriptorsAndMessages``: with the pure-Python backend the
latter registers every descriptor in the default symbol database, i.e. in the
default pool, which is exactly the clash this module exists to avoid.

The generated ``*_pb2_grpc`` modules import this module under the alias of
``empty_pb2``, so it must keep providing ``Empty`` and friends by those names.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import cast

from google.protobuf import any_pb2, descriptor_pool, empty_pb2, message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.internal import enum_type_wrapper

__all__ = [
    "POOL",
    "Any",
    "Empty",
    "ListValue",
    "Struct",
    "Value",
    "build_top_descriptors_and_messages",
]

#: The descriptor pool of all unitserve protobuf types (never protobuf's default pool).
POOL: descriptor_pool.DescriptorPool = descriptor_pool.DescriptorPool()

# None of the three files imports another, so their order does not matter.
for _module in (any_pb2, empty_pb2, struct_pb2):
    POOL.AddSerializedFile(_module.DESCRIPTOR.serialized_pb)
del _module


def _message_class(descriptor: Descriptor, module_name: str, prefix: str = "") -> type:
    """The class of ``descriptor``, named as if it were defined in ``module_name``.

    ``message_factory.GetMessageClass`` creates the class once per descriptor
    (later calls return the same class) and registers nothing anywhere. The
    names make ``repr`` and ``pickle`` work; nested types become attributes as
    in protoc's generated code.
    """
    cls = message_factory.GetMessageClass(descriptor)
    cls.__module__ = module_name
    cls.__qualname__ = prefix + descriptor.name
    for nested in descriptor.nested_types:
        nested_cls = _message_class(nested, module_name, f"{prefix}{descriptor.name}.")
        if getattr(cls, nested.name, None) is not nested_cls:
            setattr(cls, nested.name, nested_cls)
    return cls


def build_top_descriptors_and_messages(
    file: FileDescriptor, module_name: str, namespace: MutableMapping[str, object]
) -> None:
    """Define a generated module's top-level enums, services and message classes.

    The same names protobuf's ``builder.BuildTopDescriptorsAndMessages`` defines,
    without touching the default symbol database (see the module docstring).
    """
    if file.extensions_by_name:
        raise NotImplementedError(f"{file.name}: extensions are not supported in the private pool")
    for name, enum in file.enum_types_by_name.items():
        namespace["_" + name.upper()] = enum
        namespace[name] = enum_type_wrapper.EnumTypeWrapper(enum)
        for value in enum.values:
            namespace[value.name] = value.number
    for name, service in file.services_by_name.items():
        namespace["_" + name.upper()] = service
    for name, message in file.message_types_by_name.items():
        namespace[name] = _message_class(message, module_name)


def _well_known(full_name: str) -> type:
    return _message_class(POOL.FindMessageTypeByName(full_name), __name__)


# Typed as the default pool's classes: same fields and helpers, different descriptors.
Any = cast("type[any_pb2.Any]", _well_known("google.protobuf.Any"))
Empty = cast("type[empty_pb2.Empty]", _well_known("google.protobuf.Empty"))
Struct = cast("type[struct_pb2.Struct]", _well_known("google.protobuf.Struct"))
Value = cast("type[struct_pb2.Value]", _well_known("google.protobuf.Value"))
ListValue = cast("type[struct_pb2.ListValue]", _well_known("google.protobuf.ListValue"))
