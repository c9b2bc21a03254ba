"""Where a REST request's SeldonMessage comes from (spec §8.2), in Seldon's order:

1. a ``multipart/form-data`` body: every text field is JSON except ``strData``
   (taken as text); a ``binData`` file is taken as raw bytes, any other file as
   UTF-8 text;
2. the form field ``json=`` of a ``application/x-www-form-urlencoded`` body;
3. the query parameter ``json=`` (it wins over a JSON body, as in Seldon);
4. the body itself, parsed as JSON whatever its Content-Type says.
"""

from __future__ import annotations

import email.parser
import email.policy
from typing import Any
from urllib.parse import parse_qs

from unitserve.errors import BadRequest
from unitserve.protocol import jsonio

NO_JSON = "Can't find JSON in data"


def _json_param(encoded: bytes, where: str) -> str | None:
    """The first non-empty ``json=`` value of a urlencoded string, as text."""
    try:
        values = parse_qs(encoded.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeError:
        raise BadRequest(f"{where} is not UTF-8") from None
    text = values.get("json", [""])[0]
    return text or None


def _field_json(text: str, where: str) -> Any:
    try:
        return jsonio.loads(text)
    except BadRequest as exc:
        raise BadRequest(f"Invalid JSON in {where}: {exc.message}") from None


def parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadRequest("multipart/form-data body without parts (is the boundary right?)")
    out: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):  # a part that is itself multipart: no bytes
            payload = b""
        if part.get_filename() is not None:  # a file
            out[name] = payload if name == "binData" else _utf8(payload, name)
        elif name == "strData":
            out[name] = _utf8(payload, name)
        else:
            out[name] = _field_json(_utf8(payload, name), f"multipart field {name!r}")
    if not out:
        raise BadRequest("multipart/form-data body has no named fields")
    return out


def _utf8(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"multipart field {name!r} is not UTF-8 text") from None


def request_payload(content_type: str, query_string: bytes, body: bytes) -> Any:
    """The request's SeldonMessage JSON value (see module doc)."""
    ctype = content_type.lower()
    if "multipart/form-data" in ctype:
        return parse_multipart(content_type, body)
    if ctype.startswith("application/x-www-form-urlencoded"):
        text = _json_param(body, "the form field json=")
        if text:
            return _field_json(text, "the form field json=")
    if query_string:
        text = _json_param(query_string, "the query parameter json=")
        if text:
            return _field_json(text, "the query parameter json=")
    if not body.strip():
        raise BadRequest(NO_JSON)
    try:
        return jsonio.loads(body)
    except jsonio.TooDeep:
        raise  # valid JSON, over a limit: say which
    except BadRequest as exc:
        raise BadRequest(NO_JSON, detail=exc.message) from None


def raw_payload(content_type: str, query_string: bytes, body: bytes) -> bytes | str:
    """PAYLOAD_PASSTHROUGH: the ``json=`` text if there is one, else the body bytes."""
    if content_type.lower().startswith("application/x-www-form-urlencoded"):
        text = _json_param(body, "the form field json=")
        if text:
            return text
    if query_string:
        text = _json_param(query_string, "the query parameter json=")
        if text:
            return text
    return body
