"""Fast, strict JSON in and out (orjson), with the few rules Seldon's wire needs.

Out: compact, keys sorted, a trailing newline, non-ASCII escaped as ``\\uXXXX``
(byte-compatible with Flask's jsonify), numpy arrays serialised in C, and the
non-finite floats written as the proto3 JSON strings "NaN", "Infinity",
"-Infinity" so the body stays valid JSON.

In: orjson; if it refuses the text, a second look with the standard library
accepts the bare NaN/Infinity tokens that Python clients send, and still rejects
numbers too large for a double and nesting deeper than we allow.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import orjson

from ..errors import BadModelOutput, BadRequest

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}
MAX_DEPTH = 512


def _nonfinite_name(x: float) -> str:
    return "NaN" if x != x else _NONFINITE[x]


def finite_array(arr: np.ndarray) -> Any:
    """`arr` itself when every value is finite (the fast path), else an object copy
    with the non-finite floats replaced by their proto3 JSON names."""
    if arr.dtype.kind != "f" or arr.size == 0 or np.isfinite(arr).all():
        return arr
    out = arr.astype(object)
    out[np.isnan(arr)] = "NaN"
    out[np.isposinf(arr)] = "Infinity"
    out[np.isneginf(arr)] = "-Infinity"
    return out


def finite_tree(obj: Any) -> Any:
    """A copy of a JSON-like tree with non-finite floats replaced (only copies what
    it must). Used on user-built dicts and lists, never on the numpy fast path."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else _nonfinite_name(obj)
    if isinstance(obj, dict):
        return {k: finite_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_tree(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return finite_array(obj)
    if isinstance(obj, np.floating):
        return finite_tree(float(obj))
    return obj


def _default(obj: Any) -> Any:
    """orjson's fallback for what it does not serialise natively."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "c":
            raise TypeError("complex numbers have no JSON form")
        return finite_array(obj).tolist()
    if isinstance(obj, np.generic):
        value = obj.item()
        if isinstance(value, complex):
            raise TypeError("complex numbers have no JSON form")
        return finite_tree(value)
    if isinstance(obj, bytes | bytearray):
        return obj.decode("utf-8", errors="replace")
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _escape_non_ascii(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _std_default(obj: Any) -> Any:
    value = _default(obj)
    return finite_tree(value)


def dumps(obj: Any) -> bytes:
    """Serialise an answer body (see module doc). Raises BadModelOutput if the user's
    data cannot be written as JSON."""
    try:
        out = orjson.dumps(obj, default=_default, option=_DUMP_OPTIONS)
    except orjson.JSONEncodeError as exc:
        # Integers beyond 64 bits, mixed-type dict keys, ...: the slow, general path.
        try:
            text = json.dumps(
                finite_tree(obj),
                default=_std_default,
                sort_keys=True,
                separators=(",", ":"),
                allow_nan=False,
            )
        except (TypeError, ValueError) as exc2:
            raise BadModelOutput(f"the model's answer cannot be written as JSON: {exc2}") from exc
        return text.encode() + b"\n"
    if not out.isascii():
        out = _NON_ASCII.sub(_escape_non_ascii, out.decode()).encode()
    return out + b"\n"


def _parse_constant(name: str) -> float:
    return float(name)  # NaN, Infinity, -Infinity


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large for a double")
    return value


def loads(data: bytes | str) -> Any:
    """Parse a request body. Raises BadRequest with a short reason."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as first:
        try:
            value = json.loads(data, parse_constant=_parse_constant, parse_float=_parse_float)
        except RecursionError:
            raise BadRequest("JSON nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(str(exc) or str(first)) from None
        if _depth_exceeds(value, MAX_DEPTH):
            raise BadRequest("JSON nested too deeply") from None
        return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False
