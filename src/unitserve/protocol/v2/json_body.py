"""A JSON body of the Open Inference Protocol, read with the protocol's own words.

The protocol's REST bodies are UTF-8 JSON. When a body is not, the client is told
which of three things is wrong: it is empty, it is not UTF-8 text, or it is text
but not JSON. Python's decoder messages (``'utf-16-le' codec can't decode...``,
``Expecting value: line 1 column 1 (char 0)``) say neither, and the standard
library would even accept UTF-16 or UTF-32 JSON, which the protocol does not.

The common case costs nothing extra: orjson reads valid UTF-8 JSON directly, and
the diagnosis runs only when it refuses the body.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from unitserve.errors import BadRequest
from unitserve.protocol import jsonio


def _utf8_problem(body: bytes) -> str | None:
    """Why `body` is not UTF-8 text, or None if it is."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = body[exc.start : exc.start + 1]
        hint = ""
        if body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:4]:
            hint = ", as in UTF-16 or UTF-32 text"
        return f"byte 0x{bad.hex()} at offset {exc.start} is invalid there{hint}"
    if b"\x00" in body[:4]:
        return "it holds NUL bytes, as UTF-16 or UTF-32 text does"
    return None


def read_json(body: bytes, what: str = "the request body") -> Any:
    """`body` parsed as JSON, or a BadRequest saying, in the protocol's terms, why it
    cannot be: `what` names the body in the sentence ("the request body")."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        if jsonio.too_deep(body):
            raise jsonio.TooDeep()
        return value
    if not body.strip():
        raise BadRequest(f"{what} is empty: the Open Inference Protocol expects a JSON object")
    problem = _utf8_problem(body)
    if problem is not None:
        raise BadRequest(f"{what} is not UTF-8: {problem} (JSON must be sent as UTF-8)")
    text = body.decode("utf-8")
    try:
        # The standard library's second look accepts NaN and Infinity, as for Seldon bodies.
        return jsonio.loads(text)
    except jsonio.TooDeep:
        raise
    except BadRequest as exc:
        raise BadRequest(f"{what} is not JSON: {_where_it_breaks(text, exc.message)}") from None


def _where_it_breaks(text: str, fallback: str) -> str:
    """Where and how `text` stops being JSON, in plain words. The body itself is not
    quoted back, beyond one character: an error message is no place for its contents."""
    try:
        json.loads(text, parse_constant=float)
    except json.JSONDecodeError as exc:
        if exc.pos == 0 or not text[: exc.pos].strip():
            first = text.lstrip()[:1]
            return f"its first character, {first!r}, begins no JSON value"
        if exc.pos >= len(text.rstrip()):
            return f"it ends too early, at line {exc.lineno} column {exc.colno}"
        return f"{exc.msg.lower()} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError):
        pass
    return fallback
