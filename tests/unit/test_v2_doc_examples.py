"""The worked examples of docs/open-inference-protocol.md are what the server does: each
case below is served in-process, its answer must be the one the page shows, and the page
must show the class, the request and the answer exactly as they are here."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from .engine_harness import Harness

PAGE = Path(__file__).resolve().parents[2] / "docs" / "open-inference-protocol.md"


class Double:
    def predict(self, X, feature_names):
        return X * 2


class Sum:
    def predict(self, X, feature_names):
        return X["a"] + X["b"]


class Names:
    def predict(self, X, feature_names):
        return np.array(feature_names)


class Greeter:
    def predict(self, X, feature_names, meta):
        return np.array([meta["tags"]["user"]])

    def tags(self):
        return {"model_version": "7"}


class Labels:
    def predict(self, X, feature_names):
        return {"label": np.array(["cat", "dog"]), "score": np.array([0.9, 0.8])}


class Stats:
    def predict(self, X, feature_names):
        return X.sum(axis=1), X.max(axis=1)


class Shout:
    def predict(self, X, feature_names):
        return " ".join(X.tolist()).upper()


class Classifier:
    def predict(self, X, feature_names):
        return np.tile([0.2, 0.8], (len(X), 1))

    def class_names(self):
        return ["no", "yes"]


class Counter:
    def predict_raw(self, request):
        n = len(request["inputs"])
        out = {"name": "n", "datatype": "INT64", "shape": [1], "data": [n]}
        return {"model_name": "Counter", "outputs": [out]}


class Scale:
    def transform_input(self, X, feature_names):
        return X / 255


class ArgMax:
    def transform_output(self, X, feature_names):
        return X.argmax(axis=1)


class Chooser:
    def route(self, X, feature_names):
        return 0


X22 = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}
WORDS = {
    "name": "words",
    "shape": [2],
    "datatype": "BYTES",
    "data": ["hello", "world"],
    "parameters": {"content_type": "str"},
}

# (case, class, service type, request, status, answer as the server writes it)
CASES: list[tuple[str, type, str, dict[str, Any], int, str]] = [
    (
        "one input",
        Double,
        "MODEL",
        {"id": "1", "inputs": [X22]},
        200,
        '{"id":"1","model_name":"Double","outputs":[{"data":[2.0,4.0,6.0,8.0],'
        '"datatype":"FP32","name":"output-0","shape":[2,2]}]}',
    ),
    (
        "several inputs",
        Sum,
        "MODEL",
        {
            "id": "2",
            "inputs": [
                {"name": "a", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                {"name": "b", "shape": [2], "datatype": "INT64", "data": [10, 20]},
            ],
        },
        200,
        '{"id":"2","model_name":"Sum","outputs":[{"data":[11,22],"datatype":"INT64",'
        '"name":"output-0","shape":[2]}]}',
    ),
    (
        "feature names",
        Names,
        "MODEL",
        {"id": "3", "inputs": [{**X22, "parameters": {"feature_names": ["height", "width"]}}]},
        200,
        '{"id":"3","model_name":"Names","outputs":[{"data":["height","width"],'
        '"datatype":"BYTES","name":"output-0","shape":[2]}]}',
    ),
    (
        "tags",
        Greeter,
        "MODEL",
        {"id": "4", "parameters": {"user": "ann"}, "inputs": [X22]},
        200,
        '{"id":"4","model_name":"Greeter","outputs":[{"data":["ann"],"datatype":"BYTES",'
        '"name":"output-0","shape":[1]}],"parameters":{"model_version":"7","user":"ann"}}',
    ),
    (
        "a dict",
        Labels,
        "MODEL",
        {"id": "5", "inputs": [X22]},
        200,
        '{"id":"5","model_name":"Labels","outputs":[{"data":["cat","dog"],"datatype":"BYTES",'
        '"name":"label","shape":[2]},{"data":[0.9,0.8],"datatype":"FP64","name":"score",'
        '"shape":[2]}]}',
    ),
    (
        "a tuple",
        Stats,
        "MODEL",
        {"id": "6", "inputs": [X22]},
        200,
        '{"id":"6","model_name":"Stats","outputs":[{"data":[3.0,7.0],"datatype":"FP32",'
        '"name":"output-0","shape":[2]},{"data":[2.0,4.0],"datatype":"FP32",'
        '"name":"output-1","shape":[2]}]}',
    ),
    (
        "str",
        Shout,
        "MODEL",
        {"id": "7", "inputs": [WORDS]},
        200,
        '{"id":"7","model_name":"Shout","outputs":[{"data":["HELLO WORLD"],"datatype":"BYTES",'
        '"name":"output-0","shape":[1]}]}',
    ),
    (
        "class names",
        Classifier,
        "MODEL",
        {"id": "8", "inputs": [X22]},
        200,
        '{"id":"8","model_name":"Classifier","outputs":[{"data":[0.2,0.8,0.2,0.8],'
        '"datatype":"FP64","name":"output-0","parameters":{"class_names":["no","yes"]},'
        '"shape":[2,2]}]}',
    ),
    (
        "requested outputs",
        Labels,
        "MODEL",
        {"id": "9", "inputs": [X22], "outputs": [{"name": "score"}]},
        200,
        '{"id":"9","model_name":"Labels","outputs":[{"data":[0.9,0.8],"datatype":"FP64",'
        '"name":"score","shape":[2]}]}',
    ),
    (
        "unknown requested output",
        Labels,
        "MODEL",
        {"id": "10", "inputs": [X22], "outputs": [{"name": "colour"}]},
        400,
        "{\"error\":\"requested output 'colour' is not among the model's outputs "
        "('label', 'score')\"}",
    ),
    (
        "raw",
        Counter,
        "MODEL",
        {"id": "11", "inputs": [X22]},
        200,
        '{"model_name":"Counter","outputs":[{"data":[1],"datatype":"INT64","name":"n",'
        '"shape":[1]}]}',
    ),
    (
        "transformer",
        Scale,
        "TRANSFORMER",
        {
            "id": "12",
            "inputs": [{"name": "x", "shape": [2], "datatype": "UINT8", "data": [0, 255]}],
        },
        200,
        '{"id":"12","model_name":"Scale","outputs":[{"data":[0.0,1.0],"datatype":"FP64",'
        '"name":"output-0","shape":[2]}]}',
    ),
    (
        "output transformer",
        ArgMax,
        "OUTPUT_TRANSFORMER",
        {"id": "13", "inputs": [X22]},
        200,
        '{"id":"13","model_name":"ArgMax","outputs":[{"data":[1,1],"datatype":"INT64",'
        '"name":"output-0","shape":[2]}]}',
    ),
    (
        "router",
        Chooser,
        "ROUTER",
        {"id": "14", "inputs": [X22]},
        400,
        '{"error":"a ROUTER has no inference on the Open Inference Protocol: it answers the '
        "Seldon protocol only (serve the component as a MODEL, TRANSFORMER or "
        'OUTPUT_TRANSFORMER)"}',
    ),
]


def served(cls: type, service: str, request: dict[str, Any]) -> Any:
    h = Harness(cls(), flags={"service_type": service})
    try:
        return h.post(f"/v2/models/{cls.__name__}/infer", content=orjson.dumps(request))
    finally:
        h.close()


@pytest.mark.parametrize(
    ("cls", "service", "request_body", "status", "answer"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_page_shows_what_the_server_does(
    cls: type, service: str, request_body: dict[str, Any], status: int, answer: str
) -> None:
    r = served(cls, service, request_body)
    assert (r.status_code, r.text.rstrip("\n")) == (status, answer)
    page = PAGE.read_text()
    assert inspect.getsource(cls) in page, f"the page lacks the class {cls.__name__}"
    assert orjson.dumps(request_body).decode() in page, f"the page lacks the request of {cls}"
    assert answer in page, f"the page lacks the answer of {cls.__name__}"
    if service != "MODEL":
        assert f"--service-type {service}" in page


def test_the_page_shows_every_endpoint_and_rpc() -> None:
    page = PAGE.read_text()
    for path in (
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{name}[/versions/{version}]",
        "/v2/repository/index",
        "/v2/repository/models/{name}/load",
    ):
        assert path in page, path
    for rpc in (
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "RepositoryIndex",
        "RepositoryModelLoad",
        "RepositoryModelUnload",
    ):
        assert rpc in page, rpc
    for name in ("--model-name", "--model-version", "UNITSERVE_MODEL_NAME"):
        assert name in page, name
