"""The protobuf wire format's primitives (varints and length-delimited fields), for the
readers and writers that handle messages as bytes instead of protobuf objects (the Seldon
protocol's and the Open Inference Protocol's gRPC fast paths)."""

from __future__ import annotations

from collections.abc import Iterator

LEN = 2  # the wire type of a length-delimited field


def _encode_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


_VARINTS = [_encode_varint(n) for n in range(1 << 14)]  # every one- and two-byte varint


def varint(n: int) -> bytes:
    return _VARINTS[n] if n < 16384 else _encode_varint(n)


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


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return varint(number << 3 | LEN) + varint(len(payload)) + payload


def fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field of a serialised message;
    for varints and fixed-size fields start..end spans the value. Raises ValueError
    on malformed bytes (including groups, which proto3 never writes)."""
    pos, size = 0, len(buf)
    while pos < size:
        key, pos = read_varint(buf, pos)
        number, kind = key >> 3, key & 7
        start = pos
        if kind == 0:
            _, pos = read_varint(buf, pos)
        elif kind == 1:
            pos += 8
        elif kind == LEN:
            length, start = read_varint(buf, pos)
            pos = start + length
        elif kind == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {kind}")
        if number == 0 or pos > size:
            raise ValueError("truncated or invalid field")
        yield number, kind, start, pos
