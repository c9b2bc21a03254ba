"""An inference request ⇄ the arguments of a Seldon class, its result ⇄ outputs,
through the engine as the transports will run it."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from unitserve.batching import split_result
from unitserve.calls import run_sync
from unitserve.engine import Engine
from unitserve.errors import BadModelOutput
from unitserve.message import BIN, COLUMNS, JSON, NDARRAY, STR, TENSOR, Reply, RuntimeOutputs
from unitserve.operations import INFER
from unitserve.protocol.v2 import mapping
from unitserve.protocol.v2.json_codec import V2JsonCodec


def fp32(name, values, **params):
    out = {"name": name, "shape": [len(values)], "datatype": "FP32", "data": values}
    if params:
        out["parameters"] = params
    return out


class Recorder:
    """Keeps what predict received and returns what the test says."""

    def __init__(self, result=None):
        self.result = result
        self.seen: Any = None

    def predict(self, X, feature_names, meta):
        self.seen = (X, feature_names, meta)
        return X if self.result is None else self.result


class Labelled(Recorder):
    def __init__(self, result, names):
        super().__init__(result)
        self.names = names

    def class_names(self):
        return self.names


def infer(user, request, version=None):
    codec = V2JsonCodec("model", version)
    status, body = run_sync(Engine(user).predict(request, codec))
    assert status == 200
    return orjson.loads(body)


def test_one_input_is_an_array_and_meta_holds_id_and_tags():
    user = Recorder()
    out = infer(
        user,
        {
            "id": "r1",
            "parameters": {"tenant": "a", "binary_data_output": False},
            "inputs": [fp32("x", [1, 2], feature_names=["f0", "f1"])],
        },
    )
    X, names, meta = user.seen
    assert isinstance(X, np.ndarray) and X.tolist() == [1.0, 2.0]
    assert names == ["f0", "f1"]
    # The binary extension's directive steers the answer; it is not a tag.
    assert meta == {"puid": "r1", "tags": {"tenant": "a"}, "outputs": []}
    assert out == {
        "model_name": "model",
        "id": "r1",
        "parameters": {"tenant": "a"},
        "outputs": [{"name": "output-0", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}],
    }


def test_several_inputs_are_a_dict_in_request_order():
    user = Recorder(result=np.zeros(1))
    infer(
        user,
        {
            "parameters": {"feature_names": ["g"]},
            "inputs": [fp32("b", [1], feature_names=["ignored"]), fp32("a", [2])],
        },
    )
    X, names, meta = user.seen
    assert list(X) == ["b", "a"]
    assert X["a"].tolist() == [2.0]
    # With several inputs only the request's feature_names apply.
    assert names == ["g"]
    assert meta["tags"] == {}


def test_no_feature_names():
    user = Recorder()
    infer(user, {"inputs": [fp32("x", [1])]})
    assert user.seen[1] == []


@pytest.mark.parametrize(
    ("result", "outputs"),
    [
        (
            {"label": "cat", "p": np.array([0.5], dtype=np.float32)},
            [
                {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["cat"]},
                {"name": "p", "datatype": "FP32", "shape": [1], "data": [0.5]},
            ],
        ),
        (
            [np.array([1], dtype=np.int8), np.array([2], dtype=np.int8)],
            [
                {"name": "output-0", "datatype": "INT8", "shape": [1], "data": [1]},
                {"name": "output-1", "datatype": "INT8", "shape": [1], "data": [2]},
            ],
        ),
        ("text", [{"name": "output-0", "datatype": "BYTES", "shape": [1], "data": ["text"]}]),
        (b"raw", [{"name": "output-0", "datatype": "BYTES", "shape": [1], "data": ["raw"]}]),
        (
            [[1, 2], [3, 4]],
            [{"name": "output-0", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]}],
        ),
        (
            np.array([[True], [False]]),
            [{"name": "output-0", "datatype": "BOOL", "shape": [2, 1], "data": [True, False]}],
        ),
    ],
)
def test_results_become_outputs(result, outputs):
    assert infer(Recorder(result=result), {"id": "i", "inputs": [fp32("x", [1])]})["outputs"] == (
        outputs
    )


def test_class_names_of_the_last_dimension_ride_along():
    user = Labelled(np.array([[0.1, 0.9]]), ["no", "yes"])
    out = infer(user, {"inputs": [fp32("x", [1])]})["outputs"][0]
    assert out["parameters"] == {"class_names": ["no", "yes"]}
    # Without class_names the engine's default t:0 … names are not sent.
    out = infer(Recorder(result=np.array([[0.1, 0.9]])), {"inputs": [fp32("x", [1])]})
    assert "parameters" not in out["outputs"][0]
    # Names that do not match the last dimension are not sent either.
    user = Labelled(np.array([[0.1, 0.9]]), ["a", "b", "c"])
    assert "parameters" not in infer(user, {"inputs": [fp32("x", [1])]})["outputs"][0]


def test_version_is_sent_when_configured():
    out = infer(Recorder(), {"inputs": [fp32("x", [1])]}, version="2")
    assert out["model_version"] == "2"


def test_tuple_and_ragged_lists_map_to_several_outputs():
    # The engine refuses tuples and lists of arrays of different shapes before the
    # codec sees them; the mapping itself handles both.
    reply = Reply(NDARRAY, (np.ones(1), np.zeros((2, 2))), None, {})
    outs = mapping.outputs_of(reply)
    assert [(o.name, o.array.shape) for o in outs] == [("output-0", (1,)), ("output-1", (2, 2))]


@pytest.mark.parametrize(
    ("kind", "value", "names"),
    [
        (TENSOR, np.ones(3), ["output-0"]),
        (STR, "s", ["output-0"]),
        (BIN, b"b", ["output-0"]),
        (JSON, {"a": 1, "b": 2.5, "c": [1, 2]}, ["a", "b", "c"]),
    ],
)
def test_reply_kinds(kind, value, names):
    outs = mapping.outputs_of(Reply(kind, value, None, {}))
    assert [o.name for o in outs] == names


def test_dict_values_that_are_scalars_have_shape_one():
    outs = mapping.outputs_of(Reply(JSON, {"n": 3, "b": True, "f": np.float32(1)}, None, {}))
    assert [(o.datatype.name, o.array.shape) for o in outs] == [
        ("INT64", (1,)),
        ("BOOL", (1,)),
        ("FP32", (1,)),
    ]


@pytest.mark.parametrize(
    ("kind", "value", "says"),
    [
        (JSON, {1: np.ones(1)}, "keys are not all strings"),
        (JSON, {"a": {"nested": 1}}, "output 'a' is a dict"),
        (JSON, {"a": [[1], [2, 3]]}, "output 'a' is a list that is not an array"),
        (NDARRAY, np.ones(2, dtype=np.complex64), "cannot carry"),
        ("customData", object(), "has no inference output form"),
    ],
)
def test_results_with_no_output_form(kind, value, says):
    with pytest.raises(BadModelOutput, match=says):
        mapping.outputs_of(Reply(kind, value, None, {}))


def test_runtime_outputs_are_written_as_mlservers_codecs_write_them():
    """A model standing in for an MLServer runtime: arrays tagged np, one value a row
    for 1-D (and 0-D) results; a table's text column tagged str, its numbers not; the
    answer's content type, and no echo of the request's parameters."""
    arrays = RuntimeOutputs(
        {"predict": np.array([1, 0]), "score": np.float64(0.5), "proba": np.ones((2, 3))}
    )
    request = {"inputs": [fp32("x", [1, 2])], "parameters": {"team": "fraud"}}
    answer = infer(Recorder(result=arrays), request)
    assert "parameters" not in answer
    assert [(o["name"], o["shape"], o["parameters"]) for o in answer["outputs"]] == [
        ("predict", [2, 1], {"content_type": "np"}),
        ("score", [1], {"content_type": "np"}),
        ("proba", [2, 3], {"content_type": "np"}),
    ]
    table = RuntimeOutputs(
        {"n": np.array([1.5, 2.5]), "label": np.array(["a", "b"], dtype=object)},
        made_of=COLUMNS,
        content_type="pd",
    )
    answer = infer(Recorder(result=table), {**request, "outputs": [{"name": "predict"}]})
    assert answer["parameters"] == {"content_type": "pd"}
    assert answer["outputs"] == [
        {"name": "n", "datatype": "FP64", "shape": [2, 1], "data": [1.5, 2.5]},
        {"name": "label", "datatype": "BYTES", "shape": [2, 1], "data": ["a", "b"],
         "parameters": {"content_type": "str"}},
    ]  # fmt: skip


def test_a_batch_of_runtime_outputs_is_split_into_runtime_outputs():
    whole = RuntimeOutputs({"predict": np.arange(3)}, made_of=COLUMNS, content_type="pd")
    parts = split_result(whole, [1, 2], INFER.name)
    assert [type(p) for p in parts] == [RuntimeOutputs, RuntimeOutputs]
    assert [(p.made_of, p.content_type) for p in parts] == [(COLUMNS, "pd")] * 2
    assert [p["predict"].tolist() for p in parts] == [[0], [1, 2]]
