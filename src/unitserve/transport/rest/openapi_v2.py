"""The Open Inference Protocol's part of the served OpenAPI document: the ``/v2``
paths of transport/rest/v2.py, with their request and answer schemas and examples.

The model's name and version are path parameters here; the server answers only the
name (and version) it serves, and 404 for any other.
"""

from __future__ import annotations

from typing import Any

from unitserve.protocol.v2.datatypes import BY_NAME
from unitserve.protocol.v2.model_metadata import EXTENSIONS, SERVER_NAME
from unitserve.version import __version__

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


_PARAMETERS = {
    "type": "object",
    "description": "Free-form parameters (protocol extensions); values are strings, "
    "numbers or booleans.",
    "additionalProperties": {
        "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]
    },
}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_DATATYPE = {"type": "string", "enum": list(BY_NAME)}
_TENSOR_DATA = {
    "description": "The values, row-major: flat or nested as the shape; BYTES values are "
    "strings. Absent when the tensor travels in the binary part of the body.",
    "oneOf": [
        {"type": "array", "items": {}},
        {"type": "number"},
        {"type": "string"},
        {"type": "boolean"},
    ],
}

# A tensor's fields, the same in a request's inputs and an answer's outputs.
_TENSOR_PROPERTIES = {
    "name": {"type": "string"},
    "shape": _SHAPE,
    "datatype": _DATATYPE,
    "parameters": _PARAMETERS,
    "data": _TENSOR_DATA,
}

SCHEMAS: dict[str, Any] = {
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "What is wrong"}},
    },
    "V2RequestInput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": _TENSOR_PROPERTIES,
    },
    "V2RequestOutput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
    },
    "V2InferenceRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "inputs": {"type": "array", "items": _ref("V2RequestInput"), "minItems": 1},
            "outputs": {"type": "array", "items": _ref("V2RequestOutput")},
        },
    },
    "V2ResponseOutput": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": _TENSOR_PROPERTIES,
    },
    "V2InferenceResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "outputs": {"type": "array", "items": _ref("V2ResponseOutput")},
        },
    },
    "V2TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": _DATATYPE,
            "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
            "parameters": _PARAMETERS,
        },
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("V2TensorMetadata")},
            "outputs": {"type": "array", "items": _ref("V2TensorMetadata")},
            "parameters": _PARAMETERS,
        },
    },
    "V2Live": {"type": "object", "required": ["live"], "properties": {"live": {"type": "boolean"}}},
    "V2Ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "V2ModelReady": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "V2RepositoryIndexRequest": {
        "type": "object",
        "properties": {"ready": {"type": "boolean", "description": "Only the ready models"}},
    },
    "V2RepositoryIndex": {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "state": {"type": "string", "enum": ["READY", "UNAVAILABLE", "LOADING"]},
                "reason": {"type": "string"},
            },
        },
    },
    "V2RepositoryLoadRequest": {
        "type": "object",
        "properties": {"parameters": _PARAMETERS},
    },
}

INFER_EXAMPLE = {
    "id": "42",
    "inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}],
}
_INFER_ANSWER_EXAMPLE = {
    "model_name": "MyModel",
    "id": "42",
    "outputs": [{"name": "output-0", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}],
}


def _json(schema: dict[str, Any], example: Any, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


def _error(description: str, example: str) -> dict[str, Any]:
    return _json(_ref("V2Error"), {"error": example}, description)


_NOT_FOUND = _error("No such model (or version) here", "model 'other' is not served here")
_MODEL = {"name": "model_name", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION = {"name": "model_version", "in": "path", "required": True, "schema": {"type": "string"}}


def _get(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"summary": summary, "tags": ["Open Inference Protocol"], "responses": responses}


def _post(summary: str, body: dict[str, Any], responses: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": ["Open Inference Protocol"],
        "requestBody": body,
        "responses": responses,
    }


def _body(schema: str, example: Any, required: bool = True) -> dict[str, Any]:
    return {
        "required": required,
        "content": {"application/json": {"schema": _ref(schema), "example": example}},
    }


def paths() -> dict[str, dict[str, Any]]:
    """Every /v2 path the server answers, GET or POST as it answers them."""
    server_meta = {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}
    model_meta = {
        "name": "MyModel",
        "versions": [],
        "platform": "unitserve",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 2]}],
        "outputs": [{"name": "output-0", "datatype": "FP64", "shape": [-1, 2]}],
    }
    not_ready = _error("The model is not ready", "model 'MyModel' is not ready: loading")
    infer = _post(
        "Inference",
        _body("V2InferenceRequest", INFER_EXAMPLE),
        {
            "200": _json(_ref("V2InferenceResponse"), _INFER_ANSWER_EXAMPLE, "The outputs"),
            "400": _error("The request is not valid", "inputs must be a list"),
            "404": _NOT_FOUND,
            "413": _error("The body is larger than --max-body-size", "request body too large"),
            "500": _error("The model failed", "predict failed"),
            "503": not_ready,
        },
    )
    metadata = _get(
        "Model metadata",
        {
            "200": _json(_ref("V2ModelMetadata"), model_meta, "The model's metadata"),
            "404": _NOT_FOUND,
            "503": not_ready,
        },
    )
    ready = _get(
        "Model readiness",
        {
            "200": _json(_ref("V2ModelReady"), {"name": "MyModel", "ready": True}, "Ready"),
            "404": _NOT_FOUND,
            "503": _json(_ref("V2ModelReady"), {"name": "MyModel", "ready": False}, "Not ready"),
        },
    )
    with_model = {"parameters": [_MODEL]}
    with_version = {"parameters": [_MODEL, _VERSION]}
    load_unload = {
        "200": {"description": "Done (no body)"},
        "400": _error("The request is not valid", "parameters must be a JSON object"),
        "404": _NOT_FOUND,
    }
    return {
        "/v2": {
            "get": _get(
                "Server metadata",
                {"200": _json(_ref("V2ServerMetadata"), server_meta, "The server")},
            )
        },
        "/v2/health/live": {
            "get": _get("Server liveness", {"200": _json(_ref("V2Live"), {"live": True}, "Live")})
        },
        "/v2/health/ready": {
            "get": _get(
                "Server readiness",
                {
                    "200": _json(_ref("V2Ready"), {"ready": True}, "Ready"),
                    "503": _json(_ref("V2Ready"), {"ready": False}, "Not ready"),
                },
            )
        },
        "/v2/models/{model_name}": {**with_model, "get": metadata},
        "/v2/models/{model_name}/ready": {**with_model, "get": ready},
        "/v2/models/{model_name}/infer": {**with_model, "post": infer},
        "/v2/models/{model_name}/versions/{model_version}": {**with_version, "get": metadata},
        "/v2/models/{model_name}/versions/{model_version}/ready": {**with_version, "get": ready},
        "/v2/models/{model_name}/versions/{model_version}/infer": {**with_version, "post": infer},
        "/v2/repository/index": {
            "post": _post(
                "The repository's models",
                _body("V2RepositoryIndexRequest", {"ready": False}, required=False),
                {
                    "200": _json(
                        _ref("V2RepositoryIndex"),
                        [{"name": "MyModel", "state": "READY"}],
                        "The models",
                    ),
                    "400": _error("The request is not valid", "ready must be true or false"),
                },
            )
        },
        "/v2/repository/models/{model_name}/load": {
            **with_model,
            "post": _post(
                "Load the model (again)",
                _body("V2RepositoryLoadRequest", {}, required=False),
                load_unload,
            ),
        },
        "/v2/repository/models/{model_name}/unload": {
            **with_model,
            "post": _post(
                "Unload the model (its requests are answered 503 until it is loaded)",
                _body("V2RepositoryLoadRequest", {}, required=False),
                load_unload,
            ),
        },
    }
