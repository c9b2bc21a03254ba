"""Open Inference Protocol datatypes ⇄ numpy dtypes.

One table says, for every datatype name the protocol defines: the numpy dtype
an input of that type becomes, its size in bytes on the wire (binary data and
gRPC raw contents are little-endian and row-major), and which typed-contents
field of the gRPC ``InferTensorContents`` message carries it. BYTES is variable
length: each element is a 4-byte little-endian length followed by its bytes,
and it becomes a numpy object array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unitserve.errors import BadModelOutput, BadRequest


@dataclass(frozen=True, slots=True)
class Datatype:
    name: str
    #: The dtype the user's array has (native byte order; object for BYTES).
    dtype: np.dtype
    #: The same dtype in the wire's byte order, for `np.frombuffer` and `tobytes`.
    wire: np.dtype
    #: Bytes per element on the wire, None for BYTES (each element has its own length).
    size: int | None
    #: The `InferTensorContents` field holding this type, None if it travels as raw bytes only.
    contents: str | None

    @property
    def is_bytes(self) -> bool:
        return self.size is None


def _fixed(name: str, dtype: str, contents: str | None) -> Datatype:
    native = np.dtype(dtype)
    return Datatype(name, native, native.newbyteorder("<"), native.itemsize, contents)


BOOL = _fixed("BOOL", "bool", "bool_contents")
UINT8 = _fixed("UINT8", "uint8", "uint_contents")
UINT16 = _fixed("UINT16", "uint16", "uint_contents")
UINT32 = _fixed("UINT32", "uint32", "uint_contents")
UINT64 = _fixed("UINT64", "uint64", "uint64_contents")
INT8 = _fixed("INT8", "int8", "int_contents")
INT16 = _fixed("INT16", "int16", "int_contents")
INT32 = _fixed("INT32", "int32", "int_contents")
INT64 = _fixed("INT64", "int64", "int64_contents")
# The protocol has no typed field for half floats: they travel only as raw bytes.
FP16 = _fixed("FP16", "float16", None)
FP32 = _fixed("FP32", "float32", "fp32_contents")
FP64 = _fixed("FP64", "float64", "fp64_contents")
BYTES = Datatype("BYTES", np.dtype(object), np.dtype(object), None, "bytes_contents")

_ALL = (BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES)
BY_NAME: dict[str, Datatype] = {t.name: t for t in _ALL}

# numpy dtype (native order, as `dtype.newbyteorder("=")` gives) → datatype, for answers.
_BY_DTYPE: dict[np.dtype, Datatype] = {t.dtype: t for t in BY_NAME.values() if not t.is_bytes}


def by_name(name: object, where: str) -> Datatype:
    """The datatype a request names. BadRequest, saying why, for anything else."""
    if isinstance(name, str):
        found = BY_NAME.get(name)
        if found is not None:
            return found
        if name == "BF16":
            # numpy has no bfloat16: taking it as raw bytes would hand the user an
            # array they cannot compute with.
            raise BadRequest(
                f"{where} has datatype BF16, which this server does not support "
                "(numpy has no bfloat16 type): send FP32 or FP16 instead"
            )
    shown = repr(name)[:60]
    raise BadRequest(f"{where} has datatype {shown}; expected one of {', '.join(BY_NAME)}")


def value_range(datatype: Datatype) -> tuple[int | float, int | float]:
    """The lowest and highest value a numeric datatype holds (floats: the finite ones)."""
    if datatype.dtype.kind == "f":
        finfo = np.finfo(datatype.dtype)
        return float(finfo.min), float(finfo.max)
    info = np.iinfo(datatype.dtype)
    return int(info.min), int(info.max)


def out_of_range(value: object, datatype: Datatype, where: str) -> BadRequest:
    """The one sentence for a value its datatype cannot hold, whatever the wire: an
    integer that would wrap around, a number beyond a float type's largest."""
    low, high = value_range(datatype)
    return BadRequest(
        f"{where} value {value} is out of range for datatype {datatype.name} ({low} to {high})"
    )


def of_array(arr: np.ndarray, where: str) -> Datatype:
    """The datatype an answer array is sent as. Strings, bytes and Python objects
    are BYTES; dtypes the protocol cannot carry (complex, dates, ...) are the
    model's mistake."""
    kind = arr.dtype.kind
    if kind in "OUS":
        return BYTES
    # Native dtypes (nearly every answer) are found as they are; others in native order.
    found = _BY_DTYPE.get(arr.dtype) or _BY_DTYPE.get(arr.dtype.newbyteorder("="))
    if found is None:
        raise BadModelOutput(
            f"{where} has numpy dtype {arr.dtype}, which the Open Inference Protocol "
            "cannot carry (use bool, an integer, float16/32/64, str or bytes)"
        )
    return found
