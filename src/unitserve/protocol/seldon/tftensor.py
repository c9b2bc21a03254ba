"""TensorFlow's ``TensorProto`` ⇄ numpy, without TensorFlow.

Decoding follows TensorFlow's rules: ``tensor_content`` (raw little-endian bytes)
when present, else the typed ``*_val`` field, where a single value fills the
whole tensor and no value means zeros. Encoding writes ``tensor_content`` for
numbers and bools and ``string_val`` for strings, as ``make_tensor_proto`` does.
The REST (JSON) form is the proto3 JSON mapping of the same message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unitserve.errors import BadModelOutput, BadRequest
from unitserve.proto import types_pb2
from unitserve.protocol import shapes
from unitserve.protocol.seldon.json_types import check_json_types

# DataType id → (numpy dtype, typed value field)
_TYPES: dict[int, tuple[Any, str]] = {
    1: (np.float32, "float_val"),  # DT_FLOAT
    2: (np.float64, "double_val"),  # DT_DOUBLE
    3: (np.int32, "int_val"),  # DT_INT32
    4: (np.uint8, "int_val"),  # DT_UINT8
    5: (np.int16, "int_val"),  # DT_INT16
    6: (np.int8, "int_val"),  # DT_INT8
    7: (object, "string_val"),  # DT_STRING
    8: (np.complex64, "scomplex_val"),  # DT_COMPLEX64
    9: (np.int64, "int64_val"),  # DT_INT64
    10: (np.bool_, "bool_val"),  # DT_BOOL
    17: (np.uint16, "int_val"),  # DT_UINT16
    18: (np.complex128, "dcomplex_val"),  # DT_COMPLEX128
    19: (np.float16, "half_val"),  # DT_HALF
    22: (np.uint32, "uint32_val"),  # DT_UINT32
    23: (np.uint64, "uint64_val"),  # DT_UINT64
}
_BY_DTYPE = {np.dtype(dt): code for code, (dt, _) in _TYPES.items() if dt is not object}
DT_STRING = 7


def type_names() -> list[str]:
    """The DataType names decoded and encoded here, in id order (the API document's enum)."""
    return [types_pb2.DataType.Name(code) for code in _TYPES]


def _shape(proto: Any) -> list[int]:
    if proto.tensor_shape.unknown_rank:
        raise BadRequest("tftensor with unknown rank cannot be decoded")
    shape = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in shape):
        raise BadRequest(f"tftensor shape {shapes.shown(shape)} has unknown (negative) dimensions")
    return shape


def to_array(proto: Any) -> np.ndarray:
    """A TensorProto message → numpy array. BadRequest for what cannot be decoded."""
    entry = _TYPES.get(proto.dtype)
    if entry is None:
        raise BadRequest(f"tftensor dtype {proto.dtype} is not supported")
    dtype, field = entry
    shape = _shape(proto)
    if proto.tensor_content and dtype is not object:
        dt = np.dtype(dtype).newbyteorder("<")
        content = proto.tensor_content
        count = shapes.element_count(shape, len(content) // dt.itemsize, "tftensor")
        if len(content) != count * dt.itemsize:
            raise BadRequest(
                f"tftensor_content has {len(content)} bytes, shape "
                f"{shapes.shown(shape)} of {np.dtype(dtype).name} needs {count * dt.itemsize}"
            )
        return shapes.reshape(np.frombuffer(content, dtype=dt).astype(dtype), shape, "tftensor")
    values = getattr(proto, field)
    if dtype is object:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
    elif dtype is np.float16:
        flat = np.array(values, dtype=np.uint16).view(np.float16)
    elif dtype in (np.complex64, np.complex128):
        pairs = np.array(values, dtype=np.float64)
        if pairs.size % 2:
            raise BadRequest("tftensor complex values come in (real, imaginary) pairs")
        flat = (pairs[0::2] + 1j * pairs[1::2]).astype(dtype)
    else:
        flat = np.array(values, dtype=dtype)
    count = shapes.element_count(shape, flat.size, "tftensor")
    if flat.size <= 1 and count != flat.size:
        # TensorFlow's rule: one value fills the whole shape, no value means zeros
        # (`element_count` has bounded how many elements a shape may imply).
        return shapes.filled(shape, flat[0] if flat.size else 0, flat.dtype, "tftensor")
    return shapes.reshape(flat, shape, "tftensor")


def from_array(arr: np.ndarray, proto: Any) -> None:
    """Fill the (empty) TensorProto `proto` from `arr`."""
    for dim in arr.shape:
        proto.tensor_shape.dim.add().size = int(dim)
    if arr.dtype.kind in "USO":
        proto.dtype = DT_STRING
        proto.string_val.extend(
            v if isinstance(v, bytes) else str(v).encode("utf-8") for v in arr.ravel().tolist()
        )
        return
    code = _BY_DTYPE.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise BadModelOutput(f"arrays of {arr.dtype} have no TensorFlow dtype")
    proto.dtype = code
    proto.tensor_content = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


# ----------------------------------------------------------------------------- JSON form


def from_json(value: Any) -> np.ndarray:
    from google.protobuf import json_format

    from unitserve.proto import tensor_pb2

    if not isinstance(value, dict):
        raise BadRequest("data.tftensor must be a TensorProto JSON object")
    check_json_types(value, tensor_pb2.TensorProto.DESCRIPTOR, "data.tftensor")
    proto = tensor_pb2.TensorProto()
    try:
        json_format.ParseDict(value, proto)
    except json_format.ParseError as exc:
        raise BadRequest(f"data.tftensor is not a valid TensorProto: {exc}") from None
    return to_array(proto)


def to_json(arr: np.ndarray) -> dict[str, Any]:
    from google.protobuf import json_format

    from unitserve.proto import tensor_pb2

    proto = tensor_pb2.TensorProto()
    from_array(arr, proto)
    return json_format.MessageToDict(proto)
