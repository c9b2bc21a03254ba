"""The meta of an answer (tags, metrics, requestPath, puid) and the validation and
recording of user metrics, in-process."""

from __future__ import annotations

import pytest

from unitserve import SeldonResponse, create_counter

ONE = {"data": {"ndarray": [[1]]}}
TAGGED_METRICS = [
    {"type": "COUNTER", "key": "tagged_calls", "value": 1},
    {"type": "GAUGE", "key": "tagged_gauge", "value": 3},
    {"type": "TIMER", "key": "tagged_timer", "value": 12.5},
]
REQUEST_METRIC = {"type": "COUNTER", "key": "from_request", "value": 1}


def test_request_tags_then_static_then_runtime(model):
    body = (
        model("Runtime")
        .post("/predict", json={**ONE, "meta": {"tags": {"req": 1, "shared": "request"}}})
        .json()
    )
    assert body["meta"]["tags"] == {
        "req": 1,
        "shared": "runtime",
        "static": "tag",
        "runtime": "yes",
    }
    assert body["meta"]["metrics"] == [
        {"type": "COUNTER", "key": "rt_count", "value": 2},
        {"type": "GAUGE", "key": "rt_gauge", "value": 5},
    ]


def test_static_tags_and_metrics_in_every_answer(model):
    server = model("Tagged")
    body = server.post(
        "/predict", json={**ONE, "meta": {"metrics": [REQUEST_METRIC], "tags": {"r": "x"}}}
    ).json()
    assert body["meta"]["metrics"] == [REQUEST_METRIC, *TAGGED_METRICS]
    assert body["meta"]["tags"] == {"r": "x", "static": "yes", "shared": "static", "n": 7}
    route = server.post(
        "/route", json={**ONE, "meta": {"tags": {"r": "x"}, "metrics": [REQUEST_METRIC]}}
    ).json()
    assert route["meta"]["tags"] == {"static": "yes", "shared": "static", "n": 7}
    assert route["meta"]["metrics"] == TAGGED_METRICS


@pytest.mark.parametrize(
    ("path", "label", "body"),
    [
        ("/predict", "predict", ONE),
        ("/transform-input", "inputtransform", ONE),
        ("/route", "router", ONE),
        ("/aggregate", "aggregate", [ONE]),
        ("/send-feedback", "feedback", {"request": ONE, "reward": 1}),
    ],
)
def test_static_metrics_recorded_under_the_method_label(model, path, label, body):
    server = model("Tagged")
    assert server.post(path, json=body).status_code == 200
    assert server.recorder.recorded == [(label, TAGGED_METRICS)]


def test_metrics_sent_by_the_client_are_echoed_not_recorded(model):
    server = model("Identity")
    body = server.post("/predict", json={**ONE, "meta": {"metrics": [REQUEST_METRIC]}}).json()
    assert body["meta"] == {"metrics": [REQUEST_METRIC]}
    assert server.recorder.recorded == []


def test_metrics_left_out_of_answers_when_disabled(model):
    server = model("Tagged", env={"INCLUDE_METRICS_IN_CLIENT_RESPONSE": "false"})
    body = server.post("/predict", json={**ONE, "meta": {"metrics": [REQUEST_METRIC]}}).json()
    assert body["meta"]["metrics"] == [REQUEST_METRIC]
    assert server.recorder.recorded == [("predict", TAGGED_METRICS)]


@pytest.mark.parametrize("name", ["bad", "badname"])
def test_invalid_runtime_metric_is_500_bad_metric(model, name):
    r = model("Runtime").post("/predict", json={"data": {"names": [name], "ndarray": [[1]]}})
    assert r.status_code == 500
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_METRIC"
    assert r.json()["status"]["info"].startswith("Bad metric created during request: [")


@pytest.mark.parametrize(
    "metrics",
    [
        {"type": "COUNTER", "key": "k", "value": 1},  # not a list
        [{"type": "HISTOGRAM", "key": "k", "value": 1}],
        [{"type": "COUNTER", "value": 1}],
        [{"type": "COUNTER", "key": "k", "value": True}],
        [{"type": "COUNTER", "key": "k", "value": "1"}],
        [{"type": "COUNTER", "key": "9k", "value": 1}],
        [{"type": "GAUGE", "key": "k", "value": 1, "tags": {"bad-label": "x"}}],
        [{"type": "GAUGE", "key": "k", "value": 1, "tags": {"__reserved": "x"}}],
        ["COUNTER"],
    ],
)
def test_invalid_static_metrics_are_500_bad_metric(model, metrics):
    class Bad:
        def predict(self, X, names):
            return X

        def metrics(self):
            return metrics

    r = model(Bad()).post("/predict", json=ONE)
    assert r.status_code == 500
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_METRIC"


def test_valid_metric_with_tags_is_recorded(model):
    metric = {"type": "TIMER", "key": "t_ms", "value": 3.5, "tags": {"route": "a"}}

    class Timed:
        def predict(self, X, names):
            return SeldonResponse(X, metrics=[metric, create_counter("c", 1)])

    server = model(Timed())
    assert server.post("/predict", json=ONE).json()["meta"]["metrics"] == [
        metric,
        {"type": "COUNTER", "key": "c", "value": 1},
    ]
    assert server.recorder.recorded == [
        ("predict", [metric, {"type": "COUNTER", "key": "c", "value": 1}])
    ]


def test_create_counter_refuses_a_non_number():
    with pytest.raises(TypeError):
        create_counter("c", "1")  # type: ignore[arg-type]


def test_puid_and_request_path(model):
    server = model(
        "Identity", env={"PREDICTIVE_UNIT_ID": "clf", "PREDICTIVE_UNIT_IMAGE": "repo/clf:1.2"}
    )
    body = server.post(
        "/predict", json={**ONE, "meta": {"puid": "abc", "requestPath": {"up": "img:1"}}}
    ).json()
    assert body["meta"] == {"puid": "abc", "requestPath": {"clf": "repo/clf:1.2", "up": "img:1"}}


def test_request_path_without_image_and_on_every_operation(model):
    server = model("Tagged", env={"PREDICTIVE_UNIT_ID": "n1"})
    expected = {"n1": "NOT_IMPLEMENTED:NOT_IMPLEMENTED"}
    assert server.post("/predict", json=ONE).json()["meta"]["requestPath"] == expected
    assert server.post("/route", json=ONE).json()["meta"]["requestPath"] == expected
    assert server.get("/health/status").json()["meta"]["requestPath"] == expected


def test_no_unit_id_no_request_path_unless_sent(model):
    server = model("Identity")
    assert server.post("/predict", json=ONE).json()["meta"] == {}
    body = server.post("/predict", json={**ONE, "meta": {"requestPath": {"a": "b"}}}).json()
    assert body["meta"] == {"requestPath": {"a": "b"}}


def test_empty_puid_not_echoed(model):
    body = model("Identity").post("/predict", json={**ONE, "meta": {"puid": ""}}).json()
    assert body["meta"] == {}


@pytest.mark.parametrize(
    ("meta", "info"),
    [
        ({"metrics": {"a": 1}}, "meta.metrics must be a list"),
        ({"requestPath": ["a"]}, "meta.requestPath must be an object"),
    ],
)
def test_bad_request_meta_is_400(model, meta, info):
    r = model("Identity").post("/predict", json={**ONE, "meta": meta})
    assert r.status_code == 400
    assert r.json()["status"]["info"] == info


def test_non_object_tags_cannot_be_merged(model):
    r = model("Tagged").post("/predict", json={**ONE, "meta": {"tags": ["x"]}})
    assert r.status_code == 400
    assert "tags must be JSON objects to be merged" in r.json()["status"]["info"]


def test_non_dict_tags_from_the_model_are_500(model):
    class BadTags:
        def predict(self, X, names):
            return X

        def tags(self):
            return ["not", "a", "dict"]

    r = model(BadTags()).post("/predict", json=ONE)
    assert r.status_code == 500
    assert r.json()["status"]["info"] == "tags() must return a dict, got list"


def test_aggregate_merges_every_message_meta(model):
    msgs = [
        {"data": {"ndarray": [[1]]}, "meta": {"tags": {"a": 1}, "requestPath": {"x": "1"}}},
        {"data": {"ndarray": [[3]]}, "meta": {"tags": {"a": 2}, "metrics": [REQUEST_METRIC]}},
    ]
    body = model("Combiner", env={"PREDICTIVE_UNIT_ID": "c"}).post("/aggregate", json=msgs).json()
    assert body["meta"] == {
        "tags": {"a": 2},
        "metrics": [REQUEST_METRIC],
        "requestPath": {"c": "NOT_IMPLEMENTED:NOT_IMPLEMENTED", "x": "1"},
    }
