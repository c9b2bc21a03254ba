"""Protobuf wire-format shortcuts for numeric arrays, so that large payloads move
through numpy in C instead of one Python (or protobuf) object per number.

Only the shapes that matter for speed get a shortcut: the packed doubles of a
`Tensor` and all-number `ListValue`s (rectangular, any depth). Readers return
None when the bytes are not in the layout they expect, and the caller falls
back to the protobuf classes, so a shortcut never changes what a message means.
Small arrays take a plain-Python route: numpy's per-call overhead would cost
more than it saves.
"""

from __future__ import annotations

import struct

import numpy as np

from unitserve.protocol.protowire import LEN, field, fields, read_varint, varint

TAG_LIST_VALUES = 0x0A  # ListValue.values = 1 (Value, length-delimited)
TAG_NUMBER = 0x11  # Value.number_value = 2 (double: fixed64)
TAG_LIST = 0x32  # Value.list_value = 6 (ListValue, length-delimited)
_NUMBER_VALUE = bytes([TAG_LIST_VALUES, 9, TAG_NUMBER])  # one ListValue entry: 3 bytes + 8
_ITEM = np.dtype([("tag", "S3"), ("v", "<f8")])  # 11 bytes, unaligned
_SMALL = 64  # at most this many numbers: plain Python
_DOUBLE = struct.Struct("<d")


# ----------------------------------------------------------------------------- Tensor


def tensor_bytes(arr: np.ndarray) -> bytes:
    """A serialised ``seldon.protos.Tensor`` for `arr` (shape = 1, values = 2)."""
    out = b""
    if arr.ndim:
        out += field(1, b"".join(varint(int(d)) for d in arr.shape))
    if arr.size:
        out += field(2, np.ascontiguousarray(arr, dtype="<f8").tobytes())
    return out


def tensor_values(serialised: bytes | memoryview) -> tuple[list[int], np.ndarray] | None:
    """(shape, values) of a serialised Tensor with packed fields (what every proto3
    serializer writes); None for anything else."""
    shape: list[int] = []
    values = np.empty(0, dtype=np.float64)
    try:
        for number, kind, start, end in fields(serialised):
            if number == 1 and kind == LEN:
                pos = start
                while pos < end:  # int32 varints; negatives take ten bytes
                    dim, pos = read_varint(serialised, pos)
                    shape.append(dim - (1 << 64) if dim >= 1 << 63 else dim)
            elif number == 2 and kind == LEN and (end - start) % 8 == 0:
                values = np.frombuffer(serialised[start:end], dtype="<f8").astype(np.float64)
            else:
                return None
    except ValueError:
        return None
    return shape, values


# ----------------------------------------------------------------------------- ListValue


def numbers_listvalue(arr: np.ndarray) -> bytes:
    """A serialised ``google.protobuf.ListValue`` holding a numeric array of any
    rank ≥ 1, nested as JSON-style lists of numbers."""
    if arr.ndim == 1:
        return _number_values(arr)
    rows = [numbers_listvalue(row) for row in arr] if arr.shape[0] <= 1 or arr.ndim > 2 else None
    if rows is None:  # 2-D: every row has the same header: one numpy pass
        count = arr.shape[1]
        header = _row_header(count * 11)
        if count == 0 or arr.size <= _SMALL:
            return b"".join(header + _number_values(row) for row in arr)
        body = np.frombuffer(_number_values(arr.reshape(-1)), dtype=np.uint8)
        table = np.empty((arr.shape[0], len(header) + count * 11), dtype=np.uint8)
        table[:, : len(header)] = np.frombuffer(header, dtype=np.uint8)
        table[:, len(header) :] = body.reshape(arr.shape[0], count * 11)
        return table.tobytes()
    return b"".join(_row_header(len(row)) + row for row in rows)


def _row_header(list_length: int) -> bytes:
    """The bytes before a row: ListValue entry → Value{list_value: ListValue}."""
    inner = bytes([TAG_LIST]) + varint(list_length)
    return bytes([TAG_LIST_VALUES]) + varint(len(inner) + list_length) + inner


def _number_values(flat: np.ndarray) -> bytes:
    if flat.size <= _SMALL:
        return b"".join(_NUMBER_VALUE + _DOUBLE.pack(v) for v in flat.tolist())
    items = np.empty(flat.shape[0], dtype=_ITEM)
    items["tag"] = _NUMBER_VALUE
    items["v"] = flat
    return items.tobytes()


def listvalue_numbers(serialised: bytes | memoryview) -> np.ndarray | None:
    """A float64 array from a serialised ListValue that holds only numbers, nested
    as a rectangular array; None for anything else (strings, bools, nulls, ragged
    lists, unexpected encodings)."""
    view = memoryview(serialised)
    try:
        return _read_numbers(view, 0)
    except ValueError:
        return None


_MAX_DEPTH = 32  # deeper lists are left to protobuf (which refuses past 100 messages)


def _read_numbers(view: memoryview, depth: int) -> np.ndarray | None:
    if depth > _MAX_DEPTH:
        return None
    if len(view) % 11 == 0:
        flat = _flat_numbers(view)
        if flat is not None:
            return flat
    if len(view) > _SMALL * 11:
        matrix = _uniform_rows(view)
        if matrix is not None:
            return matrix
    # Nested: rows of Value{list_value: ListValue{...}}.
    rows: list[np.ndarray] = []
    for number, kind, start, end in fields(view):
        if number != 1 or kind != LEN:
            return None
        inner = list(fields(view[start:end]))
        if len(inner) != 1 or inner[0][:2] != (6, LEN):
            return None
        _, _, a, b = inner[0]
        row = _read_numbers(view[start + a : start + b], depth + 1) if b > a else np.empty(0)
        if row is None or (rows and row.shape != rows[0].shape):
            return None
        rows.append(row)
    if not rows:
        return None
    return np.stack(rows)


def _uniform_rows(view: memoryview) -> np.ndarray | None:
    """A 2-D array whose rows all have the same length, in one numpy pass: every row
    then starts with the same header bytes."""
    tag, pos = read_varint(view, 0)
    value_length, pos = read_varint(view, pos)
    if tag != TAG_LIST_VALUES:
        return None
    inner_tag, inner_pos = read_varint(view, pos)
    list_length, inner_pos = read_varint(view, inner_pos)
    row_size = pos + value_length
    if inner_tag != TAG_LIST or inner_pos + list_length != row_size:
        return None
    if len(view) % row_size or list_length % 11:
        return None
    rows, cols = len(view) // row_size, list_length // 11
    table = np.frombuffer(view, dtype=np.uint8).reshape(rows, row_size)
    header = np.frombuffer(view[:inner_pos], dtype=np.uint8)
    if not (table[:, :inner_pos] == header).all():
        return None
    items = np.ascontiguousarray(table[:, inner_pos:]).view(_ITEM).reshape(rows, cols)
    if not (items["tag"] == _NUMBER_VALUE).all():
        return None
    return items["v"].astype(np.float64)


def _flat_numbers(view: memoryview) -> np.ndarray | None:
    """A run of ListValue entries Value{number_value} → float64 array, or None."""
    count = len(view) // 11
    if count <= _SMALL:
        out = []
        for i in range(0, len(view), 11):
            if view[i : i + 3] != _NUMBER_VALUE:
                return None
            out.append(_DOUBLE.unpack_from(view, i + 3)[0])
        return np.array(out, dtype=np.float64)
    items = np.frombuffer(view, dtype=_ITEM)
    if not (items["tag"] == _NUMBER_VALUE).all():
        return None
    return items["v"].astype(np.float64)
