"""Every variant of the user methods, over REST, in-process: which method is called,
with which arguments, and what its answer becomes."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from unitserve import SeldonComponent, SeldonNotImplementedError, SeldonResponse

ONE = {"data": {"ndarray": [[1]]}}


# ----------------------------------------------------------------------------- predict


def test_meta_passed_as_sent_or_none(model):
    server = model("Inspector")
    assert server.post("/predict", json=ONE).json()["jsonData"]["meta"] is None
    meta = {"puid": "p1", "tags": {"a": 1}, "routing": {"r": 1}}
    body = server.post("/predict", json={**ONE, "meta": meta}).json()
    assert body["jsonData"]["meta"] == meta
    assert body["meta"] == {"puid": "p1", "tags": {"a": 1}}  # routing never echoed


def test_meta_through_kwargs(model):
    body = model("Kwargs").post("/predict", json={**ONE, "meta": {"tags": {"k": "v"}}}).json()
    assert body["jsonData"] == {"kwargs": ["meta"], "meta": {"tags": {"k": "v"}}}


def test_method_without_meta_runs_once_even_when_it_raises_typeerror(model):
    server = model("TwoArgs")
    type(server.user).calls = 0  # a class attribute: other tests may have counted
    assert server.post("/predict", json=ONE).json()["jsonData"] == {"calls": 1}
    r = server.post("/predict", json={"data": {"names": ["boom"], "ndarray": [[1]]}})
    assert r.status_code == 500
    assert r.json()["status"]["info"] == "user bug, call 2"  # called once, not retried
    assert server.post("/predict", json=ONE).json()["jsonData"] == {"calls": 3}


def test_meta_keyword_only_or_positional(model):
    class KeywordOnly:
        def predict(self, X, names, *, meta=None):
            return {"meta": meta}

    class Positional:
        def predict(self, X, names, meta):
            return {"meta": meta}

    for user in (KeywordOnly(), Positional()):
        body = model(user).post("/predict", json={**ONE, "meta": {"puid": "x"}}).json()
        assert body["jsonData"] == {"meta": {"puid": "x"}}


def test_predict_missing_answers_an_empty_array(model):
    body = model("Transformer").post("/predict", json=ONE).json()
    assert body == {"data": {"names": [], "ndarray": []}, "meta": {}}


def test_not_implemented_predict_answers_an_empty_array(model):
    class NotYet:
        def predict(self, X, names):
            raise SeldonNotImplementedError("later")

    body = model(NotYet()).post("/predict", json=ONE).json()
    assert body == {"data": {"names": [], "ndarray": []}, "meta": {}}


def test_seldon_component_subclass(model):
    server = model("Component")
    assert server.post("/predict", json=ONE).json()["data"]["ndarray"] == [[1]]
    assert server.post("/transform-input", json=ONE).json()["data"]["ndarray"] == [[1]]
    r = server.post("/route", json=ONE)
    assert (r.status_code, r.json()["status"]["info"]) == (400, "route is not implemented")
    r = server.post("/aggregate", json=[ONE])
    assert (r.status_code, r.json()["status"]["info"]) == (400, "aggregate is not implemented")
    assert server.get("/health/status").json()["strData"] == "not implemented - assuming healthy"


def test_class_names_method_and_attribute(model):
    body = model("Classifier").post("/predict", json={"data": {"ndarray": [[1, 2], [3, 4]]}}).json()
    assert body["data"] == {"names": ["no", "yes"], "ndarray": [[0.25, 0.75], [0.25, 0.75]]}
    with pytest.warns(UserWarning, match="class_names as an attribute is deprecated"):
        attribute = model("ClassNamesAttr")
    body = attribute.post("/predict", json=ONE).json()
    assert body["data"]["names"] == ["a", "b"]


def test_class_names_not_implemented_falls_back_to_t_i(model):
    class Names(SeldonComponent):
        # A user class may leave out `meta`, as Seldon's user classes do.
        def predict(self, X, names):  # type: ignore[override]
            return X

    body = model(Names()).post("/predict", json={"data": {"ndarray": [[1, 2]]}}).json()
    assert body["data"]["names"] == ["t:0", "t:1"]


def test_async_user_methods(model):
    server = model("Asyncy")
    assert server.post("/predict", json={"data": {"ndarray": [[1, 2]]}}).json()["data"][
        "ndarray"
    ] == [[10, 20]]
    assert server.get("/health/status").json()["strData"] == "async healthy"


def test_async_tags_metrics_and_class_names(model):
    class AsyncExtras:
        def predict(self, X, names):
            return X

        async def tags(self):
            await asyncio.sleep(0)
            return {"t": 1}

        async def metrics(self):
            return [{"type": "GAUGE", "key": "g", "value": 2}]

        async def class_names(self):
            return ["c"]

    body = model(AsyncExtras()).post("/predict", json=ONE).json()
    assert body == {
        "data": {"names": ["c"], "ndarray": [[1]]},
        "meta": {"tags": {"t": 1}, "metrics": [{"type": "GAUGE", "key": "g", "value": 2}]},
    }


def test_seldon_response_unwrapped(model):
    class Wrapped:
        def predict(self, X, names):
            return SeldonResponse(X + 1, tags={"w": True})

    body = model(Wrapped()).post("/predict", json=ONE).json()
    assert body == {"data": {"names": ["t:0"], "ndarray": [[2]]}, "meta": {"tags": {"w": True}}}


# ----------------------------------------------------------------------------- transformers


def test_transformers(model):
    server = model("Transformer")
    assert server.post("/transform-input", json={"data": {"ndarray": [[1, 2]]}}).json()["data"][
        "ndarray"
    ] == [[2, 3]]
    assert server.post("/transform-input", json={"strData": "abc"}).json()["strData"] == "ABC"
    assert server.post("/transform-input", json={"binData": "YWJj"}).json()["binData"] == "Y2Jh"
    assert server.post("/transform-output", json={"data": {"ndarray": [[1, 2]]}}).json()["data"][
        "ndarray"
    ] == [[2, 4]]
    assert server.post("/transform-output", json={"jsonData": {"a": 1}}).json()["jsonData"] == {
        "a": 1,
        "seen_meta": False,
    }


def test_missing_methods_fall_back(model):
    server = model("Identity")
    assert server.post("/transform-input", json=ONE).json()["data"]["ndarray"] == [[1]]
    assert server.post("/transform-output", json={"strData": "x"}).json()["strData"] == "x"
    r = server.post("/route", json=ONE)
    assert (r.status_code, r.json()["status"]["info"]) == (400, "Route not defined")
    r = server.post("/aggregate", json=[ONE])
    assert (r.status_code, r.json()["status"]["info"]) == (400, "Aggregate not defined")
    assert server.post("/send-feedback", json={"request": ONE, "reward": 1}).json() == {
        "data": {"ndarray": []},
        "meta": {},
    }
    assert server.get("/health/status").json() == {"strData": "healthy", "meta": {}}


def test_not_implemented_transform_is_identity(model):
    class Lazy:
        def transform_input(self, X, names):
            raise SeldonNotImplementedError("no")

        def transform_output(self, X, names):
            raise SeldonNotImplementedError("no")

    server = model(Lazy())
    for path in ("/transform-input", "/transform-output"):
        body = server.post(path, json={"data": {"names": ["a"], "ndarray": [[5]]}}).json()
        assert body == {"data": {"names": ["t:0"], "ndarray": [[5]]}, "meta": {}}


# ----------------------------------------------------------------------------- route


def test_route_answers_in_request_kind(model):
    server = model("Router")
    assert server.post("/route", json={"data": {"ndarray": [[1, 2, 3]]}}).json() == {
        "data": {"names": ["t:0"], "ndarray": [[1]]},
        "meta": {},
    }
    body = server.post("/route", json={"data": {"tensor": {"shape": [1], "values": [1]}}}).json()
    assert body["data"]["tensor"] == {"shape": [1, 1], "values": [0]}
    body = server.post("/route", json={"data": {"names": ["numpy"], "ndarray": [1]}}).json()
    assert body["data"]["ndarray"] == [[2]]
    body = server.post("/route", json={"data": {"names": ["response"], "ndarray": [1]}}).json()
    assert body == {
        "data": {"names": ["t:0"], "ndarray": [[3]]},
        "meta": {"tags": {"routed": "yes"}},
    }


@pytest.mark.parametrize("mode", ["float", "bool"])
def test_route_must_be_an_int(model, mode):
    r = model("Router").post("/route", json={"data": {"names": [mode], "ndarray": [1]}})
    assert r.status_code == 400
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_DATA"
    assert r.json()["status"]["info"].startswith("Routing response must be int but got")


@pytest.mark.parametrize("value", ["1", None, [1], np.array([1]), np.float64(1.0)])
def test_route_rejects_every_non_int(model, value):
    class Bad:
        def route(self, X, names):
            return value

    r = model(Bad()).post("/route", json=ONE)
    assert r.status_code == 400
    assert r.json()["status"]["info"].startswith("Routing response must be int but got")


def test_route_not_implemented_is_an_error_not_a_fall_through(model):
    class NoRoute:
        def route(self, X, names):
            raise SeldonNotImplementedError("route is not ready")

    r = model(NoRoute()).post("/route", json=ONE)
    # A SeldonMicroserviceException like any other: 400 with the model's own words.
    assert r.status_code == 400
    assert r.json()["status"] == {
        "code": -1,
        "info": "route is not ready",
        "reason": "MICROSERVICE_BAD_DATA",
        "status": 1,
    }


def test_route_gets_meta(model):
    server = model("Inspector")
    assert server.post("/route", json=ONE).json()["data"]["ndarray"] == [[0]]
    body = server.post("/route", json={**ONE, "meta": {"tags": {"a": 1, "b": 2}}}).json()
    assert body["data"]["ndarray"] == [[2]]


# ----------------------------------------------------------------------------- aggregate


def test_aggregate_list_and_object_forms(model):
    server = model("Combiner")
    msgs = [
        {"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "first", "tags": {"a": 1}}},
        {"data": {"ndarray": [[3, 4]]}, "meta": {"tags": {"b": 2}}},
    ]
    for body in (msgs, {"seldonMessages": msgs}):
        out = server.post("/aggregate", json=body).json()
        assert out == {
            "data": {"names": ["t:0", "t:1"], "ndarray": [[2.0, 3.0]]},
            "meta": {"puid": "first", "tags": {"a": 1, "b": 2}},
        }
    out = server.post("/aggregate", json=[{"jsonData": {"a": 1}}, {"jsonData": {"b": 2}}]).json()
    assert out["jsonData"] == {"a": 1, "b": 2}
    tensor_first = [
        {"data": {"tensor": {"shape": [1, 2], "values": [1, 2]}}},
        {"data": {"ndarray": [[3, 4]]}},
    ]
    assert server.post("/aggregate", json=tensor_first).json()["data"]["tensor"] == {
        "shape": [1, 2],
        "values": [2.0, 3.0],
    }


@pytest.mark.parametrize(
    "body", [{"seldonMessages": "x"}, {"foo": []}, {"seldonMessages": []}, [], [{"foo": 1}], "x"]
)
def test_aggregate_bad_bodies_are_400(model, body):
    r = model("Combiner").post("/aggregate", json=body)
    assert r.status_code == 400
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_DATA"


def test_aggregate_passes_features_and_names(model):
    out = (
        model("Inspector")
        .post("/aggregate", json=[{"data": {"names": ["a"], "ndarray": [[1]]}}, {"strData": "s"}])
        .json()["jsonData"]
    )
    assert out["names"] == [["a"], []]
    assert [x["type"] for x in out["Xs"]] == ["ndarray", "str"]


# ----------------------------------------------------------------------------- feedback


def test_feedback(model):
    import json

    server = model("Inspector")
    body = server.post(
        "/send-feedback",
        json={
            "request": {"data": {"names": ["a"], "ndarray": [[1, 2]]}},
            "truth": {"data": {"ndarray": [[1]]}},
            "reward": 0.5,
        },
    ).json()
    got = json.loads(body["strData"])
    assert got["features"]["value"] == [[1.0, 2.0]] and got["features"]["dtype"] == "float64"
    assert got["names"] == ["a"] and got["reward"] == 0.5 and got["routing"] is None
    assert got["truth"]["value"] == [[1.0]]
    for path in ("/api/v1.0/feedback", "/api/v0.1/feedback"):
        assert server.post(path, json={"request": {"strData": "x"}, "reward": 1}).status_code == 200


def test_feedback_routing_from_response_meta(model):
    body = (
        model("Router")
        .post(
            "/send-feedback",
            json={
                "request": ONE,
                "response": {"meta": {"routing": {"0": 1}}, "data": {"ndarray": [1]}},
                "reward": 1,
            },
        )
        .json()
    )
    assert body["strData"] == "routing=1 reward=1.0"


def test_feedback_routing_key_is_the_unit_id(model):
    feedback: dict[str, Any] = {
        "request": ONE,
        "response": {"meta": {"routing": {"0": 1, "r1": 2}}},
        "reward": 1,
    }
    server = model("Router", env={"PREDICTIVE_UNIT_ID": "r1"})
    assert server.post("/send-feedback", json=feedback).json()["strData"] == "routing=2 reward=1.0"
    feedback["response"]["meta"]["routing"] = {"0": 1}
    assert server.post("/send-feedback", json=feedback).json()["strData"] == (
        "routing=None reward=1.0"
    )


def test_feedback_rewards_recorded_when_finite(model):
    server = model("Router")
    for reward in (1.5, "NaN", "Infinity", 0, 2.0):
        assert server.post("/send-feedback", json={"request": ONE, "reward": reward}).is_success
    assert server.recorder.rewards == [1.5, 2.0]
    off = model("Router", env={"SELDON_EXECUTOR_ENABLED": "false"})
    off.post("/send-feedback", json={"request": ONE, "reward": 1})
    assert off.recorder.rewards == []


def test_feedback_not_implemented_answers_empty(model):
    class NoFeedback:
        def send_feedback(self, features, names, reward, truth, routing=None):
            raise SeldonNotImplementedError("no")

    body = model(NoFeedback()).post("/send-feedback", json={"request": ONE, "reward": 1}).json()
    assert body == {"data": {"ndarray": []}, "meta": {}}


@pytest.mark.parametrize("body", [{"request": ONE, "bogus": 1}, {"reward": "high"}, [1, 2]])
def test_bad_feedback_is_400_invalid_json(model, body):
    r = model("Identity").post("/send-feedback", json=body)
    assert r.status_code == 400
    assert r.json()["status"]["info"].startswith("Invalid JSON")


# ----------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("str", {"strData": "all good", "meta": {}}),
        ("array", {"data": {"names": [], "tensor": {"shape": [2], "values": [0.5, 1.5]}}}),
        ("dict", {"jsonData": {"healthy": True}, "meta": {}}),
    ],
)
def test_health_status_variants(model, mode, expected):
    body = model("Health", parameters={"mode": mode}).get("/health/status").json()
    assert {k: v for k, v in body.items() if k in expected} == expected


def test_health_status_raising_is_500(model):
    r = model("Health", parameters={"mode": "raise"}).get("/api/v1.0/health/status")
    assert r.status_code == 500 and r.json()["status"]["info"] == "database unreachable"


def test_health_status_does_not_call_metrics(model):
    server = model("Tagged")
    body = server.get("/health/status").json()
    assert body == {
        "strData": "ok",
        "meta": {"tags": {"static": "yes", "shared": "static", "n": 7}},
    }
    assert server.recorder.recorded == []


def test_health_status_raw(model):
    assert model("HealthRaw").get("/health/status").json() == {
        "strData": "raw healthy",
        "meta": {"tags": {"probe": "raw"}},
    }


def test_health_status_raw_not_implemented_falls_through(model):
    class Fallback:
        def health_status_raw(self):
            raise SeldonNotImplementedError("no")

        def health_status(self):
            return "from the normal method"

    body = model(Fallback()).get("/health/status").json()
    assert body == {"strData": "from the normal method", "meta": {}}


def test_health_status_not_implemented(model):
    class Unsure:
        def health_status(self):
            raise SeldonNotImplementedError("no")

    body = model(Unsure()).get("/health/status").json()
    assert body == {"strData": "not implemented - assuming healthy", "meta": {}}


# ----------------------------------------------------------------------------- raw, deprecated


def test_raw_methods(model):
    server = model("Raw")
    body = server.post("/predict", json={"data": {"ndarray": [[1, 2]]}}).json()
    assert body == {
        "data": {"names": ["double"], "ndarray": [[2.0, 4.0]]},
        "meta": {
            "tags": {"raw": "yes"},
            "metrics": [{"type": "COUNTER", "key": "raw_calls", "value": 1}],
        },
    }
    assert server.recorder.recorded == [
        ("predict", [{"type": "COUNTER", "key": "raw_calls", "value": 1}])
    ]
    r = server.post("/api/v1.0/predictions", json={"jsonData": {"status": 418}})
    assert r.status_code == 418 and r.json()["status"]["reason"] == "RAW"
    r = server.post("/transform-input", json={"jsonData": {"status": 418}, "meta": {}})
    assert r.status_code == 200 and r.json() == {"jsonData": {"keys": ["jsonData", "meta"]}}
    assert server.post("/aggregate", json=[ONE, ONE]).json() == {"jsonData": {"count": 2}}
    assert server.post("/send-feedback", json={"request": ONE, "reward": 0.5}).json() == {
        "jsonData": {"type": "Feedback", "reward": 0.5}
    }


def test_raw_metrics_sent_by_the_client_are_echoed_not_recorded(model):
    class Echo:
        def predict_raw(self, request):
            return request

    sent = {"type": "COUNTER", "key": "from_client", "value": 1}
    server = model(Echo())
    body = server.post("/predict", json={"strData": "x", "meta": {"metrics": [sent]}}).json()
    assert body["meta"]["metrics"] == [sent]
    assert server.recorder.recorded == []


def test_raw_metrics_left_out_when_disabled(model):
    server = model("Raw", env={"INCLUDE_METRICS_IN_CLIENT_RESPONSE": "false"})
    body = server.post("/predict", json={"data": {"ndarray": [[1]]}}).json()
    assert body["meta"] == {"tags": {"raw": "yes"}}
    assert server.recorder.recorded  # still recorded, only not echoed


def test_raw_not_implemented_falls_through_to_the_normal_method(model):
    class Both:
        def predict_raw(self, request):
            raise SeldonNotImplementedError("use predict")

        def predict(self, X, names):
            return X * 3

    body = model(Both()).post("/predict", json=ONE).json()
    assert body["data"]["ndarray"] == [[3]]


@pytest.mark.parametrize("code", [99, 600, "418", True])
def test_raw_status_outside_http_range_is_200(model, code):
    class Status:
        def predict_raw(self, request):
            return {"status": {"code": code}}

    assert model(Status()).post("/predict", json=ONE).status_code == 200


def test_raw_answers_str_and_bytes_sent_as_is(model):
    class Text:
        def predict_raw(self, request):
            return '{"as": "text"}'

        def transform_input_raw(self, request):
            return b'{"as": "bytes"}'

    server = model(Text())
    assert server.post("/predict", json=ONE).content == b'{"as": "text"}'
    assert server.post("/transform-input", json=ONE).content == b'{"as": "bytes"}'


def test_deprecated_rest_methods(model):
    server = model("Deprecated")
    assert server.post("/predict", json=ONE).json() == {
        "jsonData": {"via": "predict_rest", "keys": ["data"]}
    }
    assert server.post("/send-feedback", json={"request": ONE, "reward": 2}).json() == {
        "strData": "got str 2.0"
    }


def test_deprecated_wins_over_raw_and_normal(model):
    class All:
        def predict_rest(self, request):
            return {"via": "rest"}

        def predict_raw(self, request):
            return {"via": "raw"}

        def predict(self, X, names):
            return {"via": "predict"}

        def route_rest(self, request):
            return {"via": "route_rest"}

    server = model(All())
    assert server.post("/predict", json=ONE).json() == {"via": "rest"}
    assert server.post("/route", json=ONE).json() == {"via": "route_rest"}


def test_payload_passthrough(model):
    server = model("Passthrough", passthrough=True)
    r = server.post("/predict", content=b"not even json")
    assert (r.status_code, r.json()) == (200, {"kind": "bytes", "len": 13})
    r = server.get("/predict", params={"json": "abc"})
    assert r.json() == {"kind": "str", "len": 3}


def test_payload_passthrough_with_a_normal_predict_fails_as_in_seldon(model):
    r = model("Identity", passthrough=True).post("/predict", json=ONE)
    assert r.status_code == 400
    assert r.json()["status"]["info"].startswith("Invalid request data type")


def test_rest_and_grpc_share_one_user_object(model):
    server = model("Counter")
    seen = []
    for i in range(4):
        if i % 2:
            seen.append(server.post("/predict", json={"strData": ""}).json()["jsonData"])
        else:
            seen.append(server.call_json("Model/Predict", {"strData": ""})["jsonData"])
    assert [int(s["count"]) for s in seen] == [1, 2, 3, 4]
    assert len({int(s["id"]) for s in seen}) == 1
