"""Property-based fuzzing of the REST transport against real servers.

Every data endpoint gets generated and mutated SeldonMessage JSON in each way a
request can carry it (JSON body with any Content-Type, form ``json=``, query
``json=``, multipart fields and files, chunked bodies, mutated bytes); every path,
known or not, gets any method, odd headers and query strings. `Target` checks
each answer (see harness.py) and that the server is alive and whole afterwards.
"""

from __future__ import annotations

import base64
import quopri
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unitserve.transport.rest.app import ROUTES

from .conftest import MODELS
from .harness import Target, fuzz
from .strategies import BODIES, json_values, messages, mutated, to_json

DATA_ROUTES = sorted((path, r.kind) for path, r in ROUTES.items() if r.kind in BODIES)
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE", "FOO"]
_CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "MULTIPART/FORM-DATA; boundary=x",
    "application/json; charset=latin-1",
    "\u00e9/\u00e9",
]


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length)."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


@st.composite
def multipart_body(draw: st.DrawFn, value: Any) -> tuple[bytes, str]:
    """A multipart/form-data body for `value` (its top-level keys as fields), well-formed
    or broken in one of the ways real clients and attackers break it."""
    boundary = draw(st.sampled_from(["b0und", "----x9", "a" * 70, "with space", "\u00e9"]))
    fields = list(value.items()) if isinstance(value, dict) else [("data", value)]
    fields += draw(st.lists(st.tuples(st.text(max_size=6), json_values), max_size=2))
    parts = []
    for name, v in fields:
        payload = v.encode() if isinstance(v, str) and name == "strData" else to_json(v)
        if name == "binData":
            payload = draw(st.binary(max_size=16))
        disposition = draw(
            st.sampled_from(
                [
                    f'form-data; name="{name}"',
                    f'form-data; name="{name}"; filename="f.bin"',
                    "form-data",
                    f"form-data; name*=utf-8''{quote_from_bytes(name.encode())}",
                    f'attachment; name="{name}"; filename=""',
                ]
            )
        )
        head = [f"Content-Disposition: {disposition}"]
        encoding = draw(st.sampled_from([None, None, "base64", "quoted-printable", "7bit", "x"]))
        if encoding == "base64":
            payload = base64.b64encode(payload)
        elif encoding == "quoted-printable":
            payload = quopri.encodestring(payload)
        if encoding:
            head.append(f"Content-Transfer-Encoding: {encoding}")
        if draw(st.booleans()):
            head.append(
                "Content-Type: "
                + draw(st.sampled_from(["application/json", "text/plain; charset=latin-1", "x/y"]))
            )
        parts.append(
            b"--" + boundary.encode() + b"\r\n" + "\r\n".join(head).encode() + b"\r\n\r\n" + payload
        )
    body = b"\r\n".join(parts) + b"\r\n--" + boundary.encode() + b"--\r\n"
    if draw(st.integers(0, 4)) == 0:
        body = draw(mutated(body))
    ctype = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                f'multipart/form-data; boundary="{boundary}"',
                "multipart/form-data; boundary=other",
                "multipart/form-data",
                f"multipart/mixed; boundary={boundary}",
            ]
        )
    )
    return body, ctype


@st.composite
def data_requests(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """httpx.request keyword arguments carrying a generated body for operation `kind`."""
    value = draw(BODIES[kind])
    text = to_json(value, ascii_only=draw(st.booleans()))
    how = draw(
        st.sampled_from(["body", "body", "form", "query", "multipart", "mutated", "chunked"])
    )
    headers: dict[str, bytes] = {}  # bytes: latin-1 values go out as they are
    kw: dict[str, Any] = {"headers": headers}
    if how in ("body", "mutated", "chunked"):
        content = draw(mutated(text)) if how == "mutated" else text
        ctype = draw(st.sampled_from(_CONTENT_TYPES))
        if ctype is not None:
            headers["content-type"] = ctype.encode("latin-1")
        kw["content"] = _chunks(content, draw(st.integers(1, 64))) if how == "chunked" else content
    elif how == "form":
        extra = draw(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
        form = urlencode({**extra, "json": text.decode("utf-8", "replace")}).encode()
        if draw(st.integers(0, 5)) == 0:
            form = draw(mutated(form))
        headers["content-type"] = b"application/x-www-form-urlencoded"
        kw["content"] = form
    elif how == "query":
        query = urlencode({"json": text.decode("utf-8", "replace")})
        if draw(st.integers(0, 5)) == 0:
            query += draw(st.sampled_from(["&json=", "%ff%fe", "&json=%ZZ", "&&&", "&json=1"]))
        kw["params"] = query
        if draw(st.booleans()):  # a body too: the query wins (Seldon's order)
            kw["content"] = to_json(draw(messages))
    else:
        body, ctype = draw(multipart_body(value))
        kw["content"], headers["content-type"] = body, ctype.encode("utf-8")
    return kw


@pytest.mark.parametrize("model", sorted(MODELS))
@fuzz(40)
@given(data=st.data())
def test_data_endpoints(target: Callable[..., Target], model: str, data: st.DataObject) -> None:
    t = target(model)
    path, kind = data.draw(st.sampled_from(DATA_ROUTES), label="route")
    method = data.draw(st.sampled_from(["POST", "POST", "GET"]), label="method")
    t.request(method, path, **data.draw(data_requests(kind), label="request"))
    t.check_alive()


@pytest.mark.parametrize("model", ["Passthrough", "Identity"])
@fuzz(20)
@given(data=st.data())
def test_passthrough_predict(
    target: Callable[..., Target], model: str, data: st.DataObject
) -> None:
    """PAYLOAD_PASSTHROUGH: raw bytes to predict_raw, and a normal predict refusing them."""
    t = target(model, env={"PAYLOAD_PASSTHROUGH": "true"})
    path = data.draw(st.sampled_from(["/predict", "/api/v1.0/predictions", "/transform-input"]))
    t.request("POST", path, **data.draw(data_requests("predict")))
    t.check_alive()


# ----------------------------------------------------------------------------- any request

_token = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=20,
)
_header_value = st.binary(max_size=64).map(
    lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip()
)
# Headers whose value would change the framing of the request itself (httpx sets them).
_FRAMING = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te"}
_special_headers = st.sampled_from(
    [
        (b"origin", b"http://a.test"),
        (b"origin", b"null"),
        (b"access-control-request-method", b"POST"),
        (b"content-type", b"multipart/form-data; boundary=zz"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-encoding", b"gzip"),
        (b"expect", b"100-continue"),
        (b"accept", b"*/*"),
        (b"x-long", b"v" * 8000),
        (b"cookie", b"a=b; c=d"),
    ]
)
_paths = st.one_of(
    st.sampled_from(sorted(ROUTES)),
    st.sampled_from(sorted(ROUTES)).map(lambda p: p + "/"),
    st.sampled_from(sorted(ROUTES)).map(str.upper),
    st.sampled_from(["/", "//predict", "/predict/../metadata", "/%2e%2e/x", "/metrics", "/v2/x"]),
    st.binary(max_size=30).map(lambda b: "/" + quote_from_bytes(b, safe="/")),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30).map(
        lambda s: "/" + s.replace("#", "").replace("?", "")
    ),
)


@fuzz(120)
@given(data=st.data())
def test_any_request(target: Callable[..., Target], data: st.DataObject) -> None:
    """Any path (known or not), method, query string, headers and small body."""
    t = target(data.draw(st.sampled_from(["Identity", "Inspector"]), label="model"))
    path = data.draw(_paths, label="path")
    method = data.draw(st.sampled_from(METHODS), label="method")
    headers = data.draw(
        st.lists(
            st.one_of(st.tuples(_token.map(str.encode), _header_value), _special_headers),
            max_size=30,
        ),
        label="headers",
    )
    headers = [(k, v) for k, v in headers if k.lower().decode() not in _FRAMING]
    query = data.draw(
        st.one_of(
            st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=4).map(
                urlencode
            ),
            st.binary(max_size=40).map(lambda b: quote_from_bytes(b, safe="=&")),
        ),
        label="query",
    )
    body = data.draw(
        st.one_of(st.none(), st.binary(max_size=64), messages.map(to_json)), label="body"
    )
    t.request(
        method, path, params=query, headers=headers, content=body, invalid_http=method == "FOO"
    )
    t.check_alive()
