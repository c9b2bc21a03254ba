"""unitserve.client's Open Inference Protocol calls (`infer`, `model_metadata`, `ready`)
and `unitserve batch --protocol v2` against a real `unitserve serve`: REST with JSON
bodies, REST with binary tensor data, and gRPC; every datatype, BYTES, and the errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unitserve.client import AsyncClient, Client, ClientError

MODEL = "V2Model"  # the served model's name is its class name
# (transport, binary_data): the three forms a tensor can travel in.
FORMS = [("rest", False), ("rest", True), ("grpc", False)]
FORM_IDS = ["json", "binary", "grpc"]

EVERY_DATATYPE = {
    "BOOL": np.array([[True, False]]),
    "UINT8": np.array([0, 255], np.uint8),
    "UINT16": np.array([0, 65535], np.uint16),
    "UINT32": np.array([0, 2**32 - 1], np.uint32),
    "UINT64": np.array([0, 2**64 - 1], np.uint64),
    "INT8": np.array([-128, 127], np.int8),
    "INT16": np.array([-32768, 32767], np.int16),
    "INT32": np.array([[-(2**31), 2**31 - 1]], np.int32),
    "INT64": np.array([-(2**63), 2**63 - 1], np.int64),
    "FP16": np.array([1.5, -65504], np.float16),
    "FP32": np.array([[1.5, -2.25], [3.0, 1e-30]], np.float32),
    "FP64": np.array([1e300, -0.5, 5e-324]),
    "BYTES": np.array([b"a", b"", "\u00e9".encode()], dtype=object),
}


def _client(server, transport: str, **kw) -> Client:
    where = server.url if transport == "rest" else server.grpc_target
    return Client(where, protocol="v2", transport=transport, model=MODEL, **kw)


@pytest.mark.parametrize(("transport", "binary"), FORMS, ids=FORM_IDS)
def test_every_datatype_round_trips(serve, transport, binary) -> None:
    with _client(serve(MODEL), transport) as c:
        for name, arr in EVERY_DATATYPE.items():
            out = c.infer({"x": arr}, binary_data=binary).outputs["output-0"]
            assert out.dtype == arr.dtype, name
            assert out.shape == arr.shape, name
            assert out.tolist() == arr.tolist(), name


@pytest.mark.parametrize(("transport", "binary"), FORMS, ids=FORM_IDS)
def test_shapes_strings_and_several_inputs(serve, transport, binary) -> None:
    with _client(serve(MODEL), transport) as c:
        empty = c.infer(np.zeros((0, 3), np.float32), binary_data=binary).outputs["output-0"]
        assert empty.shape == (0, 3) and empty.dtype == np.float32
        scalar = c.infer(np.float32(3), binary_data=binary).outputs["output-0"]
        assert scalar.shape == () and scalar == 3
        # Not contiguous, not little-endian: sent as the values they hold.
        strided = np.arange(12.0).reshape(3, 4)[:, ::2]
        assert c.infer(strided, binary_data=binary).outputs["output-0"].tolist() == strided.tolist()
        big = np.arange(3, dtype=">i4")
        assert c.infer(big, binary_data=binary).outputs["output-0"].tolist() == [0, 1, 2]
        # str goes out as BYTES (UTF-8) and comes back as bytes, as the protocol has it.
        text = c.infer(np.array(["ab", "c\u00e9"]), binary_data=binary).outputs["output-0"]
        assert text.tolist() == [b"ab", "c\u00e9".encode()]
        two = c.infer([np.ones(2), np.zeros(3, np.int8)], binary_data=binary).outputs
        assert list(two) == ["input-0", "input-1"]
        assert two["input-1"].dtype == np.int8


@pytest.mark.parametrize(("transport", "binary"), [("rest", True), ("grpc", False)])
def test_bytes_that_are_not_text_travel_in_binary_forms(serve, transport, binary) -> None:
    raw = np.array([b"\x00\xff\xfe", b"ok"], dtype=object)
    with _client(serve(MODEL), transport) as c:
        assert c.infer({"x": raw}, binary_data=binary).outputs["output-0"].tolist() == raw.tolist()


def test_bytes_that_are_not_text_cannot_go_in_json_and_the_client_says_so(serve) -> None:
    with _client(serve(MODEL), "rest") as c, pytest.raises(ValueError, match="binary_data=True"):
        c.infer({"x": np.array([b"\xff"], dtype=object)})


@pytest.mark.parametrize(("transport", "binary"), FORMS, ids=FORM_IDS)
def test_what_cannot_be_sent_is_a_value_error_before_sending(serve, transport, binary) -> None:
    with _client(serve(MODEL), transport) as c:
        with pytest.raises(ValueError, match="complex128"):
            c.infer({"x": np.array([1j])}, binary_data=binary)
        with pytest.raises(ValueError, match="dict"):
            c.infer({"x": np.array([{"a": 1}], dtype=object)}, binary_data=binary)


@pytest.mark.parametrize(("transport", "binary"), FORMS, ids=FORM_IDS)
def test_outputs_id_and_parameters(serve, transport, binary) -> None:
    with _client(serve(MODEL), transport) as c:
        answer = c.infer(
            {"x": np.ones(2)}, parameters={"answer": "tuple"}, request_id="r-1", binary_data=binary
        )
        assert list(answer.outputs) == ["output-0", "output-1"]
        assert answer.outputs["output-1"].dtype == np.int32
        assert (answer.model_name, answer.id) == (MODEL, "r-1")
        assert answer.parameters["model"] == "v2"  # the model's tags
        chosen = c.infer(
            {"x": np.ones(2)},
            parameters={"answer": "tuple"},
            outputs=["output-1"],
            binary_data=binary,
        )
        assert list(chosen.outputs) == ["output-1"]


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_metadata_and_readiness_read_the_same_on_both_transports(serve, transport) -> None:
    with _client(serve(MODEL), transport) as c:
        meta = c.model_metadata()
        assert c.ready() and not c.ready(model="nope") and c.health()
    assert meta["name"] == MODEL
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "output-0", "datatype": "FP32", "shape": [-1, 4]}]


# (what the request does, the REST status, the gRPC code, words of the server's sentence)
ERRORS = [
    ({"model": "nope"}, 404, "NOT_FOUND", "unknown model 'nope'"),
    ({"version": "7"}, 404, "NOT_FOUND", "unknown version '7'"),
    ({"outputs": ["zzz"]}, 400, "INVALID_ARGUMENT", "'zzz' is not among"),
    ({"parameters": {"answer": "refuse"}}, 422, "INVALID_ARGUMENT", "the model refuses this"),
    ({"parameters": {"answer": "crash"}}, 500, "INTERNAL", "the model crashed"),
]


@pytest.mark.parametrize(("transport", "binary"), FORMS, ids=FORM_IDS)
@pytest.mark.parametrize(("kw", "status", "code", "words"), ERRORS, ids=lambda x: str(x))
def test_errors_carry_status_and_sentence(serve, transport, binary, kw, status, code, words):
    with _client(serve(MODEL), transport, retries=0) as c, pytest.raises(ClientError) as caught:
        c.infer({"x": np.ones(2)}, binary_data=binary, **kw)
    assert caught.value.status == (status if transport == "rest" else code)
    assert words in caught.value.message
    if "model" in kw:
        with _client(serve(MODEL), transport) as c, pytest.raises(ClientError) as caught:
            c.model_metadata(kw["model"])
        assert words in caught.value.message


@pytest.mark.parametrize(("transport", "binary"), FORMS, ids=FORM_IDS)
def test_async_client_infers(serve, transport, binary) -> None:
    server = serve(MODEL)
    where = server.url if transport == "rest" else server.grpc_target

    async def go() -> list:
        async with AsyncClient(where, protocol="v2", transport=transport, model=MODEL) as c:
            answers = await asyncio.gather(
                *(c.infer({"x": np.full(3, i, np.int16)}, binary_data=binary) for i in range(4))
            )
            return [a.outputs["output-0"].tolist() for a in answers] + [
                await c.ready(),
                (await c.model_metadata())["name"],
            ]

    assert asyncio.run(go()) == [[i] * 3 for i in range(4)] + [True, MODEL]


# ----------------------------------------------------------------------------- batch


def _batch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unitserve", "batch", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_batch_v2_answers_every_line_in_order(serve, tmp_path: Path, transport) -> None:
    server = serve(MODEL)
    port = server.http_port if transport == "rest" else server.grpc_port
    source = tmp_path / "in.txt"
    lines = [f"[[{i}, {i + 0.5}]]" for i in range(12)] + ["[[1, 2", "[1, {}]"]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.txt"
    common = ["--protocol", "v2", "--model", MODEL, "-g", "seldon", "--transport", transport]
    done = _batch(*common, "-h", f"127.0.0.1:{port}", "-i", str(source), "-o", str(out), "-w", "3")
    assert done.returncode == 1, done.stderr  # two lines cannot be sent
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(answers) == 14
    for i, answer in enumerate(answers[:12]):
        assert answer["model_name"] == MODEL
        assert answer["parameters"]["batch_index"] == i
        (output,) = answer["outputs"]
        assert (output["datatype"], output["shape"], output["data"]) == (
            "FP64",
            [1, 2],
            [i, i + 0.5],
        )
    for i, answer in enumerate(answers[12:], start=12):
        assert answer["status"]["info"] == "FAILURE" and answer["meta"]["batch_index"] == i
    assert "12 lines ok, 2 failed" in done.stderr


def test_batch_v2_raw_and_str_lines(serve, tmp_path: Path) -> None:
    server = serve(MODEL)
    where = ["-h", f"127.0.0.1:{server.http_port}", "--protocol", "v2", "-d", MODEL, "-g", "seldon"]
    raw = tmp_path / "raw.txt"
    raw.write_text(
        json.dumps({"inputs": [{"name": "x", "datatype": "INT8", "shape": [2], "data": [1, -1]}]})
        + "\n"
        + json.dumps({"inputs": [{"name": "x", "datatype": "FOO", "shape": [1], "data": [1]}]})
        + "\n[1, 2]\n"
    )
    out = tmp_path / "raw-out.txt"
    done = _batch(*where, "-a", "raw", "-i", str(raw), "-o", str(out))
    assert done.returncode == 1
    first, bad_type, not_request = (json.loads(line) for line in out.read_text().splitlines())
    assert first["outputs"][0] == {
        "name": "output-0",
        "datatype": "INT8",
        "shape": [2],
        "data": [1, -1],
    }
    assert "'FOO'" in bad_type["status"]["reason"]
    assert "inference request" in not_request["status"]["reason"]

    text = tmp_path / "str.txt"
    text.write_text('"hello"\n"w\\u00f6rld"\n')
    out = tmp_path / "str-out.txt"
    done = _batch(*where, "-a", "str", "-i", str(text), "-o", str(out))
    assert done.returncode == 0, done.stderr
    got = [json.loads(line)["outputs"][0] for line in out.read_text().splitlines()]
    assert [(o["datatype"], o["data"]) for o in got] == [
        ("BYTES", ["hello"]),
        ("BYTES", ["w\u00f6rld"]),
    ]

    done = _batch(*where, "-a", "json", "-i", str(text), "-o", str(out))
    assert done.returncode == 2 and "--data-type data, str or raw" in done.stderr
