"""The user-class contract over REST: method variants, meta merge, tags, metrics,
SeldonResponse, raw and deprecated methods, errors."""

from __future__ import annotations

import base64

import pytest

ONE = {"data": {"ndarray": [[1]]}}


def test_meta_passed_as_sent_or_none(serve):
    server = serve("Inspector")
    assert server.post("/predict", json=ONE).json()["jsonData"]["meta"] is None
    meta = {"puid": "p1", "tags": {"a": 1}, "routing": {"r": 1}}
    body = server.post("/predict", json={**ONE, "meta": meta}).json()
    assert body["jsonData"]["meta"] == meta
    assert body["meta"] == {"puid": "p1", "tags": {"a": 1}}  # routing never echoed


def test_meta_through_kwargs(serve):
    body = serve("Kwargs").post("/predict", json={**ONE, "meta": {"tags": {"k": "v"}}}).json()
    assert body["jsonData"] == {"kwargs": ["meta"], "meta": {"tags": {"k": "v"}}}


def test_method_without_meta_runs_once_even_when_it_raises_typeerror(fresh_server):
    server = fresh_server("TwoArgs", grpc=False)
    assert server.post("/predict", json=ONE).json()["jsonData"] == {"calls": 1}
    r = server.post("/predict", json={"data": {"names": ["boom"], "ndarray": [[1]]}})
    assert r.status_code == 500
    assert r.json()["status"]["info"] == "user bug, call 2"  # called once, not retried
    assert server.post("/predict", json=ONE).json()["jsonData"] == {"calls": 3}


def test_class_names_method_and_attribute(serve):
    body = serve("Classifier").post("/predict", json={"data": {"ndarray": [[1, 2], [3, 4]]}}).json()
    assert body["data"] == {"names": ["no", "yes"], "ndarray": [[0.25, 0.75], [0.25, 0.75]]}
    body = serve("ClassNamesAttr").post("/predict", json=ONE).json()
    assert body["data"]["names"] == ["a", "b"]


def test_request_tags_then_static_then_runtime(serve):
    body = (
        serve("Runtime")
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


def test_static_tags_and_metrics_in_every_answer(serve):
    server = serve("Tagged")
    metrics = [
        {"type": "COUNTER", "key": "tagged_calls", "value": 1},
        {"type": "GAUGE", "key": "tagged_gauge", "value": 3},
        {"type": "TIMER", "key": "tagged_timer", "value": 12.5},
    ]
    request_metric = {"type": "COUNTER", "key": "from_request", "value": 1}
    body = server.post(
        "/predict", json={**ONE, "meta": {"metrics": [request_metric], "tags": {"r": "x"}}}
    ).json()
    assert body["meta"]["metrics"] == [request_metric, *metrics]
    assert body["meta"]["tags"] == {"r": "x", "static": "yes", "shared": "static", "n": 7}
    route = server.post(
        "/route", json={**ONE, "meta": {"tags": {"r": "x"}, "metrics": [request_metric]}}
    ).json()
    assert route["meta"]["tags"] == {"static": "yes", "shared": "static", "n": 7}
    assert route["meta"]["metrics"] == metrics


def test_health_status_does_not_call_metrics(serve):
    body = serve("Tagged").get("/health/status").json()
    assert body == {
        "strData": "ok",
        "meta": {"tags": {"static": "yes", "shared": "static", "n": 7}},
    }


def test_metrics_left_out_of_answers_when_disabled(fresh_server):
    server = fresh_server("Tagged", env={"INCLUDE_METRICS_IN_CLIENT_RESPONSE": "false"}, grpc=False)
    request_metric = {"type": "COUNTER", "key": "from_request", "value": 1}
    body = server.post("/predict", json={**ONE, "meta": {"metrics": [request_metric]}}).json()
    assert body["meta"]["metrics"] == [request_metric]


@pytest.mark.parametrize("name", ["bad", "badname"])
def test_invalid_runtime_metric_is_500_bad_metric(serve, name):
    r = serve("Runtime").post("/predict", json={"data": {"names": [name], "ndarray": [[1]]}})
    assert r.status_code == 500
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_METRIC"
    assert r.json()["status"]["info"].startswith("Bad metric created during request: [")


def test_puid_and_request_path(fresh_server):
    server = fresh_server(
        "Identity",
        env={"PREDICTIVE_UNIT_ID": "clf", "PREDICTIVE_UNIT_IMAGE": "repo/clf:1.2"},
        grpc=False,
    )
    body = server.post(
        "/predict", json={**ONE, "meta": {"puid": "abc", "requestPath": {"up": "img:1"}}}
    ).json()
    assert body["meta"] == {"puid": "abc", "requestPath": {"clf": "repo/clf:1.2", "up": "img:1"}}


def test_transformers(serve):
    server = serve("Transformer")
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


def test_missing_methods_fall_back(serve):
    server = serve("Identity")
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
    body = serve("Transformer").post("/predict", json=ONE).json()
    assert body == {"data": {"names": [], "ndarray": []}, "meta": {}}


def test_seldon_component_subclass(serve):
    server = serve("Component")
    assert server.post("/predict", json=ONE).json()["data"]["ndarray"] == [[1]]
    assert server.post("/transform-input", json=ONE).json()["data"]["ndarray"] == [[1]]
    r = server.post("/route", json=ONE)
    assert (r.status_code, r.json()["status"]["info"]) == (400, "route is not implemented")
    assert server.get("/health/status").json()["strData"] == "not implemented - assuming healthy"


def test_route_answers_in_request_kind(serve):
    server = serve("Router")
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
def test_route_must_be_an_int(serve, mode):
    r = serve("Router").post("/route", json={"data": {"names": [mode], "ndarray": [1]}})
    assert r.status_code == 400
    assert r.json()["status"]["info"].startswith("Routing response must be int but got")


def test_route_gets_meta(serve):
    server = serve("Inspector")
    assert server.post("/route", json=ONE).json()["data"]["ndarray"] == [[0]]
    body = server.post("/route", json={**ONE, "meta": {"tags": {"a": 1, "b": 2}}}).json()
    assert body["data"]["ndarray"] == [[2]]


def test_aggregate_list_and_object_forms(serve):
    server = serve("Combiner")
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
def test_aggregate_bad_bodies_are_400(serve, body):
    r = serve("Combiner").post("/aggregate", json=body)
    assert r.status_code == 400
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_DATA"


def test_aggregate_passes_features_and_names(serve):
    out = (
        serve("Inspector")
        .post("/aggregate", json=[{"data": {"names": ["a"], "ndarray": [[1]]}}, {"strData": "s"}])
        .json()["jsonData"]
    )
    assert out["names"] == [["a"], []]
    assert [x["type"] for x in out["Xs"]] == ["ndarray", "str"]


def test_health_status_variants(fresh_server):
    assert fresh_server("Health", grpc=False).get("/health/status").json() == {
        "strData": "all good",
        "meta": {},
    }
    server = fresh_server(
        "Health",
        "--parameters",
        '[{"name": "mode", "value": "array", "type": "STRING"}]',
        grpc=False,
    )
    assert server.get("/health/status").json()["data"] == {
        "names": [],
        "tensor": {"shape": [2], "values": [0.5, 1.5]},
    }
    server = fresh_server(
        "Health",
        "--parameters",
        '[{"name": "mode", "value": "raise", "type": "STRING"}]',
        grpc=False,
    )
    r = server.get("/api/v1.0/health/status")
    assert r.status_code == 500 and r.json()["status"]["info"] == "database unreachable"


def test_health_status_raw(serve):
    assert serve("HealthRaw").get("/health/status").json() == {
        "strData": "raw healthy",
        "meta": {"tags": {"probe": "raw"}},
    }


def test_raw_methods(serve):
    server = serve("Raw")
    body = server.post("/predict", json={"data": {"ndarray": [[1, 2]]}}).json()
    assert body == {
        "data": {"names": ["double"], "ndarray": [[2.0, 4.0]]},
        "meta": {
            "tags": {"raw": "yes"},
            "metrics": [{"type": "COUNTER", "key": "raw_calls", "value": 1}],
        },
    }
    r = server.post("/api/v1.0/predictions", json={"jsonData": {"status": 418}})
    assert r.status_code == 418 and r.json()["status"]["reason"] == "RAW"
    r = server.post("/transform-input", json={"jsonData": {"status": 418}, "meta": {}})
    assert r.status_code == 200 and r.json() == {"jsonData": {"keys": ["jsonData", "meta"]}}
    assert server.post("/aggregate", json=[ONE, ONE]).json() == {"jsonData": {"count": 2}}
    assert server.post("/send-feedback", json={"request": ONE, "reward": 0.5}).json() == {
        "jsonData": {"type": "Feedback", "reward": 0.5}
    }


def test_deprecated_rest_methods(serve):
    server = serve("Deprecated")
    assert server.post("/predict", json=ONE).json() == {
        "jsonData": {"via": "predict_rest", "keys": ["data"]}
    }
    assert server.post("/send-feedback", json={"request": ONE, "reward": 2}).json() == {
        "strData": "got str 2.0"
    }


def test_payload_passthrough(fresh_server):
    server = fresh_server("Passthrough", env={"PAYLOAD_PASSTHROUGH": "true"}, grpc=False)
    r = server.post("/predict", content=b"not even json")
    assert (r.status_code, r.json()) == (200, {"kind": "bytes", "len": 13})
    r = server.get("/predict", params={"json": "abc"})
    assert r.json() == {"kind": "str", "len": 3}


def test_user_exceptions(serve):
    server = serve("Failing")
    r = server.post("/predict", json={"data": {"names": ["seldon"], "ndarray": [1]}})
    assert r.status_code == 403
    assert r.json() == {
        "status": {"code": -1, "info": "not for you", "reason": "FORBIDDEN", "status": 1}
    }
    r = server.post("/predict", json={"data": {"names": ["default"], "ndarray": [1]}})
    assert (r.status_code, r.json()["status"]["reason"]) == (400, "MICROSERVICE_BAD_DATA")
    r = server.post("/predict", json=ONE)
    assert r.status_code == 500
    assert r.json()["status"] == {
        "code": -1,
        "info": "predict failed on purpose",
        "reason": "MICROSERVICE_INTERNAL_ERROR",
        "status": 1,
    }
    assert server.post("/aggregate", json=[ONE]).status_code == 500
    assert "Traceback" not in r.text


def test_flask_blueprint_error_handler(serve):
    server = serve("ErrorHandler")
    r = server.post("/predict", json={"data": {"names": ["pay"], "ndarray": [1]}})
    assert r.status_code == 402
    assert r.json() == {"status": {"app_code": 1402, "message": "pay first"}}
    r = server.post("/predict", json={"data": {"names": ["plain"], "ndarray": [1]}})
    assert r.status_code == 500 and r.json()["status"]["info"] == "unhandled"
    assert server.post("/predict", json=ONE).status_code == 200


def test_async_user_methods(serve):
    server = serve("Asyncy")
    assert server.post("/predict", json={"data": {"ndarray": [[1, 2]]}}).json()["data"][
        "ndarray"
    ] == [[10, 20]]
    assert server.get("/health/status").json()["strData"] == "async healthy"


def test_feedback(serve):
    server = serve("Inspector")
    import json as _json

    body = server.post(
        "/send-feedback",
        json={
            "request": {"data": {"names": ["a"], "ndarray": [[1, 2]]}},
            "truth": {"data": {"ndarray": [[1]]}},
            "reward": 0.5,
        },
    ).json()
    got = _json.loads(body["strData"])
    assert got["features"]["value"] == [[1.0, 2.0]] and got["features"]["dtype"] == "float64"
    assert got["names"] == ["a"] and got["reward"] == 0.5 and got["routing"] is None
    assert got["truth"]["value"] == [[1.0]]
    for path in ("/api/v1.0/feedback", "/api/v0.1/feedback"):
        assert server.post(path, json={"request": {"strData": "x"}, "reward": 1}).status_code == 200


def test_feedback_routing_from_response_meta(serve):
    body = (
        serve("Router")
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


@pytest.mark.parametrize("body", [{"request": ONE, "bogus": 1}, {"reward": "high"}, [1, 2]])
def test_bad_feedback_is_400_invalid_json(serve, body):
    r = serve("Identity").post("/send-feedback", json=body)
    assert r.status_code == 400
    assert r.json()["status"]["info"].startswith("Invalid JSON")


def test_metadata(fresh_server):
    server = fresh_server("Metadata", grpc=False)
    body = server.get("/metadata").json()
    assert body["name"] == "my-model" and body["custom"] == {"loaded": "True"}
    assert server.get("/api/v1.0/metadata").json() == body


def test_metadata_defaults_env_and_invalid(fresh_server):
    server = fresh_server(
        "Identity",
        env={"PREDICTIVE_UNIT_IMAGE": "reg:5000/m:0.3", "MODEL_METADATA": "platform: yaml\n"},
        grpc=False,
    )
    assert server.get("/metadata").json() == {
        "name": "reg:5000/m",
        "versions": ["0.3"],
        "platform": "yaml",
        "inputs": [],
        "outputs": [],
        "custom": {},
    }
    server = fresh_server(
        "Metadata",
        "--parameters",
        '[{"name": "variant", "value": "invalid", "type": "STRING"}]',
        grpc=False,
    )
    r = server.get("/metadata")
    assert r.status_code == 500
    assert r.json() == {
        "status": {
            "code": -1,
            "info": "Model metadata unavailable",
            "reason": "MICROSERVICE_BAD_METADATA",
            "status": 1,
        }
    }


def test_bindata_multipart_roundtrip(serve):
    r = serve("Identity").post("/predict", files={"binData": ("x.bin", b"\x00\xff")})
    assert base64.b64decode(r.json()["binData"]) == b"\x00\xff"


@pytest.mark.parametrize("preload", [False, True])
def test_async_load_and_init_metadata_are_awaited(fresh_server, preload):
    server = fresh_server("AsyncLoad", *(["--preload"] if preload else []), grpc=False)
    assert server.post("/predict", json=ONE).json()["jsonData"] == {"loaded": True}
    metadata = server.get("/metadata").json()
    assert metadata["name"] == "async-model" and metadata["custom"] == {"loaded": "True"}
