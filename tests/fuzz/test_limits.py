"""Request-level limits, each with a clear client error.

Deep nesting and enormous numbers are a 400 (REST) or INVALID_ARGUMENT (gRPC) on
every way a request carries JSON; shapes that describe far more elements than a
request carries are refused before anything is allocated; ``--max-body-size`` is
a 413 with or without Content-Length; and oversized request heads are measured
(uvicorn's httptools parser has no limit of its own).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from unitserve.proto import prediction_pb2 as pb
from unitserve.protocol.jsonio import MAX_DEPTH
from unitserve.protocol.shapes import MAX_IMPLIED_ELEMENTS

from .harness import Target, check_error_body
from .strategies import deep, field, nested_list, tensor_message, tftensor_message

DEEP = MAX_DEPTH + 1
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def _rejected(r: Any, *phrases: str) -> str:
    assert r.status_code == 400, r.text[:300]
    info = check_error_body(r.content)["info"]
    assert all(p in info for p in phrases), info
    return info


# ----------------------------------------------------------------------------- nesting


def nested(depth: int, inner: str = "1") -> str:
    """JSON text of `depth` lists around `inner` (json.dumps itself stops near 1000)."""
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize(
    "text",
    [
        f'{{"jsonData": {nested(DEEP)}}}',
        '{"jsonData": ' + '{"a": ' * 600 + "1" + "}" * 601,  # past finite_tree's recursion
        f'{{"jsonData": {nested(1000)}}}',  # within orjson's own limit of 1024
        f'{{"strData": "x", "meta": {{"tags": {{"t": {nested(600)}}}}}}}',
        f'{{"data": {{"ndarray": {nested(DEEP)}}}}}',
        f'{{"data": {{"names": [{nested(DEEP)}], "ndarray": [1]}}}}',
        nested(1000),  # a bare list: its repr() was the 500
        f'{{"jsonData": {nested(5000)}}}',  # past orjson: the standard library's RecursionError
        f'{{"jsonData": [NaN, {nested(300)}]}}',  # the lenient parser's path
    ],
    ids=["201", "object-600", "1000", "tags-600", "ndarray", "names", "bare", "5000", "nan"],
)
def test_deep_json_body_is_400(target: Callable[..., Target], text: str) -> None:
    t = target("Identity")
    _rejected(t.request("POST", "/predict", content=text), TOO_DEEP)
    t.check_alive()


def test_nesting_at_the_limit_round_trips(target: Callable[..., Target]) -> None:
    value = deep(MAX_DEPTH - 1, kind="object")  # plus {"jsonData": ...}: MAX_DEPTH levels
    r = target("Identity").request("POST", "/predict", json={"jsonData": value})
    assert r.status_code == 200 and r.json()["jsonData"] == value


def test_deep_json_in_form_query_and_multipart_is_400(target: Callable[..., Target]) -> None:
    t = target("Identity")
    text = f'{{"jsonData": {nested(600)}}}'
    _rejected(t.request("POST", "/predict", data={"json": text}), "form field json=", TOO_DEEP)
    _rejected(t.request("GET", "/predict", params={"json": text}), "query parameter", TOO_DEEP)
    _rejected(
        t.request("POST", "/predict", files={"jsonData": (None, nested(600))}),
        "multipart field 'jsonData'",
        TOO_DEEP,
    )
    t.check_alive()


def test_brackets_inside_strings_do_not_count(target: Callable[..., Target]) -> None:
    body = {"strData": "[" * 5000 + '"\\', "meta": {"tags": {"k": "{" * 900}}}
    r = target("Identity").request("POST", "/predict", json=body)
    assert r.status_code == 200 and r.json()["strData"] == body["strData"]


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "text",
    [
        '{"data": {"ndarray": [1e400]}}',
        '{"data": {"ndarray": [' + "9" * 400 + "]}}",
        '{"jsonData": ' + "1" * 5000 + "}",
        '{"jsonData": [NaN, ' + "1" * 5000 + "]}",  # the lenient parser's path
        '{"jsonData": [Infinity, -' + "1" * 400 + "]}",
    ],
    ids=["1e400", "400-digits", "5000-digits", "nan-5000-digits", "nan-400-digits"],
)
def test_enormous_numbers_are_400(target: Callable[..., Target], text: str) -> None:
    t = target("Identity")
    for r in (
        t.request("POST", "/predict", content=text),
        t.request("POST", "/predict", data={"json": text}),
        t.request("GET", "/predict", params={"json": text}),
    ):
        info = _rejected(r)
        assert "set_int_max_str_digits" not in info and "Exceeds the limit" not in info, info
    t.check_alive()


def test_64_bit_integers_stay_exact(target: Callable[..., Target]) -> None:
    text = '{"jsonData": {"a": NaN, "b": 18446744073709551615, "c": -9223372036854775808}}'
    r = target("Identity").request("POST", "/predict", content=text)
    assert r.status_code == 200
    assert r.text.startswith(
        '{"jsonData":{"a":"NaN","b":18446744073709551615,"c":-9223372036854775808}'
    )


# ----------------------------------------------------------------------------- shapes

_SHAPES = [
    ([65536, 65536, 65536, 65536], "describes"),  # 2**64: int64's product wraps to 0
    ([0, 2**40], "holds no elements"),  # empty, but its other dimensions are bounded too
    ([0, MAX_IMPLIED_ELEMENTS + 1], "holds no elements"),
    ([100000, 100000], "describes"),
    ([1] * 70, "dimensions"),
]


@pytest.mark.parametrize(
    ("shape", "phrase"), _SHAPES, ids=[s[1] + str(i) for i, s in enumerate(_SHAPES)]
)
def test_rest_tensor_shapes_are_400(
    target: Callable[..., Target], shape: list[int], phrase: str
) -> None:
    t = target("Identity")
    values = [1.0] if phrase == "dimensions" or shape[0] else []
    r = t.request("POST", "/predict", json={"data": {"tensor": {"shape": shape, "values": values}}})
    _rejected(r, phrase)
    t.check_alive()


@pytest.mark.parametrize(
    ("shape", "phrase"), _SHAPES, ids=[s[1] + str(i) for i, s in enumerate(_SHAPES)]
)
def test_rest_tftensor_shapes_are_400(
    target: Callable[..., Target], shape: list[int], phrase: str
) -> None:
    t = target("Identity")
    tensor = {
        "dtype": "DT_FLOAT",
        "tensorShape": {"dim": [{"size": str(d)} for d in shape]},
        "floatVal": [1.0],  # one value fills the shape (TensorFlow's rule)
    }
    started = time.monotonic()
    _rejected(t.request("POST", "/predict", json={"data": {"tftensor": tensor}}), phrase)
    assert time.monotonic() - started < 5  # refused, not allocated then refused
    t.check_alive()


def test_small_shapes_still_work(target: Callable[..., Target]) -> None:
    t = target("Identity")
    r = t.request("POST", "/predict", json={"data": {"tensor": {"shape": [0, 3], "values": []}}})
    assert r.json()["data"] == {
        "names": ["t:0", "t:1", "t:2"],
        "tensor": {"shape": [0, 3], "values": []},
    }
    fill = {
        "dtype": "DT_INT32",
        "tensorShape": {"dim": [{"size": "2"}, {"size": "2"}]},
        "intVal": [7],
    }
    r = t.request("POST", "/predict", json={"data": {"tftensor": fill}})
    assert r.status_code == 200 and r.json()["data"]["tftensor"]["tensorShape"]["dim"] == [
        {"size": "2"},
        {"size": "2"},
    ]


@pytest.mark.parametrize(
    "data",
    [
        tensor_message([65536, 65536, 65536, 65536], []),
        tensor_message([100000, 100000], [1.0]),
        tensor_message([0, 3_000_000], []),
        tensor_message([1] * 70, [1.0]),
        tftensor_message([100000, 100000], 1, (1.0,)),
        tftensor_message([100000, 100000]),  # no value: zeros of 37 GiB
        tftensor_message([2**62, 4]),
        tftensor_message([1] * 70, 1, (1.0,)),
    ],
    ids=["wrap", "1e10", "zero-size", "70-dims", "tf-fill", "tf-zeros", "tf-2**64", "tf-70-dims"],
)
def test_grpc_tensor_shapes_are_invalid_argument(
    target: Callable[..., Target], data: bytes
) -> None:
    t = target("Identity")
    started = time.monotonic()
    code, _, details = t.rpc("/seldon.protos.Model/Predict", data)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    assert time.monotonic() - started < 5
    t.check_alive()


def test_grpc_nesting_within_protobuf_limit_round_trips(target: Callable[..., Target]) -> None:
    t = target("Identity")
    # jsonData holding 40 lists in each other: 80 nested messages (protobuf allows 100)
    message = field(6, field(6, nested_list(40)))
    code, answer, details = t.rpc("/seldon.protos.Model/Predict", message)
    assert code == grpc.StatusCode.OK, details
    assert answer is not None
    pb.SeldonMessage.FromString(answer)  # a list answer is an array (Seldon's rule)


# ----------------------------------------------------------------------------- body size


@pytest.fixture(scope="module")
def small_body(serve: Callable[..., object]) -> Iterator[Target]:
    target = Target(serve("Identity", "--max-body-size", "1K"))  # type: ignore[arg-type]
    yield target
    target.close()


def _chunked(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _check_413(target: Target, chunk: int) -> None:
    body = json.dumps({"strData": "x" * 5000}).encode()
    r = target.request("POST", "/predict", content=_chunked(body, chunk))
    assert r.status_code == 413, r.text[:200]
    assert "--max-body-size" in check_error_body(r.content)["info"]
    target.check_alive()


def test_max_body_size_holds_for_a_chunked_body_sent_at_once(small_body: Target) -> None:
    """Head and whole chunked body in one write: uvicorn has parsed all of it before the
    app asks for the body, so the body comes as one message."""
    body = json.dumps({"strData": "x" * 5000}).encode()
    request = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    )
    answer = _raw(small_body.server.http_port, request)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]


# uvicorn may hand these over in one body message or several, depending on how the
# chunks arrive: every message counts.
@pytest.mark.parametrize("chunk", [1, 100, 1000])
def test_max_body_size_holds_for_chunked_bodies(small_body: Target, chunk: int) -> None:
    _check_413(small_body, chunk)


def test_max_body_size_allows_a_chunked_body_at_the_limit(small_body: Target) -> None:
    body = json.dumps({"strData": "x" * (1024 - 15)}).encode()
    assert len(body) == 1024
    r = small_body.request("POST", "/predict", content=_chunked(body, 100))
    assert r.status_code == 200, r.text


def test_max_body_size_declared_length(small_body: Target) -> None:
    """A Content-Length over the limit is refused before the body is read."""
    with socket.create_connection(("127.0.0.1", small_body.server.http_port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{")
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 413 "), head
    small_body.check_alive()


# ----------------------------------------------------------------------------- request heads


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(request)  # no half-close: uvicorn drops the answer on an early EOF
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _head(extra: bytes, url: bytes = b"/predict") -> bytes:
    body = b'{"strData": "x"}'
    return (
        b"POST " + url + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body
    )


@pytest.mark.parametrize(
    "extra",
    [b"X-Long: " + b"a" * 1_000_000 + b"\r\n", b"".join(b"X-%d: v\r\n" % i for i in range(10_000))],
    ids=["1MB-header", "10000-headers"],
)
def test_huge_request_heads_do_not_hurt_the_worker(
    target: Callable[..., Target], extra: bytes
) -> None:
    """Today httptools accepts any head size (measured for the report); whatever the
    answer, the worker survives and keeps serving."""
    t = target("Identity")
    answer = _raw(t.server.http_port, _head(extra))
    assert answer.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 4")), answer[:200]
    t.check_alive()


@pytest.mark.parametrize(
    "extra",
    [
        b"X-Long: " + b"a" * 70_000 + b"\r\n",
        b"".join(b"X-%d: v\r\n" % i for i in range(101)),
        b"X-Field: " + b"a" * 8191 + b"\r\n",
    ],
    ids=["70KB-head", "101-fields", "8KB-field"],
)
def test_oversized_request_heads_are_431(target: Callable[..., Target], extra: bytes) -> None:
    answer = _raw(target("Identity").server.http_port, _head(extra))
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"reason":"MICROSERVICE_BAD_DATA"' in answer
