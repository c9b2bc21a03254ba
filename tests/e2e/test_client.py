"""unitserve.client against a real `unitserve serve`: every payload kind, both
transports, errors, retries; and the same answers as seldon-core's SeldonClient."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.client_venvs import client_python
from unitserve.client import AsyncClient, Client, ClientError
from unitserve.client import _oip_wire as oip_wire

HERE = Path(__file__).parent  # seldon_original.py, run by seldon-core's interpreter
DATA = np.array([[1.5, 2.0, -3.25]])


def _client(server, transport: str, **kw) -> Client:
    where = server.url if transport == "rest" else server.grpc_target
    return Client(where, transport=transport, **kw)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
@pytest.mark.parametrize("payload", ["ndarray", "tensor", "tftensor"])
def test_arrays_round_trip_with_names_and_tags(serve, transport, payload) -> None:
    with _client(serve("Component"), transport) as c:
        answer = c.predict(DATA, payload=payload, names=["a", "b", "c"], tags={"k": "v"})
    assert answer.kind == payload
    np.testing.assert_array_equal(answer.data, DATA)
    assert answer.tags == {"k": "v"}


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_str_bin_and_json_data(serve, transport) -> None:
    with _client(serve("Component"), transport) as c:
        assert c.predict("hello").data == "hello"
        assert c.predict(b"\x00\x01bin").data == b"\x00\x01bin"
        assert c.predict(json_data={"a": "x", "b": [True]}).data == {"a": "x", "b": [True]}


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_every_operation(serve, transport) -> None:
    with _client(serve("Inspector"), transport) as c:
        assert c.transform_input(DATA).data["method"] == "transform_input"
        assert c.transform_output(DATA).data["method"] == "transform_output"
        assert c.route(DATA, tags={"a": 1, "b": 2}).data.tolist() == [[2]]
        combined = c.aggregate([DATA, DATA * 2]).data
        assert [x["value"] for x in combined["Xs"]] == [DATA.tolist(), (DATA * 2).tolist()]
        assert c.feedback({"data": {"ndarray": [[1]]}}, None, 1.0).raw is not None
        assert c.health()
        assert "name" in c.metadata()


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_server_errors_carry_status_reason_and_sentence(serve, transport) -> None:
    with _client(serve("Failing"), transport) as c, pytest.raises(ClientError) as caught:
        c.predict(DATA, names=["seldon"])
    if transport == "rest":
        assert (caught.value.status, caught.value.reason) == (403, "FORBIDDEN")
    else:
        assert caught.value.status == "PERMISSION_DENIED"
    assert "not for you" in caught.value.message


def test_bad_input_is_a_4xx_client_error(serve) -> None:
    with Client(serve("Component").url) as c, pytest.raises(ClientError) as caught:
        c.predict(raw={"data": {"tensor": {"shape": [2], "values": [1]}}})
    assert caught.value.status == 400 and caught.value.message


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_503_is_retried_until_the_server_answers(fresh_server, transport) -> None:
    server = fresh_server("Flaky503", "--workers", "1", env={"FLAKY_FAILS": "2"})
    with _client(server, transport, retries=3, backoff=0.01) as c:
        np.testing.assert_array_equal(c.predict(DATA).data, DATA)
        assert c.retried == 2


def test_no_server_is_a_client_error_after_the_retries() -> None:
    with Client("127.0.0.1:1", retries=2, backoff=0.001) as c, pytest.raises(ClientError) as e:
        c.predict(DATA)
    assert (e.value.status, e.value.reason, c.retried) == (0, "NO_ANSWER", 2)
    assert not Client("127.0.0.1:1").health()


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_async_client(serve, transport) -> None:
    server = serve("Component")

    async def go() -> list:
        where = server.url if transport == "rest" else server.grpc_target
        async with AsyncClient(where, transport=transport) as c:
            answers = await asyncio.gather(*(c.predict(DATA * i) for i in range(5)))
            return [a.data.tolist() for a in answers] + [await c.health()]

    assert asyncio.run(go()) == [(DATA * i).tolist() for i in range(5)] + [True]


def test_oip_request_building() -> None:
    """The Open Inference Protocol calls, checked on what they send (the server side of
    the protocol is being wired separately)."""
    body, headers = oip_wire.infer_body({"x": np.arange(4, dtype=np.float32).reshape(1, 4)})
    assert json.loads(body) == {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 1, 2, 3]}]
    }
    body, headers = oip_wire.infer_body(np.array(["a", "bc"]), binary_data=True)
    n = int(headers["inference-header-content-length"])
    head = json.loads(body[:n])
    assert head["inputs"][0]["parameters"] == {"binary_data_size": 11}
    assert body[n:] == b"\x01\x00\x00\x00a\x02\x00\x00\x00bc"
    answer = oip_wire.infer_answer(
        b'{"model_name":"m","outputs":[{"name":"y","shape":[2],"datatype":"INT32","data":[1,2]}]}',
        None,
    )
    assert answer.outputs["y"].tolist() == [1, 2] and answer.outputs["y"].dtype == np.int32
    req = oip_wire.infer_proto("m", "", {"x": np.ones(2)})
    assert req.inputs[0].datatype == "FP64" and len(req.raw_input_contents[0]) == 16


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_same_answers_as_seldon_client(serve, transport) -> None:
    python = client_python("seldon-core")
    server = serve("Component")
    where = f"127.0.0.1:{server.http_port if transport == 'rest' else server.grpc_port}"
    done = subprocess.run(
        [str(python), str(HERE / "seldon_original.py"), where, transport],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    theirs = [json.loads(line) for line in done.stdout.splitlines()]
    names = ["a", "b", "c"]
    with Client(where, transport=transport, gateway="") as c:
        ours = {
            "ndarray": c.predict(DATA, payload="ndarray", names=names),
            "tensor": c.predict(DATA, payload="tensor", names=names),
            "strData": c.predict(str_data="hello"),
            "binData": c.predict(bin_data=b"\x00\x01bin"),
            "jsonData": c.predict(json_data={"a": [1, 2], "b": "x"}),
        }
    assert [t["kind"] for t in theirs] == list(ours)
    for their in theirs:
        assert their["success"], their
        mine = ours[their["kind"]]
        assert _same(mine.raw) == _same(their["response"]), their["kind"]


def _same(answer: dict) -> dict:
    """An answer without what differs by design between two calls (the request id)."""
    answer = json.loads(json.dumps(answer))
    meta = answer.get("meta") or {}
    meta.pop("puid", None)
    answer["meta"] = {k: v for k, v in meta.items() if v}
    return answer
