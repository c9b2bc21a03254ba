"""Property-based fuzzing of the Open Inference Protocol's REST routes against a real
server: generated and mutated inference bodies (JSON and binary tensor data, with right
and wrong header lengths), every /v2 path shape with any method, and the repository
routes. Every answer must be a well-formed 2xx, or a 4xx/5xx with ``{"error": ...}``
where a 5xx is the model's doing (it raised, or returned what no output can carry), and
the server must be alive and whole afterwards."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from hypothesis import given
from hypothesis import strategies as st

from .harness import INTERNAL_TEXT, Target, fuzz, raised_in_user_code
from .strategies import json_values, mutated, to_json

MODEL = "V2Model"
DATATYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
_SIZES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2}
# The fixture's answers (tests/fixtures/V2Model.py), some of which the model gets wrong.
ANSWERS = [
    None,
    "tuple",
    "ragged",
    "float64",
    "int",
    "str",
    "bytes",
    "dict",
    "names",
    "nested",
    "response",
    "refuse",
    "crash",
    "complex",
    "none",
]
# Answers the model caused without raising: its result has no output form.
MODEL_OUTPUT_ERRORS = ("output ", "the model returned")

_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=4),
)


@st.composite
def tensor(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], bytes]:
    """One input, as JSON data or as binary data (then its bytes)."""
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(st.lists(st.integers(0, 3), min_size=0, max_size=3))
    count = 1
    for d in shape:
        count *= d
    record: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
    if draw(st.booleans()):
        if datatype == "BYTES":
            items = draw(st.lists(st.binary(max_size=4), min_size=count, max_size=count))
            raw = b"".join(struct.pack("<I", len(b)) + b for b in items)
        else:
            raw = draw(st.binary(min_size=count * _SIZES.get(datatype, 4), max_size=count * 8))
        params: dict[str, Any] = {"binary_data_size": len(raw)}
        if draw(st.booleans()):
            params["content_type"] = "str"
        record["parameters"] = params
        return record, raw
    record["data"] = draw(st.lists(_scalars, min_size=count, max_size=count))
    return record, b""


@st.composite
def infer_body(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    names = draw(st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=3))
    inputs, blobs = [], []
    for name in names:
        record, raw = draw(tensor(name))
        inputs.append(record)
        blobs.append(raw)
    doc: dict[str, Any] = {"inputs": inputs}
    answer = draw(st.sampled_from(ANSWERS))
    params: dict[str, Any] = {} if answer is None else {"answer": answer}
    if draw(st.booleans()):
        params["binary_data_output"] = draw(st.one_of(st.booleans(), json_values))
    if params:
        doc["parameters"] = params
    if draw(st.booleans()):
        doc["outputs"] = [
            {"name": n, "parameters": {"binary_data": draw(st.booleans())}}
            for n in draw(st.lists(st.sampled_from(["x", "output-0", "output-1", "q"])))
        ]
    if draw(st.integers(0, 4)) == 0:  # any field replaced by any JSON
        key = draw(st.sampled_from(["inputs", "outputs", "parameters", "id"]))
        doc[key] = draw(json_values)
    header = to_json(doc)
    binary = b"".join(blobs)
    headers: dict[str, str] = {}
    if binary or draw(st.integers(0, 5)) == 0:
        length = len(header) + draw(st.sampled_from([0, 0, 0, -1, 1, -5]))
        headers["Inference-Header-Content-Length"] = draw(
            st.sampled_from([str(length), str(length), "x", "-1", "9a"])
        )
    body = header + binary
    if draw(st.integers(0, 5)) == 0:
        body = draw(mutated(body))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json", "application/octet-stream", "text/plain"])
        )
    return body, headers


def check_v2(t: Target, method: str, path: str, r: httpx.Response) -> None:
    where = f"{method} {path} → {r.status_code}: {r.content[:500]!r}"
    assert 200 <= r.status_code < 600 and not 300 <= r.status_code < 400, where
    assert b"Traceback (most recent" not in r.content, where
    if method == "HEAD" or (method == "OPTIONS" and r.status_code == 200):
        assert r.content == b"", where
        return
    if r.status_code >= 400:
        assert r.headers.get("content-type") == "application/json", where
        doc = orjson.loads(r.content)
        assert isinstance(doc, dict) and set(doc) == {"error"}, where
        message = doc["error"]
        assert isinstance(message, str) and message, where
        if r.status_code >= 500:
            log = t.new_log()
            assert raised_in_user_code(log) or message.startswith(MODEL_OUTPUT_ERRORS), (
                f"server error not caused by the model: {where}\n{log[-3000:]}"
            )
        else:
            assert not INTERNAL_TEXT.search(message), where
        return
    length = r.headers.get("inference-header-content-length")
    if length is not None:
        header = orjson.loads(r.content[: int(length)])
        sizes = sum(o.get("parameters", {}).get("binary_data_size", 0) for o in header["outputs"])
        assert len(r.content) == int(length) + sizes, where
    elif r.content:
        orjson.loads(r.content)


def request(t: Target, method: str, path: str, **kw: Any) -> httpx.Response:
    t.new_log()
    r = t.http.request(method, path, **kw)
    if not r.request.url.path.startswith("/v2"):
        # The client resolved the path out of /v2 ("/v2/.."): a Seldon route answered it.
        assert 200 <= r.status_code < 500, r.content[:300]
        return r
    check_v2(t, method, path, r)
    return r


@fuzz(60)
@given(body=infer_body())
def test_v2_infer(target: Callable[..., Target], body: tuple[bytes, dict[str, str]]) -> None:
    t = target(MODEL)
    content, headers = body
    request(t, "POST", f"/v2/models/{MODEL}/infer", content=content, headers=headers)
    t.check_alive()


_segments = st.one_of(
    st.sampled_from(
        [
            *("v2", "models", MODEL, "versions", "1", "infer", "ready", "health", "live"),
            *("repository", "index", "load", "unload", "", "other", "%00", "..", "é"),
        ]
    ),
    st.text(
        st.characters(min_codepoint=33, exclude_characters="/?#%\x7f", exclude_categories=["Cc"]),
        max_size=5,
    ),
)


@fuzz(60)
@given(
    segments=st.lists(_segments, min_size=0, max_size=6),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]),
    body=st.one_of(st.just(b""), json_values.map(to_json), st.binary(max_size=20)),
)
def test_v2_paths(
    target: Callable[..., Target], segments: list[str], method: str, body: bytes
) -> None:
    t = target(MODEL)
    path = "/v2/" + "/".join(segments) if segments else "/v2"
    if path.endswith(("/unload", "/load")):
        path = path.rsplit("/", 1)[0] + "/index"  # keep the shared server's model loaded
    request(t, method, path, content=body)
    t.check_alive()
