"""The binary tensor data extension: tensors as raw bytes after a JSON header.

A request body is a JSON header followed by the inputs' bytes, in input order;
the ``Inference-Header-Content-Length`` HTTP header gives the JSON's length and
each binary input says its own size in ``parameters.binary_data_size``. Answers
use the same layout for the outputs a client asks to receive as binary.

Fixed-size types are little-endian and row-major, BOOL one byte per element;
a BYTES element is its length as a 4-byte little-endian integer, then its bytes.
Inputs are read with `np.frombuffer` (a view of the body, no copy) and outputs
are handed back as views of the user's arrays, so a large tensor is never copied
here in either direction.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitserve.errors import BadModelOutput, BadRequest
from unitserve.protocol import shapes
from unitserve.protocol.jsonio import TooDeep
from unitserve.protocol.v2.datatypes import Datatype
from unitserve.protocol.v2.json_body import read_json

#: The HTTP header giving the length of the JSON part of a body (lower case, as
#: ASGI servers hand headers over).
HEADER_LENGTH = "inference-header-content-length"

_LENGTH = struct.Struct("<I")
_EMPTY = memoryview(b"")


@dataclass(slots=True)
class InferBody:
    """A request body once split: the parsed JSON header and the bytes after it."""

    header: Any
    binary: memoryview = field(default_factory=lambda: _EMPTY)


@dataclass(slots=True)
class BinaryAnswer:
    """An answer with binary outputs: send `header`, then each buffer in order, with
    ``Inference-Header-Content-Length: len(header)``."""

    header: bytes
    buffers: list[memoryview]

    @property
    def header_length(self) -> int:
        return len(self.header)

    def __len__(self) -> int:
        """The whole body's length, for Content-Length."""
        return len(self.header) + sum(b.nbytes for b in self.buffers)


def parse_header_length(value: bytes | str | None) -> int | None:
    """The value of Inference-Header-Content-Length, None when the header is absent."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise BadRequest(
            f"Inference-Header-Content-Length must be a number of bytes, got {text[:40]!r}"
        )
    return int(text)


def read_body(body: bytes | bytearray | memoryview, header_length: int | None) -> InferBody:
    """Split a body into its JSON header and binary part. Without a header length the
    whole body is JSON (tritonclient sends JSON with no Content-Type, so the content
    type decides nothing)."""
    if header_length is None:
        return InferBody(read_json(bytes(body)))
    view = memoryview(body).cast("B")
    if header_length > len(view):
        raise BadRequest(
            f"Inference-Header-Content-Length is {header_length} but the body has "
            f"only {len(view)} bytes"
        )
    try:
        # Only the header is copied: it is small, and the JSON reader needs bytes.
        header = read_json(bytes(view[:header_length]), "the header")
    except TooDeep:
        raise
    except BadRequest as exc:
        raise BadRequest(
            f"the first {header_length} bytes of the body (Inference-Header-Content-Length) "
            f"are not a JSON header: {exc.message}"
        ) from None
    return InferBody(header, view[header_length:])


class Reader:
    """Hands out the binary part of a body to the inputs that declare a size, in order."""

    def __init__(self, binary: memoryview) -> None:
        self.binary = binary
        self.offset = 0

    def take(self, size: int, where: str) -> memoryview:
        left = len(self.binary) - self.offset
        if size > left:
            hint = "" if len(self.binary) else " (no Inference-Header-Content-Length was sent?)"
            raise BadRequest(
                f"{where} declares {size} bytes of binary data but only {left} remain "
                f"in the body{hint}"
            )
        start = self.offset
        self.offset += size
        return self.binary[start : self.offset]

    def finish(self) -> None:
        """The inputs must use up the binary part exactly."""
        extra = len(self.binary) - self.offset
        if extra:
            raise BadRequest(
                f"the body has {extra} bytes of binary data that no input claims "
                "(the inputs' binary_data_size add up to less)"
            )


def fixed_array(
    buf: memoryview, datatype: Datatype, shape: Sequence[int], where: str
) -> np.ndarray:
    """A fixed-size input from its bytes: a read-only view of the body, no copy."""
    size = datatype.size
    assert size is not None
    if len(buf) % size:
        raise BadRequest(
            f"{where} has {len(buf)} bytes of binary data, not a whole number of "
            f"{datatype.name} elements ({size} bytes each)"
        )
    arr = np.frombuffer(buf, dtype=datatype.wire)
    if datatype.name == "BOOL" and arr.size and arr.view(np.uint8).max() > 1:
        # numpy would keep the byte as is and the "bool" would compare unequal to True.
        raise BadRequest(f"{where} has BOOL bytes other than 0 and 1")
    return shapes.reshape(arr, shape, where)


def bytes_elements(buf: memoryview, where: str) -> list[bytes]:
    """The elements of a BYTES tensor in its binary form, each length-prefixed."""
    out: list[bytes] = []
    pos, end = 0, len(buf)
    while pos < end:
        if end - pos < _LENGTH.size:
            raise BadRequest(
                f"{where}: element {len(out)} is cut off inside its 4-byte length prefix"
            )
        (length,) = _LENGTH.unpack_from(buf, pos)
        pos += _LENGTH.size
        if length > end - pos:
            raise BadRequest(
                f"{where}: element {len(out)} declares {length} bytes but only "
                f"{end - pos} remain in its binary data"
            )
        out.append(bytes(buf[pos : pos + length]))
        pos += length
    return out


def object_array(items: list[Any]) -> np.ndarray:
    """A 1-D object array holding `items` as they are (np.array would look into lists)."""
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


def element_bytes(item: Any, where: str) -> bytes:
    """One BYTES output element as bytes: str as UTF-8, bytes as they are."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, bytearray | memoryview):
        return bytes(item)
    if isinstance(item, str):
        try:
            return item.encode("utf-8")
        except UnicodeEncodeError:
            raise BadModelOutput(f"{where} is not valid Unicode text") from None
    raise BadModelOutput(f"{where} is a {type(item).__name__}; BYTES outputs hold str or bytes")


def pack_bytes(elements: Sequence[Any], where: str) -> bytes:
    """BYTES elements (str or bytes) in their binary form."""
    parts: list[bytes] = []
    for i, item in enumerate(elements):
        data = element_bytes(item, f"{where} element {i}")
        parts.append(_LENGTH.pack(len(data)))
        parts.append(data)
    return b"".join(parts)


def array_buffer(arr: np.ndarray, datatype: Datatype, where: str) -> memoryview:
    """An output's bytes on the wire: a view of the array itself when it is already
    contiguous and little-endian (the usual case), else one copy."""
    if datatype.is_bytes:
        return memoryview(pack_bytes(arr.reshape(-1).tolist(), where))
    wire = np.ascontiguousarray(arr, dtype=datatype.wire)
    return wire.reshape(-1).view(np.uint8).data
