"""Schemathesis against the OpenAPI document the server serves at /seldon.json.

Requests generated from the document, valid ones and invalid ones, must get the
answers the document describes (status codes, content types, response schemas,
never a 5xx: the Inspector model never raises). Valid requests must be accepted,
except for the few rules JSON Schema cannot state, which the document states in
words (a rectangular ``ndarray``, as many tensor values as the shape needs).
Invalid requests are not required to be refused: the Seldon protocol reads
leniently (unknown keys and all but the first payload are ignored).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from .harness import TIMEOUT, Target, check_error_body, fuzz

# The 400 reasons for what a schema-valid request can still get wrong (see above).
INEXPRESSIBLE = (
    "is not a rectangular array",
    "values but shape",
    "describes",  # a shape implying too many elements (codec/shapes.py)
    "holds no elements",  # an empty shape whose other dimensions are too large (same)
    "more than numpy supports",
    "tftensor",
    "must be a flat list",
)


@pytest.fixture(scope="module")
def inspector(target: Callable[..., Target]) -> Target:
    return target("Inspector")


@pytest.fixture(scope="module")
def api(inspector: Target) -> schemathesis.BaseSchema:
    # The Seldon protocol's paths: the checks below are its error body and rules. The
    # document's /v2 paths are checked by tests/unit/test_api_docs.py and the Open
    # Inference Protocol's own tests.
    schema = schemathesis.openapi.from_url(f"{inspector.server.url}/seldon.json")
    return schema.exclude(path_regex=r"^/v2")


def _json_body(case: schemathesis.Case) -> bool:
    # Schemathesis ignores the `encoding` that makes a form's json= field JSON text and
    # would send random text there; the form encoding is fuzzed in test_fuzz_rest.py.
    return case.media_type in (None, "application/json")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_document(
    api: schemathesis.BaseSchema, inspector: Target, mode: GenerationMode
) -> None:
    @fuzz(60)
    @given(case=api.as_strategy(generation_mode=mode).filter(_json_body))
    def run(case: schemathesis.Case) -> None:
        inspector.new_log()
        response = case.call(base_url=inspector.server.url, timeout=TIMEOUT)
        # Server errors are judged by the fuzz invariants (which know the model's own).
        case.validate_response(
            response,
            excluded_checks=[not_a_server_error, positive_data_acceptance, negative_data_rejection],
        )
        content_type = response.headers.get("content-type", [None])[0]
        inspector.check_parts(
            case.method, case.path, response.status_code, content_type, response.content
        )
        if mode == GenerationMode.POSITIVE and response.status_code == 400:
            info = check_error_body(response.content)["info"]
            assert any(phrase in info for phrase in INEXPRESSIBLE), (case.body, info)
        inspector.check_alive()

    run()
