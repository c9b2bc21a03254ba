"""The bad-input checklist of the Open Inference Protocol, in one place, REST and gRPC:
each kind of bad request is a 4xx with ``{"error": "<sentence>"}`` (gRPC: the right
code with the sentence in details), never a 5xx, and the model keeps answering after.

Some cases are also tested, in more detail, beside the feature they concern
(test_v2_rest.py, test_v2_grpc.py, test_v2_binary.py); here every item of the list has
at least one case, in both transports where it has a meaning there.
"""

from __future__ import annotations

import gzip
import json
import logging
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import orjson
import pytest

from unitserve.proto import inference_pb2 as pb

from .engine_harness import Harness, RpcError, fixture_model, serving

NAME = "V2Model"
INFER = f"/v2/models/{NAME}/infer"
X = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1, 2]}
XB = {"name": "x", "shape": [2], "datatype": "FP32"}  # its values as binary data
HL = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def h() -> Iterator[Harness]:
    with serving(fixture_model(NAME), max_body_size=1 << 16) as harness:
        yield harness


def body(*inputs: dict[str, Any], **extra: Any) -> bytes:
    # json, not orjson: some cases hold integers past 64 bits, which orjson refuses.
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def binary(header: dict[str, Any], data: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + data, {HL: str(len(head))}


def still_answers(h: Harness) -> None:
    r = h.post(INFER, content=body(X))
    assert r.status_code == 200, r.text


def refused(h: Harness, content: bytes, status: int, words: str, **headers: str) -> None:
    r = h.post(INFER, content=content, headers=headers)
    assert r.status_code == status, (r.status_code, r.text)
    answer = r.json()
    assert list(answer) == ["error"] and words in answer["error"], answer
    assert len(answer["error"]) > 15  # a sentence, not a code


BYTES_STR = {"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"content_type": "str"}}

REST: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("wrong datatype", body({**X, "datatype": "FP322"}), {}, 400, "'FP322'"),
    ("BF16 as JSON", body({**X, "datatype": "BF16"}), {}, 400, "BF16"),
    ("strings as numbers", body({**X, "data": ["1", "2"]}), {}, 400, "needs numbers"),
    ("a value past the datatype", body({**X, "datatype": "UINT8", "data": [1, 300]}), {}, 400,
     "is out of range"),
    ("a value past 64 bits", body({**X, "datatype": "INT64", "data": [1, 1 << 64]}), {}, 400,
     "is out of range for datatype INT64"),
    ("shape/data mismatch", body({**X, "shape": [3]}), {}, 400, "needs 3"),
    ("ragged data", body({**X, "shape": [2, 2], "data": [[1, 2], [3]]}), {}, 400,
     "not rectangular"),
    ("unknown requested output", body(X, outputs=[{"name": "zzz"}]), {}, 400, "'zzz'"),
    ("no inputs", body(), {}, 400, "inputs"),
    ("huge shape", body({**X, "shape": [1 << 40, 1 << 40]}), {}, 400, "describes"),
    ("zero-size huge shape", body({**X, "shape": [0, 1 << 62], "data": []}), {}, 400,
     "holds no elements"),
    ("zero-size shape of 2**40 columns", body({**X, "shape": [0, 1 << 40], "data": []}), {},
     400, "shape [0, 1099511627776] holds no elements, but its other dimensions multiply to"),
    ("shape past 64 bits", body({**X, "shape": [1 << 64]}), {}, 400, "shape"),
    ("deep JSON", b"[" * 5000 + b"]" * 5000, {}, 400, "nested deeper"),
    ("deep JSON in parameters", b'{"inputs": [], "parameters": ' + b"[" * 300 + b"]" * 300 + b"}",
     {}, 400, "nested deeper"),
    ("truncated JSON", body(X)[:-5], {}, 400,
     "the request body is not JSON: it ends too early, at line 1 column"),
    ("a missing comma", b'{"inputs": [] "id": 1}', {}, 400,
     "the request body is not JSON: expecting ',' delimiter at line 1 column 15"),
    ("not JSON at all", b"inputs=1", {}, 400,
     "the request body is not JSON: its first character, 'i', begins no JSON value"),
    ("empty body", b"", {}, 400, "the request body is empty"),
    ("blank body", b" \r\n", {}, 400, "the request body is empty"),
    ("not UTF-8 JSON", b'{"inputs": "\xff"}', {}, 400,
     "the request body is not UTF-8: byte 0xff at offset 12 is invalid there (JSON must be"),
    ("UTF-16 JSON", body(X).decode().encode("utf-16"), {}, 400,
     "is not UTF-8: byte 0xff at offset 0 is invalid there, as in UTF-16 or UTF-32 text"),
    ("UTF-16 JSON without a byte order mark", body(X).decode().encode("utf-16-le"), {}, 400,
     "is not UTF-8: it holds NUL bytes"),
    ("UTF-32 JSON", body(X).decode().encode("utf-32-be"), {}, 400, "is not UTF-8: "),
    ("binary size past the body",
     *binary({"inputs": [{**XB, "parameters": {"binary_data_size": 80}}]},
             b"\0" * 8), 400, "declares 80 bytes"),
    ("binary data no input claims",
     *binary({"inputs": [{**XB, "parameters": {"binary_data_size": 8}}]},
             b"\0" * 12), 400, "no input claims"),
    ("truncated binary body",
     *binary({"inputs": [{**XB, "parameters": {"binary_data_size": 8}}]},
             b"\0" * 7), 400, "only 7 remain"),
    ("BYTES length prefix past the body",
     *binary({"inputs": [{**BYTES_STR, "parameters": {"binary_data_size": 6}}]},
             struct.pack("<I", 100) + b"ab"), 400, "declares 100 bytes"),
    ("BYTES cut inside a length prefix",
     *binary({"inputs": [{**BYTES_STR, "parameters": {"binary_data_size": 2}}]}, b"\1\0"),
     400, "length prefix"),
    ("binary input with a huge shape",
     *binary({"inputs": [{**XB, "shape": [1 << 40, 1 << 40],
                          "parameters": {"binary_data_size": 8}}]}, b"\0" * 8), 400, "describes"),
    ("header length not a number", body(X), {HL: "ten"}, 400, HL),
    ("header length negative", body(X), {HL: "-1"}, 400, HL),
    ("header length past the body", body(X), {HL: str(10**30)}, 400, "only"),
    ("header length zero", body(X), {HL: "0"}, 400, "not a JSON header"),
    ("header length inside the JSON", body(X), {HL: "10"}, 400, "not a JSON header"),
    ("deep JSON in a binary header", b"[" * 5000 + b"]" * 5000, {HL: "10000"}, 400,
     "nested deeper"),
    ("non-UTF-8 BYTES as str (binary)",
     *binary({"inputs": [{**BYTES_STR, "parameters": {"content_type": "str",
                                                      "binary_data_size": 5}}]},
             struct.pack("<I", 1) + b"\xff"), 400, "UTF-8"),
    ("too large", body({**X, "shape": [20000], "data": [1.0] * 20000}), {}, 413,
     "max-body-size"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("content", "headers", "status", "words"),
    [case[1:] for case in REST],
    ids=[case[0] for case in REST],
)
def test_rest(h: Harness, content: bytes, headers: dict[str, str], status: int, words: str) -> None:
    refused(h, content, status, words, **headers)
    still_answers(h)


def test_rest_unknown_model_and_version(h: Harness) -> None:
    for path, words in (
        ("/v2/models/nope/infer", "unknown model 'nope'"),
        (f"/v2/models/{NAME}/versions/2/infer", "unknown version '2'"),
        ("/v2/models/nope/ready", "unknown model"),
        ("/v2/models/nope", "unknown model"),
    ):
        method = h.post if path.endswith("infer") else h.get
        r = method(path, content=body(X)) if path.endswith("infer") else method(path)
        assert r.status_code == 404 and words in r.json()["error"], (path, r.text)
    still_answers(h)


BODY_ROUTES = [
    INFER,
    "/v2/repository/index",
    f"/v2/repository/models/{NAME}/load",
    f"/v2/repository/models/{NAME}/unload",
]
NOT_JSON_BODIES = [
    (b"{", "the request body is not JSON: it ends too early"),
    (b"ready=true", "the request body is not JSON: its first character, 'r', begins no"),
    (b'{"ready": "\xe9"}', "the request body is not UTF-8: byte 0xe9 at offset 11 is invalid"),
    (b'{"ready": true}'.decode().encode("utf-16"), "the request body is not UTF-8: "),
]


@pytest.mark.parametrize("path", BODY_ROUTES)
@pytest.mark.parametrize(("content", "words"), NOT_JSON_BODIES)
def test_every_route_with_a_body_says_why_it_is_not_json(
    h: Harness, path: str, content: bytes, words: str
) -> None:
    r = h.post(path, content=content)
    assert r.status_code == 400, (r.status_code, r.text)
    answer = r.json()
    assert words in answer["error"], answer
    assert "codec can't" not in answer["error"] and "Expecting" not in answer["error"], answer
    h.post(f"/v2/repository/models/{NAME}/load")  # in case an unload went through
    still_answers(h)


def test_rejections_are_logged_in_the_protocols_terms(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="unitserve"):
        assert h.post("/v2/models/nope/infer", content=body(X)).status_code == 404
        assert h.post(INFER, content=b"").status_code == 400
        with pytest.raises(RpcError):
            h.call_v2("ModelInfer", request(FP, model_name="nope"))
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert lines == [
        f"POST /v2/models/nope/infer rejected (404): unknown model 'nope': this server serves "
        f"{NAME!r}",
        f"POST {INFER} rejected (400): the request body is empty: the Open Inference "
        "Protocol expects a JSON object",
        "/inference.GRPCInferenceService/ModelInfer rejected (NOT_FOUND): unknown model "
        f"'nope': this server serves {NAME!r}",
    ], lines
    assert not any("MICROSERVICE" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- gRPC


def request(*tensors: tuple[str, str, list[int], str, list[Any]], **fields: Any) -> Any:
    message = pb.ModelInferRequest(model_name=fields.pop("model_name", NAME), **fields)
    for name, datatype, shape, field, values in tensors:
        tensor = message.inputs.add(name=name, datatype=datatype, shape=shape)
        if field == "raw":
            message.raw_input_contents.append(values[0])
        else:
            getattr(tensor.contents, field).extend(values)
    return message


FP = ("x", "FP32", [2], "fp32_contents", [1.0, 2.0])
STR = pb.InferParameter(string_param="str")

GRPC: list[tuple[str, Any, grpc.StatusCode, str]] = [
    ("wrong datatype", request(("x", "FP322", [2], "fp32_contents", [1.0, 2.0])),
     grpc.StatusCode.INVALID_ARGUMENT, "FP322"),
    ("contents of another datatype", request(("x", "FP32", [2], "int64_contents", [1, 2])),
     grpc.StatusCode.INVALID_ARGUMENT, "fp32_contents"),
    ("shape/data mismatch", request(("x", "FP32", [3], "fp32_contents", [1.0, 2.0])),
     grpc.StatusCode.INVALID_ARGUMENT, "needs 3"),
    ("unknown model", request(FP, model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
    ("unknown version", request(FP, model_version="2"), grpc.StatusCode.NOT_FOUND, "'2'"),
    ("unknown requested output",
     request(FP, outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="zzz")]),
     grpc.StatusCode.INVALID_ARGUMENT, "'zzz'"),
    ("raw size not a whole number of elements",
     request(("x", "FP32", [2], "raw", [b"\0" * 7])), grpc.StatusCode.INVALID_ARGUMENT, "7 bytes"),
    ("raw BYTES length prefix past the buffer",
     request(("s", "BYTES", [1], "raw", [struct.pack("<I", 100) + b"ab"])),
     grpc.StatusCode.INVALID_ARGUMENT, "declares 100 bytes"),
    ("huge shape", request(("x", "FP32", [1 << 40, 1 << 40], "fp32_contents", [1.0])),
     grpc.StatusCode.INVALID_ARGUMENT, "describes"),
    ("huge shape, raw", request(("x", "FP32", [1 << 40, 1 << 40], "raw", [b"\0" * 4])),
     grpc.StatusCode.INVALID_ARGUMENT, "describes"),
    ("zero-size shape of 2**40 columns", request(("x", "FP32", [0, 1 << 40], "fp32_contents", [])),
     grpc.StatusCode.INVALID_ARGUMENT, "shape [0, 1099511627776] holds no elements"),
]  # fmt: skip


def test_an_empty_tensor_is_served(h: Harness) -> None:
    r = h.post(INFER, content=body({**X, "shape": [0, 3], "data": []}))
    assert r.status_code == 200, r.text
    [output] = r.json()["outputs"]
    assert (output["shape"], output["data"]) == ([0, 3], [])
    answer = h.call_v2("ModelInfer", request(("x", "FP32", [0, 3], "fp32_contents", [])))
    assert list(answer.outputs[0].shape) == [0, 3]


def _non_utf8_str() -> Any:
    message = request(("s", "BYTES", [1], "bytes_contents", [b"\xff"]))
    message.inputs[0].parameters["content_type"].CopyFrom(STR)
    return message


GRPC.append(("non-UTF-8 BYTES as str", _non_utf8_str(), grpc.StatusCode.INVALID_ARGUMENT, "UTF-8"))


@pytest.mark.parametrize(
    ("message", "code", "words"), [case[1:] for case in GRPC], ids=[case[0] for case in GRPC]
)
def test_grpc(h: Harness, message: Any, code: grpc.StatusCode, words: str) -> None:
    with pytest.raises(RpcError) as err:
        h.call_v2("ModelInfer", message)
    assert err.value.code == code, err.value
    assert words in err.value.details and len(err.value.details) > 15, err.value.details
    answer = h.call_v2("ModelInfer", request(FP))
    assert list(answer.outputs[0].contents.fp32_contents) == [1.0, 2.0]


@pytest.mark.parametrize(
    "data",
    [b"\x0a\xff", b"\x2a\x05\x0a\x03ab", orjson.dumps({"inputs": []})],
    ids=["truncated", "truncated-input", "not-protobuf"],
)
def test_grpc_bytes_that_do_not_parse(h: Harness, data: bytes) -> None:
    with pytest.raises(RpcError) as err:
        h.call_v2_bytes("ModelInfer", data)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT, err.value


# ----------------------------------------------------------------------------- compressed bodies


def test_gzip_and_deflate_bodies(h: Harness) -> None:
    plain = body(X, id="z")
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for encoding, content in (
        ("gzip", gzip.compress(plain)),
        ("deflate", zlib.compress(plain)),
        ("deflate", raw_deflate.compress(plain) + raw_deflate.flush()),
        ("identity", plain),
    ):
        r = h.post(INFER, content=content, headers={"Content-Encoding": encoding})
        assert r.status_code == 200 and r.json()["id"] == "z", (encoding, r.text)


def test_compressed_binary_body(h: Harness) -> None:
    content, headers = binary(
        {"inputs": [{**XB, "parameters": {"binary_data_size": 8}}]},
        np.array([1, 2], dtype="<f4").tobytes(),
    )
    r = h.post(
        INFER, content=gzip.compress(content), headers={**headers, "Content-Encoding": "gzip"}
    )
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [1.0, 2.0], r.text


def test_bad_compressed_bodies(h: Harness) -> None:
    bomb = gzip.compress(b" " * (1 << 20))  # 1 MiB of blanks in about 1 KiB
    assert len(bomb) < 1 << 16
    refused(h, bomb, 413, "expands to more than", **{"Content-Encoding": "gzip"})
    refused(h, gzip.compress(body(X))[:-10], 400, "cut short", **{"Content-Encoding": "gzip"})
    refused(h, body(X), 400, "not valid gzip", **{"Content-Encoding": "gzip"})
    refused(h, body(X), 400, "not valid deflate", **{"Content-Encoding": "deflate"})
    refused(h, body(X), 415, "'br' is not supported", **{"Content-Encoding": "br"})
    still_answers(h)
