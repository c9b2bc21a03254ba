"""Protobuf message classes for the two gRPC wire formats, built at run time.

Only the fields the benchmark needs are declared, with the field numbers of Seldon's
`prediction.proto` (package `seldon.protos`) and of the Open Inference Protocol's
`dataplane.proto` (package `inference`), so the bytes are wire-identical. Anything else a server
sends back (Seldon's `meta`, V2 `parameters`) is kept as unknown fields and ignored. The classes
live in a private descriptor pool: nothing here depends on unitserve, seldon-core or MLServer.
"""

import struct
from functools import cache
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2

F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED


def _field(
    name: str,
    number: int,
    kind: F.Type.ValueType,
    label: F.Label.ValueType = OPTIONAL,
    type_name: str = "",
) -> F:
    field = F(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = type_name
    return field


def _message(name: str, *fields: F) -> descriptor_pb2.DescriptorProto:
    return descriptor_pb2.DescriptorProto(name=name, field=list(fields))


def _seldon_file() -> descriptor_pb2.FileDescriptorProto:
    msg = ".seldon.protos."
    return descriptor_pb2.FileDescriptorProto(
        name="unitbench/seldon_prediction.proto",
        package="seldon.protos",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto"],
        message_type=[
            _message(
                "Status",
                _field("code", 1, F.TYPE_INT32),
                _field("info", 2, F.TYPE_STRING),
                _field("reason", 3, F.TYPE_STRING),
                _field("status", 4, F.TYPE_INT32),  # an enum on the wire is a varint
            ),
            _message("Meta", _field("puid", 1, F.TYPE_STRING)),
            _message(
                "Tensor",
                _field("shape", 1, F.TYPE_INT32, REPEATED),
                _field("values", 2, F.TYPE_DOUBLE, REPEATED),
            ),
            _message(
                "DefaultData",
                _field("names", 1, F.TYPE_STRING, REPEATED),
                _field("tensor", 2, F.TYPE_MESSAGE, type_name=msg + "Tensor"),
                _field("ndarray", 3, F.TYPE_MESSAGE, type_name=".google.protobuf.ListValue"),
            ),
            _message(
                "SeldonMessage",
                _field("status", 1, F.TYPE_MESSAGE, type_name=msg + "Status"),
                _field("meta", 2, F.TYPE_MESSAGE, type_name=msg + "Meta"),
                _field("data", 3, F.TYPE_MESSAGE, type_name=msg + "DefaultData"),
                _field("strData", 5, F.TYPE_STRING),
            ),
        ],
    )


def _v2_file() -> descriptor_pb2.FileDescriptorProto:
    msg = ".inference."

    def tensor(name: str) -> descriptor_pb2.DescriptorProto:
        return _message(
            name,
            _field("name", 1, F.TYPE_STRING),
            _field("datatype", 2, F.TYPE_STRING),
            _field("shape", 3, F.TYPE_INT64, REPEATED),
            _field("contents", 5, F.TYPE_MESSAGE, type_name=msg + "InferTensorContents"),
        )

    return descriptor_pb2.FileDescriptorProto(
        name="unitbench/v2_dataplane.proto",
        package="inference",
        syntax="proto3",
        message_type=[
            _message(
                "InferTensorContents",
                _field("fp32_contents", 6, F.TYPE_FLOAT, REPEATED),
                _field("fp64_contents", 7, F.TYPE_DOUBLE, REPEATED),
            ),
            tensor("InferInputTensor"),
            tensor("InferOutputTensor"),
            _message(
                "ModelInferRequest",
                _field("model_name", 1, F.TYPE_STRING),
                _field("model_version", 2, F.TYPE_STRING),
                _field("id", 3, F.TYPE_STRING),
                _field("inputs", 5, F.TYPE_MESSAGE, REPEATED, msg + "InferInputTensor"),
                _field("raw_input_contents", 7, F.TYPE_BYTES, REPEATED),
            ),
            _message(
                "ModelInferResponse",
                _field("model_name", 1, F.TYPE_STRING),
                _field("model_version", 2, F.TYPE_STRING),
                _field("id", 3, F.TYPE_STRING),
                _field("outputs", 5, F.TYPE_MESSAGE, REPEATED, msg + "InferOutputTensor"),
                _field("raw_output_contents", 6, F.TYPE_BYTES, REPEATED),
            ),
        ],
    )


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    struct_file = descriptor_pb2.FileDescriptorProto()
    struct_pb2.DESCRIPTOR.CopyToProto(struct_file)
    pool.Add(struct_file)
    pool.Add(_seldon_file())
    pool.Add(_v2_file())
    return pool


def message_class(full_name: str) -> Any:
    """The generated class of `seldon.protos.SeldonMessage`, `inference.ModelInferRequest`, ..."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def grpc_frame(message: bytes) -> bytes:
    """gRPC length-prefixed message: no compression flag, 4-byte big-endian length."""
    return struct.pack(">BI", 0, len(message)) + message


# ---------------------------------------------------------------- numpy <-> messages
def seldon_request(array: np.ndarray, form: str) -> bytes:
    """A serialised SeldonMessage carrying `array` as `ndarray` (ListValue) or `tensor`."""
    message = message_class("seldon.protos.SeldonMessage")()
    if form == "tensor":
        message.data.tensor.shape.extend(array.shape)
        message.data.tensor.values.extend(array.ravel().tolist())
    else:
        ndarray = message.data.ndarray
        for row in array.tolist():
            inner = ndarray.values.add().list_value
            for number in row:
                inner.values.add().number_value = number
    return message.SerializeToString()


def _list_value_to_array(list_value: Any) -> np.ndarray:
    def walk(lv: Any) -> list[Any]:
        out: list[Any] = []
        for v in lv.values:
            kind = v.WhichOneof("kind")
            out.append(walk(v.list_value) if kind == "list_value" else getattr(v, kind))
        return out

    return np.asarray(walk(list_value), dtype=float)


def seldon_reply_array(reply: bytes) -> np.ndarray:
    """The array in a SeldonMessage reply; raises ValueError for an error status or no data."""
    message = message_class("seldon.protos.SeldonMessage").FromString(reply)
    if message.data.HasField("tensor"):
        tensor = message.data.tensor
        return np.asarray(tensor.values, dtype=float).reshape(tuple(tensor.shape))
    if message.data.HasField("ndarray"):
        return _list_value_to_array(message.data.ndarray)
    raise ValueError(f"no tensor/ndarray in reply (status {message.status.info!r})")


def v2_request(array: np.ndarray, model: str) -> bytes:
    request = message_class("inference.ModelInferRequest")(model_name=model)
    tensor = request.inputs.add(name="input-0", datatype="FP64")
    tensor.shape.extend(array.shape)
    tensor.contents.fp64_contents.extend(array.ravel().tolist())
    return request.SerializeToString()


def v2_request_raw(array: np.ndarray, model: str) -> bytes:
    """An FP32 ModelInferRequest whose numbers travel in `raw_input_contents` (little-endian)."""
    request = message_class("inference.ModelInferRequest")(model_name=model)
    tensor = request.inputs.add(name="input-0", datatype="FP32")
    tensor.shape.extend(array.shape)
    request.raw_input_contents.append(array.astype("<f4").tobytes())
    return request.SerializeToString()


def v2_reply_array(reply: bytes) -> np.ndarray:
    response = message_class("inference.ModelInferResponse").FromString(reply)
    if not response.outputs:
        raise ValueError("no outputs in reply")
    output = response.outputs[0]
    shape = tuple(output.shape)
    fp32 = output.datatype == "FP32"
    if response.raw_output_contents:
        dtype = "<f4" if fp32 else "<f8"
        return np.frombuffer(response.raw_output_contents[0], dtype=dtype).reshape(shape)
    if fp32:
        return np.asarray(output.contents.fp32_contents, dtype=np.float32).reshape(shape)
    return np.asarray(output.contents.fp64_contents, dtype=float).reshape(shape)
