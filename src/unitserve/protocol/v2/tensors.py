"""One tensor of an inference request or answer ⇄ a numpy array.

Shared by the JSON and the binary forms (and by the gRPC codec): a shape is
checked before anything is allocated, values are checked against the declared
datatype (a number the datatype cannot hold is refused rather than wrapped around
or turned into infinity), and BYTES become an object array of `bytes`, or of `str`
when the input's ``parameters.content_type`` is ``"str"``.

JSON data of a float datatype may hold the strings "NaN", "Infinity" and "-Infinity":
that is how this server writes non-finite values in its answers, so an answer can be
sent back as a request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from unitserve.errors import BadModelOutput, BadRequest
from unitserve.protocol import shapes
from unitserve.protocol.jsonio import finite_array
from unitserve.protocol.v2 import binary
from unitserve.protocol.v2.datatypes import Datatype, out_of_range

# What `jsonio.finite_array` writes for the non-finite floats, read back.
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_NONFINITE_HINT = ' (non-finite values are written "NaN", "Infinity", "-Infinity")'

_NOT_RECTANGULAR = (
    "data is not rectangular (nested lists of unequal length, or nested deeper than "
    "numpy's limit on dimensions)"
)


def claim_name(index: int, name: str, seen: set[str]) -> None:
    """Each input of a request needs a name, and a name of its own: `seen` holds the names
    of the inputs before it."""
    if not name:
        raise BadRequest(f"inputs[{index}] needs a name")
    if name in seen:
        raise BadRequest(f"input {name!r} appears more than once")
    seen.add(name)


def read_shape(value: Any, where: str) -> list[int]:
    # A loop rather than all() over a generator: this runs for every input of every request.
    if isinstance(value, list):
        for d in value:
            if type(d) is not int and (not isinstance(d, int) or isinstance(d, bool)):
                break
            if d < 0:
                break
        else:
            return value
    raise BadRequest(f"{where} shape must be a list of non-negative integers")


def from_json(
    data: Any, datatype: Datatype, shape: Sequence[int], as_str: bool, where: str
) -> np.ndarray:
    """An input's ``data`` (flat or nested, row-major) as an array of `shape`."""
    if not isinstance(data, list):
        raise BadRequest(f"{where} data must be a list (flat or nested), got {_kind(data)}")
    if datatype.is_bytes:
        return _bytes_from_json(data, shape, as_str, where)
    try:
        values = np.asarray(data)
    except (ValueError, TypeError):
        raise BadRequest(f"{where} {_NOT_RECTANGULAR}") from None
    want = datatype.dtype.kind
    if want == "f" and values.dtype.kind in "OU":
        values = _read_nonfinite_names(data, values)
    if values.dtype.kind == "f" and want in "iu" and _whole(values):
        # Integers numpy (or the JSON reader, past 64 bits) turned into doubles: one of
        # them may be beyond the datatype, which deserves that sentence, not "floats".
        _check_integer_range(data, datatype, where)
        if datatype.dtype == np.uint64:
            # numpy reads a list holding both int64 and uint64-only values as doubles,
            # which cannot hold 2**64 - 1: read it again as what it was sent for.
            try:
                values = np.array(data, dtype=np.uint64)
            except (OverflowError, ValueError, TypeError):
                raise BadRequest(f"{where} has values that do not fit datatype UINT64") from None
    if values.size:
        _check_kind(values, datatype, where)
    try:
        # numpy flags a cast that turns a finite number into infinity as an overflow
        # (a number past FP16's or FP32's largest): a value the datatype cannot hold,
        # refused as an integer that would wrap around is. Free when nothing overflows.
        with np.errstate(over="raise"):
            converted = values.astype(datatype.dtype, copy=False)
    except FloatingPointError:
        with np.errstate(over="ignore"):
            converted = values.astype(datatype.dtype)
        lost = (np.isinf(converted) & np.isfinite(values)).reshape(-1)
        if lost.any():
            raise out_of_range(values.reshape(-1)[lost][0], datatype, where) from None
    return shapes.reshape(converted.reshape(-1), shape, where)


def _read_nonfinite_names(data: list[Any], values: np.ndarray) -> np.ndarray:
    """Data of a float datatype with the strings "NaN", "Infinity", "-Infinity" among
    numbers, as doubles (flat). Anything else that is not a number leaves `values` as
    they were, for `_check_kind` to refuse."""
    flat = np.array(data, dtype=object).reshape(-1).tolist()
    out = []
    for item in flat:
        if isinstance(item, str) and item in _NONFINITE:
            out.append(_NONFINITE[item])
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append(item)
        else:
            return values
    return np.array(out, dtype=np.float64)


def _check_integer_range(data: list[Any], datatype: Datatype, where: str) -> None:
    """Refuse the first value of `data` (already known to be whole numbers) that the
    integer datatype cannot hold."""
    info = np.iinfo(datatype.dtype)
    low, high = int(info.min), int(info.max)
    for item in np.array(data, dtype=object).reshape(-1).tolist():
        if isinstance(item, float):
            # A double here may be an integer literal past 64 bits, rounded by the JSON
            # reader: one just below INT64's lowest rounds to that lowest exactly.
            fits = low < item <= high if low == -(1 << 63) else low <= item <= high
        else:
            fits = low <= item <= high
        if not fits:
            raise out_of_range(item, datatype, where)


def _whole(values: np.ndarray) -> bool:
    return bool(values.size) and bool(np.isfinite(values).all() and (values % 1 == 0).all())


def _check_kind(values: np.ndarray, datatype: Datatype, where: str) -> None:
    kind = values.dtype.kind
    want = datatype.dtype.kind
    if want == "b":
        ok = kind == "b"
        needs = "true or false"
    elif want in "iu":
        ok = kind in "iu"
        needs = "integers"
    else:
        ok = kind in "iuf"
        needs = "numbers"
    if not ok:
        if kind == "O":
            got = "values of mixed or unknown types (or null)"
        elif kind == "U":
            got = "strings"
        elif kind == "b":
            got = "true/false"
        elif kind in "iu":
            got = "integers"
        else:
            got = "floating-point numbers" if kind == "f" else f"values of numpy kind {kind!r}"
        hint = _NONFINITE_HINT if want == "f" and kind in "OU" else ""
        raise BadRequest(
            f"{where} has datatype {datatype.name}, which needs {needs}; got {got}{hint}"
        )
    if want in "iu":
        info = np.iinfo(datatype.dtype)
        low, high = values.min(), values.max()
        if low < info.min or high > info.max:
            raise out_of_range(low if low < info.min else high, datatype, where)


def _bytes_from_json(data: list[Any], shape: Sequence[int], as_str: bool, where: str) -> np.ndarray:
    # dtype=object keeps each string whole (a numpy str array drops trailing NULs);
    # ragged nesting then shows as lists among the elements.
    flat = np.array(data, dtype=object).reshape(-1).tolist()
    for i, item in enumerate(flat):
        if not isinstance(item, str):
            if isinstance(item, list):
                raise BadRequest(f"{where} {_NOT_RECTANGULAR}")
            raise BadRequest(
                f"{where} has datatype BYTES; element {i} is {_kind(item)}, not a string"
            )
    if not as_str:
        try:
            flat = [s.encode("utf-8") for s in flat]
        except UnicodeEncodeError:
            raise BadRequest(f"{where} holds a string that is not valid Unicode") from None
    return shapes.reshape(binary.object_array(flat), shape, where)


def from_binary(
    buf: memoryview, datatype: Datatype, shape: Sequence[int], as_str: bool, where: str
) -> np.ndarray:
    """An input sent as binary data (a view of the body for fixed-size types)."""
    if not datatype.is_bytes:
        return binary.fixed_array(buf, datatype, shape, where)
    # Each element takes at least its 4-byte length: a bound on the count before
    # the shape's product is trusted.
    shapes.element_count(shape, len(buf) // 4, where)
    items: list[Any] = binary.bytes_elements(buf, where)
    if as_str:
        items = decode_text(items, where)
    return shapes.reshape(binary.object_array(items), shape, where)


def decode_text(items: list[bytes], where: str) -> list[str]:
    """BYTES elements as str, for inputs with ``parameters.content_type == "str"``."""
    try:
        return [b.decode("utf-8") for b in items]
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"{where} has parameters.content_type 'str' but holds bytes that are not "
            f"UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def to_json(arr: np.ndarray, datatype: Datatype, where: str) -> Any:
    """An output's ``data``: flat, row-major. Numeric arrays stay numpy arrays so the
    JSON writer serialises them in C; non-finite floats become "NaN"/"Infinity"
    strings as everywhere else in this server's JSON (and `from_json` reads them)."""
    flat = arr.reshape(-1)
    if not datatype.is_bytes:
        return finite_array(flat)
    out: list[str] = []
    for i, item in enumerate(flat.tolist()):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, bytes | bytearray):
            try:
                out.append(bytes(item).decode("utf-8"))
            except UnicodeDecodeError:
                raise BadModelOutput(
                    f"{where} element {i} holds bytes that are not UTF-8 text, which JSON "
                    "cannot carry: ask for this output as binary data "
                    "(parameters.binary_data) to receive it"
                ) from None
        else:
            raise BadModelOutput(
                f"{where} element {i} is a {type(item).__name__}; BYTES outputs hold str or bytes"
            )
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
