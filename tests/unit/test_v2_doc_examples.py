"""The worked examples of docs/open-inference-protocol.md are what the server does: each
class is taken from the page's own text as a reader copies it (a file of its own, nothing
added), served in-process, and sent the request the page shows; the answer must be the one
the page shows."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.docs_blocks import ROOT, page_class

from .engine_harness import Harness

PAGE = ROOT / "docs" / "open-inference-protocol.md"


X22 = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}
WORDS = {
    "name": "words",
    "shape": [2],
    "datatype": "BYTES",
    "data": ["hello", "world"],
    "parameters": {"content_type": "str"},
}

# (case, class name, service type, request, status, answer as the server writes it)
CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    (
        "one input",
        "Double",
        "MODEL",
        {"id": "1", "inputs": [X22]},
        200,
        '{"id":"1","model_name":"Double","outputs":[{"data":[2.0,4.0,6.0,8.0],'
        '"datatype":"FP32","name":"output-0","shape":[2,2]}]}',
    ),
    (
        "several inputs",
        "Sum",
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
        "Names",
        "MODEL",
        {"id": "3", "inputs": [{**X22, "parameters": {"feature_names": ["height", "width"]}}]},
        200,
        '{"id":"3","model_name":"Names","outputs":[{"data":["height","width"],'
        '"datatype":"BYTES","name":"output-0","shape":[2]}]}',
    ),
    (
        "tags",
        "Greeter",
        "MODEL",
        {"id": "4", "parameters": {"user": "ann"}, "inputs": [X22]},
        200,
        '{"id":"4","model_name":"Greeter","outputs":[{"data":["ann"],"datatype":"BYTES",'
        '"name":"output-0","shape":[1]}],"parameters":{"model_version":"7","user":"ann"}}',
    ),
    (
        "a dict",
        "Labels",
        "MODEL",
        {"id": "5", "inputs": [X22]},
        200,
        '{"id":"5","model_name":"Labels","outputs":[{"data":["cat","dog"],"datatype":"BYTES",'
        '"name":"label","shape":[2]},{"data":[0.9,0.8],"datatype":"FP64","name":"score",'
        '"shape":[2]}]}',
    ),
    (
        "a tuple",
        "Stats",
        "MODEL",
        {"id": "6", "inputs": [X22]},
        200,
        '{"id":"6","model_name":"Stats","outputs":[{"data":[3.0,7.0],"datatype":"FP32",'
        '"name":"output-0","shape":[2]},{"data":[2.0,4.0],"datatype":"FP32",'
        '"name":"output-1","shape":[2]}]}',
    ),
    (
        "str",
        "Shout",
        "MODEL",
        {"id": "7", "inputs": [WORDS]},
        200,
        '{"id":"7","model_name":"Shout","outputs":[{"data":["HELLO WORLD"],"datatype":"BYTES",'
        '"name":"output-0","shape":[1]}]}',
    ),
    (
        "class names",
        "Classifier",
        "MODEL",
        {"id": "8", "inputs": [X22]},
        200,
        '{"id":"8","model_name":"Classifier","outputs":[{"data":[0.2,0.8,0.2,0.8],'
        '"datatype":"FP64","name":"output-0","parameters":{"class_names":["no","yes"]},'
        '"shape":[2,2]}]}',
    ),
    (
        "requested outputs",
        "Labels",
        "MODEL",
        {"id": "9", "inputs": [X22], "outputs": [{"name": "score"}]},
        200,
        '{"id":"9","model_name":"Labels","outputs":[{"data":[0.9,0.8],"datatype":"FP64",'
        '"name":"score","shape":[2]}]}',
    ),
    (
        "unknown requested output",
        "Labels",
        "MODEL",
        {"id": "10", "inputs": [X22], "outputs": [{"name": "colour"}]},
        400,
        "{\"error\":\"requested output 'colour' is not among the model's outputs "
        "('label', 'score')\"}",
    ),
    (
        "raw",
        "Counter",
        "MODEL",
        {"id": "11", "inputs": [X22]},
        200,
        '{"model_name":"Counter","outputs":[{"data":[1],"datatype":"INT64","name":"n",'
        '"shape":[1]}]}',
    ),
    (
        "transformer",
        "Scale",
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
        "ArgMax",
        "OUTPUT_TRANSFORMER",
        {"id": "13", "inputs": [X22]},
        200,
        '{"id":"13","model_name":"ArgMax","outputs":[{"data":[1,1],"datatype":"INT64",'
        '"name":"output-0","shape":[2]}]}',
    ),
    (
        "router",
        "Chooser",
        "ROUTER",
        {"id": "14", "inputs": [X22]},
        400,
        '{"error":"a ROUTER has no inference on the Open Inference Protocol: it answers the '
        "Seldon protocol only (serve the component as a MODEL, TRANSFORMER or "
        'OUTPUT_TRANSFORMER)"}',
    ),
]


def served(name: str, service: str, request: dict[str, Any]) -> Any:
    h = Harness(page_class(PAGE, name)(), flags={"service_type": service})
    try:
        return h.post(f"/v2/models/{name}/infer", content=orjson.dumps(request))
    finally:
        h.close()


@pytest.mark.parametrize(
    ("name", "service", "request_body", "status", "answer"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_page_shows_what_the_server_does(
    name: str, service: str, request_body: dict[str, Any], status: int, answer: str
) -> None:
    page = PAGE.read_text()
    assert orjson.dumps(request_body).decode() in page, f"the page lacks the request of {name}"
    assert answer in page, f"the page lacks the answer of {name}"
    r = served(name, service, request_body)
    assert (r.status_code, r.text.rstrip("\n")) == (status, answer)
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
