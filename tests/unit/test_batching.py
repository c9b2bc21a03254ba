"""Adaptive batching, in-process: which requests are stacked into one user call and
which go alone, how the answer is split back, meta, errors, timeouts, opt-outs and
the batch metrics. Concurrent requests are run on the harness's loop together."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
import pytest
from google.protobuf import json_format

from unitserve.batching import batch_limits
from unitserve.proto import prediction_pb2 as pb

from .engine_harness import PACKAGE, Harness, RpcError, _Context, fixture_model

# A batch that is full is sent at once: a long wait makes "full" the only trigger.
FULL_ONLY = {"UNITSERVE_MAX_BATCH_SIZE": "8", "UNITSERVE_MAX_BATCH_TIME": "60000"}
SHORT = {"UNITSERVE_MAX_BATCH_SIZE": "8", "UNITSERVE_MAX_BATCH_TIME": "20"}


def posts(h: Harness, bodies: list[Any], path: str = "/api/v1.0/predictions") -> list[Any]:
    """POST every body at once; the answers in the same order."""

    async def run() -> list[Any]:
        return list(await asyncio.gather(*(h.client.post(path, json=b) for b in bodies)))

    return h.loop.run_until_complete(run())


def grpc_calls(h: Harness, rpc: str, messages: list[Any]) -> list[Any]:
    """Call a Seldon RPC with every message at once, each from a thread of its own."""
    service, method = rpc.split("/")
    handler = h.grpc_services[f"{PACKAGE}.{service}"][method]

    def one(message: Any) -> Any:
        data = message.SerializeToString()
        try:
            answer = handler.unary_unary(handler.request_deserializer(data), _Context())
        except RpcError as exc:
            return exc
        return pb.SeldonMessage.FromString(handler.response_serializer(answer))

    async def run() -> list[Any]:
        with ThreadPoolExecutor(len(messages)) as pool:
            futures = [h.loop.run_in_executor(pool, one, m) for m in messages]
            return list(await asyncio.gather(*futures))

    return h.loop.run_until_complete(run())


def rows_called(h: Harness) -> list[int]:
    return sorted(shape[0] if shape else 0 for shape, _ in h.user.calls)


@contextlib.contextmanager
def another_request_in_flight(h: Harness) -> Iterator[None]:
    """As if another request were being read: a lone request then waits for company
    (--max-batch-time) instead of going at once."""
    h.accounting.started("rest")
    try:
        yield
    finally:
        h.accounting.finished("unknown", "rest", "499", 0.0, "POST /elsewhere", "-")


# ----------------------------------------------------------------------------- settings


def test_off_by_default_and_the_operations_it_covers(model: Any) -> None:
    h = model("Batched")
    assert h.invoker.batcher is None and h.invoker.batched == frozenset()
    h = model("Batched", env=FULL_ONLY)
    assert h.invoker.batched == {"predict", "transform_input", "transform_output", "infer"}
    assert h.settings.max_batch_size == 8 and h.settings.max_batch_time == 60000.0


def test_class_opt_out_and_own_maximum() -> None:
    class Off:
        batching = False

    class Own:
        max_batch_size = 16

    assert batch_limits(64, 5, Off()) is None
    limits = batch_limits(64, 5, Own())
    assert limits is not None and (limits.max_rows, limits.max_wait) == (16, 0.005)
    assert batch_limits(8, 5, Own()) is not None and batch_limits(8, 5, Own()).max_rows == 8  # type: ignore[union-attr]
    assert batch_limits(1, 5, Own()) is None and batch_limits(0, 5, object()) is None


def test_raw_methods_turn_batching_off_for_their_operation(model: Any) -> None:
    h = model("Raw", env=FULL_ONLY)
    assert "predict" not in h.invoker.batched


# ----------------------------------------------------------------------------- stacking


def test_ndarray_ints_stack_and_split_and_stay_ints(model: Any) -> None:
    h = model("Batched", env=FULL_ONLY)
    bodies = [{"data": {"ndarray": [[i, i + 1]]}} for i in range(8)]
    answers = posts(h, bodies)
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        assert r.json()["data"]["ndarray"] == [[2 * i, 2 * i + 2]]
        assert all(type(v) is int for v in r.json()["data"]["ndarray"][0])
    assert rows_called(h) == [8]
    assert [(op, rows, len(waits)) for op, rows, waits in h.batches.sent] == [("predict", 8, 8)]


@pytest.mark.parametrize(
    ("kind", "values", "dtype"),
    [
        ("ndarray", [[0.5, 1.5, 2.5]], float),
        ("ndarray", [[True, False, True]], bool),
        ("tensor", {"shape": [1, 3], "values": [0.25, 1.0, 2.0]}, float),
    ],
)
def test_rest_kinds_and_dtypes_that_stack(model: Any, kind: str, values: Any, dtype: type) -> None:
    h = model("Batched", env=FULL_ONLY)
    h.user.mode = "identity" if dtype is bool else "double"  # bool * 2 is no longer bool
    answers = posts(h, [{"data": {kind: values, "names": ["a", "b", "c"]}}] * 8)
    for r in answers:
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["names"] == ["t:0", "t:1", "t:2"]
        got = data[kind]
        if kind == "tensor":
            assert got == {"shape": [1, 3], "values": [0.5, 2.0, 4.0]}
        elif dtype is bool:
            assert got == values
        else:
            assert got == [[1.0, 3.0, 5.0]]
    assert [rows for _, rows, _ in h.batches.sent] == [8]


def test_requests_of_several_rows_split_by_their_own_counts(model: Any) -> None:
    h = model("Batched", env=FULL_ONLY)
    bodies = [
        {"data": {"ndarray": [[1, 1]]}},
        {"data": {"ndarray": [[2, 2], [3, 3], [4, 4]]}},
        {"data": {"ndarray": [[5, 5], [6, 6]]}},
        {"data": {"ndarray": [[7, 7], [8, 8]]}},
    ]
    answers = posts(h, bodies)
    assert [r.json()["data"]["ndarray"] for r in answers] == [
        [[2, 2]],
        [[4, 4], [6, 6], [8, 8]],
        [[10, 10], [12, 12]],
        [[14, 14], [16, 16]],
    ]
    assert rows_called(h) == [8]


def test_grpc_tensor_and_tftensor_stack(model: Any) -> None:
    h = model("Batched", env=FULL_ONLY)
    tensors = [
        json_format.ParseDict(
            {"data": {"tensor": {"shape": [1, 2], "values": [i, -i]}}}, pb.SeldonMessage()
        )
        for i in range(8)
    ]
    answers = grpc_calls(h, "Model/Predict", tensors)
    for i, answer in enumerate(answers):
        assert list(answer.data.tensor.values) == [2.0 * i, -2.0 * i]
        assert list(answer.data.tensor.shape) == [1, 2]
    assert rows_called(h) == [8]
    h.user.calls.clear()
    tf = [
        json_format.ParseDict(
            {
                "data": {
                    "tftensor": {
                        "dtype": "DT_FLOAT",
                        "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]},
                        "floatVal": [i, i],
                    }
                }
            },
            pb.SeldonMessage(),
        )
        for i in range(8)
    ]
    answers = grpc_calls(h, "Model/Predict", tf)
    for i, answer in enumerate(answers):
        assert answer.data.WhichOneof("data_oneof") == "tftensor"
        tf_answer = answer.data.tftensor
        values = (
            list(tf_answer.float_val) or np.frombuffer(tf_answer.tensor_content, "<f4").tolist()
        )
        assert values == [2.0 * i, 2.0 * i]
    assert rows_called(h) == [8]


def test_what_cannot_stack_goes_alone_without_error(model: Any) -> None:
    h = model("Batched", env=SHORT)
    bodies = [
        {"strData": "hello"},
        {"jsonData": {"a": 1}},
        {"binData": "aGVsbG8="},
        {"data": {"ndarray": [1, 2, 3]}},  # 1-D: one sample written flat
        {"data": {"ndarray": [["a", "b"]]}},  # strings
        {"data": {"ndarray": [[1, 2]], "names": ["x", "y"]}},
        {"data": {"ndarray": [[1, 2]], "names": ["p", "q"]}},  # other names
        {"data": {"ndarray": [[1, 2, 3]]}},  # another width
        {"data": {"tensor": {"shape": [1, 2], "values": [1, 2]}}},  # another kind
    ]
    answers = posts(h, bodies)
    assert [r.status_code for r in answers] == [200] * len(bodies), [r.text for r in answers]
    assert answers[0].json()["strData"] == "hello"
    assert answers[1].json()["jsonData"] == {"a": 1}
    assert answers[3].json()["data"]["ndarray"] == [2, 4, 6]
    assert answers[6].json()["data"]["ndarray"] == [[2, 4]]
    assert len(h.user.calls) == len(bodies)  # one call each


def test_a_lone_request_is_an_ordinary_call(model: Any) -> None:
    h = model("Batched", env=SHORT)
    r = h.post(
        "/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "p1"}}
    )
    assert r.status_code == 200 and r.json()["data"]["ndarray"] == [[2, 4]]
    assert h.user.calls == [((1, 2), {"puid": "p1"})]
    assert [(rows, len(waits)) for _, rows, waits in h.batches.sent] == [(1, 1)]


# ----------------------------------------------------------------------------- waiting


def test_a_lone_request_goes_at_once(model: Any) -> None:
    # A minute's --max-batch-time and room for 8 rows: only "nobody else is in flight"
    # can send this request, long before its deadline.
    h = model("Batched", env=FULL_ONLY)
    answer = h.loop.run_until_complete(
        asyncio.wait_for(
            h.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1, 2]]}}), 30
        )
    )
    assert answer.status_code == 200 and answer.json()["data"]["ndarray"] == [[2, 4]]
    assert [(rows, len(waits)) for _, rows, waits in h.batches.sent] == [(1, 1)]
    assert h.batches.sent[0][2][0] < 30


def test_requests_that_arrive_together_go_together_at_once(model: Any) -> None:
    # Both are read in the same pass of the loop: one call of two rows, sent as soon as
    # no third request is in flight, not when the minute is up or the batch is full.
    h = model("Batched", env=FULL_ONLY)

    async def run() -> list[Any]:
        bodies = [{"data": {"ndarray": [[i]]}} for i in range(2)]
        together = asyncio.gather(*(h.client.post("/api/v1.0/predictions", json=b) for b in bodies))
        return list(await asyncio.wait_for(together, 30))

    answers = h.loop.run_until_complete(run())
    assert [r.json()["data"]["ndarray"] for r in answers] == [[[0]], [[2]]]
    assert rows_called(h) == [2]
    assert [rows for _, rows, _ in h.batches.sent] == [2]


def test_with_another_request_in_flight_a_request_waits_for_company(model: Any) -> None:
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "2"})
    batcher = h.invoker.batcher
    assert batcher is not None

    def post(i: int) -> Any:
        return h.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[i]]}})

    async def run() -> list[Any]:
        first = asyncio.ensure_future(post(1))
        for _ in range(10_000):  # until it waits in its group, armed with its deadline
            group = next(iter(batcher.groups.values()), None)
            if group is not None and isinstance(group.timer, asyncio.TimerHandle):
                break
            await asyncio.sleep(0)
        assert not h.user.calls, "the first request did not wait"
        second = await post(2)  # joins the first: the batch is full and goes
        return [await first, second]

    with another_request_in_flight(h):
        answers = h.loop.run_until_complete(asyncio.wait_for(run(), 30))
    assert [r.json()["data"]["ndarray"] for r in answers] == [[[2]], [[4]]]
    assert rows_called(h) == [2]


def test_with_another_request_in_flight_a_lone_request_waits_its_time(model: Any) -> None:
    h = model("Batched", env=SHORT)  # 20 ms
    with another_request_in_flight(h):
        r = h.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1]]}})
    assert r.status_code == 200 and r.json()["data"]["ndarray"] == [[2]]
    [(_, rows, waits)] = h.batches.sent
    assert rows == 1 and waits[0] >= 0.019  # sent by its deadline, not before


def test_transform_input_batches_too(model: Any) -> None:
    h = model("Batched", env=FULL_ONLY)
    answers = posts(h, [{"data": {"ndarray": [[i]]}} for i in range(8)], "/transform-input")
    assert [r.json()["data"]["ndarray"] for r in answers] == [[[i + 1]] for i in range(8)]
    assert rows_called(h) == [8]


# ----------------------------------------------------------------------------- meta


def test_meta_per_request_in_and_out(model: Any) -> None:
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "3"})
    bodies = [
        {"data": {"ndarray": [[i]]}, "meta": {"puid": f"p{i}", "tags": {"client": i}}}
        for i in range(3)
    ]
    answers = posts(h, bodies)
    for i, r in enumerate(answers):
        meta = r.json()["meta"]
        assert meta["puid"] == f"p{i}" and meta["tags"] == {"client": i}
    [(shape, meta)] = h.user.calls
    assert shape == (3, 1)
    assert meta == {"batch": [b["meta"] for b in bodies], "rows": [1, 1, 1]}


# ---------------------------------------------------------------- Open Inference Protocol


def test_infer_stacks_and_splits(model: Any) -> None:
    h = model("Batched", env=FULL_ONLY)
    bodies = [
        {
            "id": f"r{i}",
            "inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT32", "data": [i, i]}],
        }
        for i in range(8)
    ]
    answers = posts(h, bodies, "/v2/models/Batched/infer")
    for i, r in enumerate(answers):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["id"] == f"r{i}"
        [out] = body["outputs"]
        assert (out["datatype"], out["shape"], out["data"]) == ("INT32", [1, 2], [2 * i, 2 * i])
    assert rows_called(h) == [8]


# ----------------------------------------------------------------------------- errors


def test_row_mismatch_fails_every_request_of_the_batch(model: Any) -> None:
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "4"})
    h.user.mode = "mismatch"
    answers = posts(h, [{"data": {"ndarray": [[i]]}} for i in range(4)])
    for r in answers:
        assert r.status_code == 500
        info = r.json()["status"]["info"]
        assert "must return one row per input row when batching is on" in info
        assert "3 rows for a batch of 4 rows from 4 requests" in info
    h.user.mode = "scalar"
    answers = posts(h, [{"data": {"ndarray": [[i]]}} for i in range(4)])
    assert {r.status_code for r in answers} == {500}
    assert "returned a str" in answers[0].json()["status"]["info"]
    h.user.mode = "double"  # the worker keeps serving
    assert [r.status_code for r in posts(h, [{"data": {"ndarray": [[1]]}}] * 4)] == [200] * 4


def test_user_exception_fails_every_request_and_serving_goes_on(model: Any) -> None:
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "4"})
    h.user.mode = "fail"
    answers = posts(h, [{"data": {"ndarray": [[i]]}} for i in range(4)])
    assert [r.status_code for r in answers] == [500] * 4
    assert {r.json()["status"]["info"] for r in answers} == {"this model cannot take a batch"}
    messages = [json_format.ParseDict({"data": {"ndarray": [[1.0]]}}, pb.SeldonMessage())] * 4
    errors = grpc_calls(h, "Model/Predict", messages)
    assert all(isinstance(e, RpcError) and "cannot take a batch" in e.details for e in errors)
    h.user.mode = "double"
    assert [r.status_code for r in posts(h, [{"data": {"ndarray": [[1]]}}] * 4)] == [200] * 4


def test_bad_request_in_a_batch_is_its_own(model: Any) -> None:
    h = model("Batched", env=SHORT)
    answers = posts(
        h, [{"data": {"ndarray": [[1]]}}, {"data": "nope"}, {"data": {"ndarray": [[2]]}}]
    )
    assert [r.status_code for r in answers] == [200, 400, 200]
    assert rows_called(h) == [2]


def test_a_request_given_up_on_leaves_the_batch(model: Any) -> None:
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "3"})

    async def run() -> list[Any]:
        gone = asyncio.create_task(
            h.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[9]]}})
        )
        while not h.invoker.batcher.groups:
            await asyncio.sleep(0)
        gone.cancel()  # the client went away while its request waited
        await asyncio.gather(gone, return_exceptions=True)
        bodies = [{"data": {"ndarray": [[i]]}} for i in range(3)]
        return list(
            await asyncio.gather(*(h.client.post("/api/v1.0/predictions", json=b) for b in bodies))
        )

    with another_request_in_flight(h):  # the first request waits for company
        answers = h.loop.run_until_complete(run())
    assert [r.json()["data"]["ndarray"] for r in answers] == [[[0]], [[2]], [[4]]]
    assert rows_called(h) == [3]  # the cancelled request's row is not in the call


def test_request_timeout_while_queued() -> None:
    user = fixture_model("Batched")
    h = Harness(user, {"UNITSERVE_MAX_BATCH_SIZE": "4", "UNITSERVE_MAX_BATCH_TIME": "60000"})
    try:
        h.invoker.batcher.request_timeout = 0.05  # type: ignore[union-attr]
        with another_request_in_flight(h):
            r = h.post("/api/v1.0/predictions", json={"data": {"ndarray": [[1]]}})
        assert r.status_code == 504
        assert user.calls == []
        h.invoker.batcher.request_timeout = None  # type: ignore[union-attr]
        answers = posts(h, [{"data": {"ndarray": [[i]]}} for i in range(4)])
        assert [r.json()["data"]["ndarray"] for r in answers] == [[[0]], [[2]], [[4]], [[6]]]
    finally:
        h.close()


def test_a_slow_batch_does_not_block_probes(model: Any) -> None:
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "2"})
    gate = threading.Event()
    h.user.gate = gate

    async def run() -> tuple[list[Any], list[int]]:
        bodies = [{"data": {"ndarray": [[i]]}} for i in range(2)]
        batch = asyncio.gather(*(h.client.post("/api/v1.0/predictions", json=b) for b in bodies))
        while not h.user.calls:
            await asyncio.sleep(0.001)
        probes = [(await h.client.get(p)).status_code for p in ("/health/ping", "/ready", "/live")]
        gate.set()
        return list(await batch), probes

    answers, probes = h.loop.run_until_complete(run())
    assert probes == [200, 200, 200]
    assert [r.status_code for r in answers] == [200, 200]


# -------------------------------------------------------------- async models and opt-outs


def test_async_model_with_its_own_maximum(model: Any) -> None:
    h = model("BatchedAsync", env=FULL_ONLY)
    answers = posts(h, [{"data": {"ndarray": [[i]]}} for i in range(8)])
    assert [r.json()["data"]["ndarray"] for r in answers] == [[[10 * i]] for i in range(8)]
    assert h.user.calls == [4, 4]


def test_opted_out_class_is_called_per_request(model: Any) -> None:
    user = fixture_model("Batched")
    user.batching = False
    h = model(user, env=SHORT)
    assert h.invoker.batcher is None
    posts(h, [{"data": {"ndarray": [[i]]}} for i in range(4)])
    assert rows_called(h) == [1, 1, 1, 1]


def test_request_metrics_count_each_request(model: Any) -> None:
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "4"})
    posts(h, [{"data": {"ndarray": [[i]]}} for i in range(4)])
    assert h.accounting_metrics.finished.count(("predict", "rest", "200")) == 4


def test_jsonio_roundtrip_of_split_int_answers(model: Any) -> None:
    # Each split part is a view of the batched answer: it must encode as its own rows.
    h = model("Batched", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "3"})
    answers = posts(h, [{"data": {"ndarray": [[1, 2], [3, 4]]}}, {"data": {"ndarray": [[5, 6]]}}])
    assert orjson.loads(answers[1].content)["data"]["ndarray"] == [[10, 12]]
    assert np.array(answers[0].json()["data"]["ndarray"]).dtype.kind == "i"
    assert rows_called(h) == [3]


def test_while_the_thread_is_busy_the_next_batch_keeps_growing(model: Any) -> None:
    h = model("Batched", env={"UNITSERVE_MAX_BATCH_SIZE": "8", "UNITSERVE_MAX_BATCH_TIME": "1"})
    gate = threading.Event()
    h.user.gate = gate
    batcher = h.invoker.batcher
    assert batcher is not None

    def post(i: int) -> Any:
        return h.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[i]]}})

    async def run() -> list[Any]:
        first = asyncio.ensure_future(post(100))
        while not h.user.calls:  # the first request runs alone and holds the one thread
            await asyncio.sleep(0.001)
        later = [asyncio.ensure_future(post(i)) for i in range(6)]
        while not (batcher.ready and sum(g.rows for g in batcher.ready) == 6):
            await asyncio.sleep(0.001)  # due, but no free thread: it waits, still open
        gate.set()
        return list(await asyncio.gather(first, *later))

    answers = h.loop.run_until_complete(run())
    assert [r.json()["data"]["ndarray"] for r in answers] == [[[200]]] + [
        [[2 * i]] for i in range(6)
    ]
    assert [shape[0] for shape, _ in h.user.calls] == [1, 6]


def test_seldon_response_tags_to_every_answer_metrics_once(model: Any) -> None:
    h = model("BatchedResponse", env={**FULL_ONLY, "UNITSERVE_MAX_BATCH_SIZE": "4"})
    answers = posts(h, [{"data": {"ndarray": [[i]]}} for i in range(4)])
    assert [r.json()["data"]["ndarray"] for r in answers] == [[[i + 1]] for i in range(4)]
    assert all(r.json()["meta"]["tags"] == {"rows": 4} for r in answers)
    assert h.user.calls == [4]
    assert [method for method, _ in h.recorder.recorded] == ["predict"]  # once per call


def test_v2_grpc_infer_batches(model: Any) -> None:
    from unitserve.proto import inference_pb2 as v2pb
    from unitserve.transport.grpc.inference import SERVICE

    h = model("Batched", env=FULL_ONLY)
    handler = h.v2_grpc_services[SERVICE]["ModelInfer"]

    def one(i: int) -> Any:
        request = json_format.ParseDict(
            {
                "model_name": "Batched",
                "id": f"g{i}",
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP32",
                        "shape": [1, 2],
                        "contents": {"fp32_contents": [i, 0.5]},
                    }
                ],
            },
            v2pb.ModelInferRequest(),
        )
        data = request.SerializeToString()
        answer = handler.unary_unary(handler.request_deserializer(data), _Context())
        return v2pb.ModelInferResponse.FromString(handler.response_serializer(answer))

    async def run() -> list[Any]:
        with ThreadPoolExecutor(8) as pool:
            return list(
                await asyncio.gather(*(h.loop.run_in_executor(pool, one, i) for i in range(8)))
            )

    answers = h.loop.run_until_complete(run())
    for i, answer in enumerate(answers):
        assert answer.id == f"g{i}"
        [out] = answer.outputs
        values = (
            np.frombuffer(answer.raw_output_contents[0], "<f4").tolist()
            if answer.raw_output_contents
            else list(out.contents.fp32_contents)
        )
        assert (list(out.shape), values) == ([1, 2], [2.0 * i, 1.0])
    assert rows_called(h) == [8]
