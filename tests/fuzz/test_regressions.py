"""Bugs the fuzzers found, each pinned by a plain deterministic test.

The limits (nesting, numbers, shapes, body size, request heads) have their own
module, test_limits.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

import grpc
import httpx
import pytest

from .harness import INTERNAL_TEXT, Target, check_error_body
from .strategies import field, nested_list

# ----------------------------------------------------------------------------- REST


@pytest.mark.parametrize("body", [b"null", b"[]", b'"x"', b"1", b"true"])
def test_feedback_that_is_not_an_object_is_400_in_words(
    target: Callable[..., Target], body: bytes
) -> None:
    """Was: 400 "Invalid JSON: 'NoneType' object is not iterable" (ParseDict's TypeError)."""
    r = target("Router").request("POST", "/send-feedback", content=body)
    assert r.status_code == 400
    info = check_error_body(r.content)["info"]
    assert info == "Invalid JSON: feedback must be an object", info


@pytest.mark.parametrize(
    ("body", "info"),
    [
        ({"request": [[1]]}, "feedback.request must be an object"),
        ({"request": {"meta": [1]}}, "feedback.request.meta must be an object"),
        ({"request": {"data": {"names": "a"}}}, "feedback.request.data.names must be an array"),
        ({"request": {"binData": [1]}}, "feedback.request.binData must be a string"),
        ({"reward": [1]}, "feedback.reward must be a number or a string"),
        ({"truth": {"data": {"tensor": {"shape": [{}]}}}}, "shape[0] must be a number or a string"),
        ({"response": {"meta": {"routing": {"a": [1]}}}}, "routing.a must be a number or a string"),
        ({"request": {"meta": {"requestPath": {"a": None}}}}, "requestPath.a must not be null"),
        ({"\ud800": 1}, "has no field named '\\ud800'"),  # was a 500 (SystemError)
        ({"request": {"meta": {"tags": {"\udc00": 1}}}}, "is not valid Unicode (a lone surrogate)"),
        ({"request": {"strData": "a\ud800"}}, "strData is not valid Unicode (a lone surrogate)"),
        ({"request": {"meta": {"tags": {"a": [[{}]]}}}, "reward": 1}, None),  # Value: any JSON
    ],
)
def test_feedback_of_wrong_json_types_is_400_in_words(
    target: Callable[..., Target], body: dict, info: str | None
) -> None:
    """Was: 400 with ParseDict's Python errors ("unhashable type: 'list'", "can only
    concatenate list (not "bytes") to list", "float() argument must be ...")."""
    content = json.dumps(body).encode()  # \ud800 escaped: httpx's json= cannot send it
    r = target("Router").request("POST", "/send-feedback", content=content)
    if info is None:
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400
    said = check_error_body(r.content)["info"]
    assert said.startswith("Invalid JSON: feedback") and said.endswith(info), said
    assert not INTERNAL_TEXT.search(said), said


@pytest.mark.parametrize(
    ("tftensor", "info"),
    [
        ({"dtype": "DT_FLOAT", "tensorShape": {"dim": [None, [1]]}}, "dim[1] must be an object"),
        ({"dtype": "DT_FLOAT", "tensorShape": [1]}, "tensorShape must be an object"),
        ({"dtype": "DT_FLOAT", "tensorContent": [1]}, "tensorContent must be a string"),
        ({"dtype": ["DT_FLOAT"]}, "dtype must be a number or a string"),
    ],
)
def test_tftensor_of_wrong_json_types_is_400_in_words(
    target: Callable[..., Target], tftensor: dict, info: str
) -> None:
    r = target("Identity").request("POST", "/predict", json={"data": {"tftensor": tftensor}})
    assert r.status_code == 400
    said = check_error_body(r.content)["info"]
    assert said.startswith("data.tftensor.") and said.endswith(info), said


def test_invalid_request_quotes_a_bounded_repr(target: Callable[..., Target]) -> None:
    """Was: str() of the whole request built (seconds, hundreds of MB for a big body)
    before being cut to 1000 characters."""
    body = b'{"foo": [' + b"0," * 2_000_000 + b'0], "bar": "' + b"y" * 5000 + b'"}'
    r = target("Identity").request("POST", "/predict", content=body)
    assert r.status_code == 400
    info = check_error_body(r.content)["info"]
    assert info.startswith("Invalid request data type: {'foo': [0, 0, ")
    assert len(info) <= 1100


def test_invalid_request_repr_is_unchanged_for_small_values(target: Callable[..., Target]) -> None:
    r = target("Identity").request("POST", "/predict", json={"foo": {"a": [1, None, True, "s"]}})
    info = check_error_body(r.content)["info"]
    assert info == "Invalid request data type: {'foo': {'a': [1, None, True, 's']}}"


def _reward_total(target: Target) -> float:
    text = httpx.get(f"http://127.0.0.1:{target.server.metrics_port}/metrics", timeout=20).text
    found = re.search(r"^seldon_api_model_feedback_reward_total\{[^}]*\} (\S+)$", text, re.M)
    assert found, text[-2000:]
    return float(found.group(1))


def test_non_finite_reward_does_not_poison_the_reward_sum(
    fresh_server: Callable[..., object],
) -> None:
    """Was: a reward of "NaN" (valid protobuf JSON) made the reward sum NaN for the life
    of the worker; "Infinity" made it infinite."""
    target = Target(fresh_server("Router"))  # type: ignore[arg-type]
    try:
        feedback = {"request": {"data": {"ndarray": [1]}}}
        for reward in (1.5, "NaN", "Infinity", "-Infinity", 2.0):
            r = target.request("POST", "/send-feedback", json={**feedback, "reward": reward})
            assert r.status_code == 200, r.text
        total = _reward_total(target)
        assert math.isfinite(total) and total == 3.5
    finally:
        target.close()


@pytest.mark.parametrize("reward", [-1.0, -0.5])
def test_negative_feedback_reward_is_recorded(target: Callable[..., Target], reward: float) -> None:
    t = target("Router")
    feedback = {"request": {"data": {"ndarray": [1]}}, "reward": reward}
    r = t.http.post("/send-feedback", json=feedback)
    assert r.status_code == 200, r.text
    code, _, details = t.grpc.call("/seldon.protos.Model/SendFeedback", b"\x1d\x00\x00\x80\xbf")
    assert code == grpc.StatusCode.OK, details


# ----------------------------------------------------------------------------- gRPC

UNDECODABLE = "Exception deserializing request!"

_METADATA_RPCS = [
    "/seldon.protos.Model/Metadata",
    "/seldon.protos.Seldon/ModelMetadata",
    "/seldon.protos.Seldon/GraphMetadata",
]


@pytest.mark.parametrize("path", _METADATA_RPCS)
def test_grpc_metadata_undecodable_request_is_not_unknown(
    target: Callable[..., Target], path: str
) -> None:
    code, _, details = target("Identity").grpc.call(path, b"\xff\xff\xff")
    # As every other RPC answers bytes it cannot parse: grpcio's own words (which Seldon's
    # clients and the conformance suite see), never UNKNOWN.
    assert (code, details) == (grpc.StatusCode.INTERNAL, UNDECODABLE), (code, details)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff",
        field(6, field(6, nested_list(60))),  # jsonData: 120 nested messages
        field(3, field(3, nested_list(60))),  # data.ndarray
    ],
    ids=["garbage", "deep-jsonData", "deep-ndarray"],
)
def test_grpc_undecodable_request_is_answered_as_grpcio_does(
    target: Callable[..., Target], data: bytes
) -> None:
    """Bytes protobuf cannot parse (garbage, or nesting past its limit of 100 messages)
    get grpcio's INTERNAL "Exception deserializing request!", as in Seldon (pinned by the
    conformance case grpc.transport.malformed-bytes)."""
    code, _, details = target("Identity").grpc.call("/seldon.protos.Model/Predict", data)
    assert (code, details) == (grpc.StatusCode.INTERNAL, UNDECODABLE), (code, details)


def _deep(depth: int, number: int) -> bytes:
    """`depth` lists in each other around one number, as data.ndarray (3) or jsonData (6):
    a message big enough (over 1 KiB) for the field-by-field reader of proto_bytes.py."""
    listvalue = field(1, b"\x11" + b"\x00" * 7 + b"\x3f")  # [1.0]
    for _ in range(depth - 1):
        listvalue = field(1, field(6, listvalue))
    return field(3, field(3, listvalue)) if number == 3 else field(6, field(6, listvalue))


@pytest.mark.parametrize(
    ("depth", "number"),
    [(300, 3), (1000, 3), (2000, 6)],
    ids=["ndarray-300", "ndarray-1000", "jsonData"],
)
def test_grpc_deep_bytes_are_refused_like_protobuf_does(
    target: Callable[..., Target], depth: int, number: int
) -> None:
    """The byte-level reader (proto_bytes) hands deep messages to protobuf, which refuses
    them: the same answer as for any undecodable request, not an internal error of ours."""
    data = _deep(depth, number)
    assert len(data) > 1024
    code, _, details = target("Identity").grpc.call("/seldon.protos.Model/Predict", data)
    assert (code, details) == (grpc.StatusCode.INTERNAL, UNDECODABLE), (code, details)
