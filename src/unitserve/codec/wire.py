"""Protobuf wire-format shortcuts for numeric arrays, so that large payloads move
through numpy in C instead of one Python object per number.

Only the shapes that matter for speed get a shortcut (packed doubles of a
`Tensor`, 1-D and 2-D all-number `ListValue`s); everything else is left to the
regular protobuf classes. Readers return None when the bytes are not in the
expected layout, and the caller falls back to the general path.
"""

from __future__ import annotations

import numpy as np

# Wire tags used below: (field number << 3) | wire type.
_LEN = 2
_TAG_LIST_VALUES = bytes([(1 << 3) | _LEN])  # ListValue.values = 1 (Value)
_TAG_NUMBER = bytes([(2 << 3) | 1])  # Value.number_value = 2 (double, fixed64)
_TAG_LIST = bytes([(6 << 3) | _LEN])  # Value.list_value = 6 (ListValue)
_NUMBER_VALUE = _TAG_LIST_VALUES + b"\x09" + _TAG_NUMBER  # one Value{number}: 3 bytes + 8


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


# ----------------------------------------------------------------------------- Tensor


def packed_doubles(values: np.ndarray) -> bytes:
    """The bytes of a packed ``repeated double`` field's payload."""
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def tensor_bytes(arr: np.ndarray) -> bytes:
    """A serialised ``seldon.protos.Tensor`` for `arr` (shape = 1, values = 2)."""
    shape = b"".join(varint(int(d)) for d in arr.shape)
    out = b""
    if shape:
        out += length_delimited(b"\x0a", shape)
    if arr.size:
        out += length_delimited(b"\x12", packed_doubles(arr.ravel()))
    return out


def tensor_values(serialised: bytes) -> tuple[list[int], np.ndarray] | None:
    """(shape, values) from a serialised Tensor written by a protobuf serializer (packed
    fields in field order). None if the layout is anything else."""
    pos, shape, values = 0, [], np.empty(0, dtype=np.float64)
    view = memoryview(serialised)
    try:
        while pos < len(view):
            tag, pos = read_varint(view, pos)
            size, pos = read_varint(view, pos)
            end = pos + size
            if end > len(view):
                return None
            if tag == 0x0A:  # shape, packed int32 varints (may be negative: 10 bytes)
                while pos < end:
                    dim, pos = read_varint(view, pos)
                    shape.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
            elif tag == 0x12 and size % 8 == 0:
                values = np.frombuffer(view[pos:end], dtype="<f8").astype(np.float64, copy=False)
                pos = end
            else:
                return None
    except ValueError:
        return None
    return shape, values


# ----------------------------------------------------------------------------- ListValue


def numbers_listvalue(arr: np.ndarray) -> bytes | None:
    """A serialised ``google.protobuf.ListValue`` for a 1-D or 2-D numeric array, or
    None for other arrays (the caller then builds it the general way)."""
    if arr.ndim == 1:
        return _number_values(arr)
    if arr.ndim == 2:
        rows, cols = arr.shape
        inner = _number_values(arr.reshape(rows * cols)) if rows and cols else b""
        row_len = cols * 11
        row_list = _TAG_LIST + varint(row_len)  # Value{list_value: ListValue{...}}
        row_value = _TAG_LIST_VALUES + varint(len(row_list) + row_len) + row_list
        if not cols:
            return row_value * rows
        header = np.frombuffer(row_value, dtype=np.uint8)
        body = np.frombuffer(inner, dtype=np.uint8).reshape(rows, row_len)
        out = np.empty((rows, len(header) + row_len), dtype=np.uint8)
        out[:, : len(header)] = header
        out[:, len(header) :] = body
        return out.tobytes()
    return None


def _number_values(flat: np.ndarray) -> bytes:
    items = np.empty(flat.shape[0], dtype=[("tag", "S3"), ("v", "<f8")])
    items["tag"] = _NUMBER_VALUE
    items["v"] = flat
    return items.tobytes()


def _numbers(buf: memoryview) -> np.ndarray | None:
    """A run of Value{number_value} entries → float64 array, or None."""
    if len(buf) % 11:
        return None
    items = np.frombuffer(buf, dtype=[("tag", "S3"), ("v", "<f8")])
    if not (items["tag"] == _NUMBER_VALUE).all():
        return None
    return items["v"].astype(np.float64)


def listvalue_numbers(serialised: bytes) -> np.ndarray | None:
    """A float64 array from a serialised ListValue holding only numbers, 1-D or
    rectangular 2-D; None otherwise."""
    view = memoryview(serialised)
    if not view:
        return None
    flat = _numbers(view)
    if flat is not None:
        return flat
    # 2-D: rows of Value{list_value: ListValue{numbers}}, every row the same size.
    try:
        tag, pos = read_varint(view, 0)
        value_len, pos = read_varint(view, pos)
        if tag != 0x0A:
            return None
        inner_tag, inner_pos = read_varint(view, pos)
        list_len, inner_pos = read_varint(view, inner_pos)
    except ValueError:
        return None
    if inner_tag != 0x32 or inner_pos + list_len != pos + value_len:
        return None
    row_size = pos + value_len
    header = bytes(view[:inner_pos])
    if len(view) % row_size or list_len % 11:
        return None
    rows, cols = len(view) // row_size, list_len // 11
    table = np.frombuffer(view, dtype=np.uint8).reshape(rows, row_size)
    if not (table[:, : len(header)] == np.frombuffer(header, dtype=np.uint8)).all():
        return None
    body = np.ascontiguousarray(table[:, len(header) :])
    numbers = _numbers(memoryview(body.reshape(-1)))
    if numbers is None:
        return None
    return numbers.reshape(rows, cols)
