"""The served OpenAPI document is valid OpenAPI 3 and names every served path with
request and answer schemas and examples; GET /docs serves the page over it from the
package's own files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.engine_harness import fixture_model, serving
from tests.unit.graph_harness import GraphHarness
from unitserve.transport.rest.app import ROUTES
from unitserve.transport.rest.openapi import document
from unitserve.transport.rest.routes import DEPLOYMENT_ROUTES

openapi_spec_validator = pytest.importorskip("openapi_spec_validator")

# Every /v2 route of transport/rest/v2.py, with the model's name and version as
# parameters.
V2_PATHS = {
    "/v2": "get",
    "/v2/health/live": "get",
    "/v2/health/ready": "get",
    "/v2/models/{model_name}": "get",
    "/v2/models/{model_name}/ready": "get",
    "/v2/models/{model_name}/infer": "post",
    "/v2/models/{model_name}/versions/{model_version}": "get",
    "/v2/models/{model_name}/versions/{model_version}/ready": "get",
    "/v2/models/{model_name}/versions/{model_version}/infer": "post",
    "/v2/repository/index": "post",
    "/v2/repository/models/{model_name}/load": "post",
    "/v2/repository/models/{model_name}/unload": "post",
}


@pytest.mark.parametrize("v2", [True, False])
def test_the_document_is_valid_openapi_3(v2: bool):
    openapi_spec_validator.validate(document(v2=v2))


def test_every_served_path_is_named():
    paths = document()["paths"]
    for path, route in ROUTES.items():
        assert path in paths, path
        assert {m.upper() for m in paths[path]} <= set(route.methods), path
    for path, method in V2_PATHS.items():
        assert method in paths.get(path, {}), path
    assert set(paths) == set(ROUTES) | set(V2_PATHS)
    assert not any(p.startswith("/v2") for p in document(v2=False)["paths"])


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in ("get", "post")
    ]


@pytest.mark.parametrize("path, method, op", _operations(), ids=lambda x: str(x)[:60])
def test_each_operation_has_schemas_and_examples(path: str, method: str, op: dict[str, Any]):
    if method == "post":
        media = op["requestBody"]["content"]["application/json"]
        assert "schema" in media and "example" in media, path
    ok = op["responses"]["200"]
    if "content" in ok:  # a load or unload answers 200 with no body
        (media,) = [m for t, m in ok["content"].items() if t in ("application/json", "text/html")]
        assert "schema" in media and "example" in media, path
    for status, answer in op["responses"].items():
        for media in answer.get("content", {}).values():
            if "example" not in media:
                assert "encoding" in media or status == "200", (path, status)


def test_the_examples_are_what_the_server_takes_and_answers():
    """The request examples the page offers to send are taken: answered 200 by an
    echoing model, or refused only because it has not the method."""
    doc = document()
    with serving(fixture_model("Identity")) as h:
        for path, method, op in _operations():
            if method != "post" or "{model_version}" in path or "repository" in path:
                continue
            example = op["requestBody"]["content"]["application/json"]["example"]
            url = path.replace("{model_name}", "Identity")
            answer = h.post(url, json=example)
            if answer.status_code != 200:
                # taken, but the model has no such method (Identity only predicts)
                info = answer.json()["status"]["info"].lower()
                assert "not defined" in info or "not implemented" in info, (path, info)
    assert doc["paths"]["/v2/models/{model_name}/infer"]["post"]["requestBody"]["required"]


def test_the_docs_page_and_its_assets_come_from_the_package():
    with serving(fixture_model("Identity")) as h:
        page = h.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(s.startswith("docs/") for s in sources)  # nothing remote
        for source in sources:
            asset = h.get("/" + source)
            assert asset.status_code == 200 and len(asset.content) > 0, source
        assert "Apache License" in h.get("/docs/LICENSE").text  # the assets' licence is kept
        assert h.get("/docs/%2e%2e/app.py").status_code == 404  # only the listed files
        assert h.get("/docs/app.py").status_code == 404
        refused = h.post("/docs")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
        assert refused.json()["status"]["reason"] == "MICROSERVICE_METHOD_NOT_ALLOWED"


def test_docs_with_a_trailing_slash_is_sent_to_the_page():
    with serving(fixture_model("Identity")) as h:
        moved = h.get("/docs/")
        # Relative: it resolves to /docs here and to /prefix/docs behind a proxy.
        assert (moved.status_code, moved.headers["location"]) == (307, "../docs")
        assert h.get("/docs/", params={"a": "1"}).headers["location"] == "../docs?a=1"
        assert h.request("HEAD", "/docs/").status_code == 307
        refused = h.post("/docs/")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
        followed = httpx.URL("http://127.0.0.1/docs/").join(moved.headers["location"])
        assert followed.path == "/docs" and h.get(followed.path).status_code == 200


@pytest.mark.parametrize("v2", [True, False])
def test_the_title_names_the_protocols_served(v2: bool):
    info = document(v2=v2)["info"]
    assert "Seldon protocol" in info["title"]
    assert ("Open Inference Protocol" in info["title"]) == v2
    assert ("Open Inference Protocol" in info["description"]) == v2


def test_no_docs_turns_the_page_off():
    with serving(fixture_model("Identity"), flags={"docs": False}) as h:
        answer = h.get("/docs")
        assert answer.status_code == 404
        assert answer.json()["status"]["reason"] == "MICROSERVICE_NOT_FOUND"
        assert h.get("/docs/").status_code == 404


GRAPH = """
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: iris-chain}
spec:
  predictors:
  - name: p
    graph:
      name: in
      type: TRANSFORMER
      children:
      - name: model
"""


def test_the_graph_document_is_valid_openapi_3():
    openapi_spec_validator.validate(document(v2=False, deployment=True))


def test_a_graph_serves_the_document_of_the_paths_it_answers(tmp_path: Path):
    """A graph answers the orchestrator's API, not a component's: its document (which
    its docs page reads) lists those paths, each answered, and no /predict."""
    h = GraphHarness(GRAPH, {"in": "AddOne", "model": "Double"}, tmp_path)
    try:
        r = h.get("/seldon.json")
        assert r.status_code == 200
        paths = r.json()["paths"]
        assert set(paths) == set(DEPLOYMENT_ROUTES) | {
            "/api/v1.0/metadata/{node}",
            "/api/v1.0/status/{node}",
        }
        for path, item in paths.items():
            concrete = path.replace("{node}", "model")
            for method in item:
                answer = h.get(concrete) if method == "get" else h.post(concrete, json={})
                assert answer.status_code not in (404, 405), (method, concrete)
        assert h.get("/api/v1.0/metadata/nope").status_code == 404
        page = h.get("/docs")
        assert page.status_code == 200 and "<title>iris-chain - API</title>" in page.text
    finally:
        h.close()
