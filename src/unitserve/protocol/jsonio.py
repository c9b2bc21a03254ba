"""Fast, strict JSON in and out (orjson), with the few rules Seldon's wire needs.

Out: compact, keys sorted, a trailing newline, non-ASCII escaped as ``\\uXXXX``
(byte-compatible with Flask's jsonify), numpy arrays serialised in C, and the
non-finite floats written as the proto3 JSON strings "NaN", "Infinity",
"-Infinity" so the body stays valid JSON.

In: orjson; if it refuses the text, a second look with the standard library
accepts the bare NaN/Infinity tokens that Python clients send. Both paths reject
numbers too large for a double and nesting deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np
import orjson

from unitserve.errors import BadModelOutput, BadRequest

_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}

# Deeper JSON is refused. orjson reads up to 1024 levels, but what a request holds
# is later walked by recursive code (our `finite_tree`, repr() in error messages,
# the standard json module, protobuf, user code), which fails with a RecursionError
# (a 500) from about 490 levels. 200 keeps every such walk far from Python's limit
# and answers stay within orjson's own limit for writing (254 levels), while real
# payloads never come close: numpy arrays stop at 64 dimensions (32 in numpy 1.x)
# and protobuf's parser at 100 nested messages.
MAX_DEPTH = 200


def _nonfinite_name(x: float) -> str:
    return "NaN" if x != x else _NONFINITE[x]


def finite_array(arr: np.ndarray) -> Any:
    """`arr` itself when every value is finite (the fast path), else an object copy
    with the non-finite floats replaced by their proto3 JSON names."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return arr
    if arr.size <= 64:  # small: Python's isfinite beats numpy's call overhead
        if all(map(math.isfinite, arr.ravel().tolist())):
            return arr
    elif np.isfinite(arr).all():
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


class TooDeep(BadRequest):
    """JSON nested deeper than MAX_DEPTH: said as such, not as "invalid JSON"."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


def _parse_constant(name: str) -> float:
    return float(name)  # NaN, Infinity, -Infinity


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is too large for a double")
    return value


def _parse_int(text: str) -> int | float:
    """As orjson reads integers: exact within 64 bits, else a double. Without this,
    int() of a 5000-digit literal fails with Python's own advice on
    sys.set_int_max_str_digits, and a 400-digit one becomes a Python int that no
    double can hold."""
    if len(text) <= 20:
        value = int(text)
        if -(1 << 63) <= value < 1 << 64:
            return value
    return _parse_float(text)


def loads(data: bytes | str) -> Any:
    """Parse a request body. Raises BadRequest with a short reason."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as first:
        try:
            value = json.loads(
                data,
                parse_constant=_parse_constant,
                parse_float=_parse_float,
                parse_int=_parse_int,
            )
        except RecursionError:
            raise TooDeep() from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(str(exc) or str(first)) from None
    if too_deep(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data):
        raise TooDeep()
    return value


# Nesting depth, measured on the text: C-speed byte operations instead of a walk over
# the parsed value, which would cost as much as parsing for large arrays.
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')


def _openers(text: bytes) -> int:
    """How many ``[`` and ``{`` the text holds (numpy counts large texts ~7x faster)."""
    if len(text) < 4096:
        return text.count(b"[") + text.count(b"{")
    view = np.frombuffer(text, dtype=np.uint8)
    return int(np.count_nonzero(view == ord("[")) + np.count_nonzero(view == ord("{")))


def too_deep(text: bytes) -> bool:
    """True if valid JSON `text` nests deeper than MAX_DEPTH."""
    if _openers(text) <= MAX_DEPTH:
        return False  # not even that many brackets in all
    if b"\\" in text:
        text = _ESCAPE.sub(b"", text)  # now every quote opens or closes a string
    marks = text.translate(None, _NOT_STRUCTURE)  # quotes and brackets only
    if marks.count(b"[") + marks.count(b"{") <= MAX_DEPTH:
        return False  # not even that many brackets in all
    steps = np.frombuffer(_STRING.sub(b"", marks), dtype=np.uint8)  # brackets in strings out
    depth = np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1))
    return int(depth.max(initial=0)) > MAX_DEPTH
