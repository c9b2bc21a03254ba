"""The OpenAPI 3.0 document served at ``/seldon.json``: the SeldonMessage REST API.

Written from the Seldon wire format (our own text). Kept as data so that tests
and fuzzers (schemathesis) can read the same contract the server serves. Its
paths are those of the route table, aliases included: each path is documented
by what its operation takes and answers.

Two JSON forms live side by side. Predict, transform, route and aggregate bodies
are read loosely (unknown keys ignored, as Seldon does): `SeldonMessage`. Feedback is
parsed strictly as the protobuf JSON mapping (unknown keys, two payloads, or a
number out of a field's range are refused): `Feedback` and its `Proto*`
schemas say so with ``additionalProperties: false`` and the protobuf ranges.
What JSON Schema cannot say (an ``ndarray`` is rectangular, a tensor carries
exactly ``prod(shape)`` values) is said in the descriptions; breaking it is a 400.
"""

from __future__ import annotations

from typing import Any

from unitserve.protocol.seldon import tftensor
from unitserve.transport.rest import openapi_v2
from unitserve.transport.rest.routes import DEPLOYMENT_ROUTES, MEMBER_PREFIXES, ROUTES
from unitserve.version import __version__

_REF = "#/components/schemas/"
_TENSOR_RULE = (
    "values holds exactly prod(shape) numbers, row-major; a zero-size shape may describe "
    "at most 2**20 elements in its other dimensions."
)
_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_FLOAT32 = {"type": "number", "minimum": -3.4e38, "maximum": 3.4e38}
_PAYLOADS = ("data", "binData", "strData", "jsonData")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _strict(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False, **extra}


def _at_most_one(names: tuple[str, ...]) -> dict[str, Any]:
    """A protobuf oneof: two of `names` together are refused."""
    pairs = [[a, b] for i, a in enumerate(names) for b in names[i + 1 :]]
    return {"not": {"anyOf": [{"required": pair} for pair in pairs]}}


_TENSOR_PROTO = _strict(
    {
        "dtype": {"type": "string", "enum": tftensor.type_names()},
        "tensorShape": _strict(
            {
                "dim": {
                    "type": "array",
                    "items": _strict(
                        {"size": {"type": "integer", "minimum": 0}, "name": {"type": "string"}}
                    ),
                }
            }
        ),
        "tensorContent": {"type": "string", "format": "byte"},
        "floatVal": {"type": "array", "items": _FLOAT32},
        "doubleVal": {"type": "array", "items": {"type": "number"}},
        "intVal": {"type": "array", "items": _INT32},
        "int64Val": {"type": "array", "items": {"type": "integer"}},
        "boolVal": {"type": "array", "items": {"type": "boolean"}},
        "stringVal": {"type": "array", "items": {"type": "string", "format": "byte"}},
    },
    required=["dtype"],
    description=(
        "TensorFlow TensorProto in proto3 JSON. tensorContent (little-endian bytes) or the "
        "*Val field of the dtype holds the values: as many as the shape needs, or one "
        "(it fills the shape), or none (zeros); a shape may imply at most 2**20 elements "
        "beyond the values sent."
    ),
)

_SCHEMAS: dict[str, Any] = {
    "Tensor": {
        "type": "object",
        "required": ["shape"],
        "description": _TENSOR_RULE,
        "properties": {
            # Larger integers are read as doubles, like every JSON number beyond 64 bits.
            "shape": {
                "type": "array",
                "items": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            },
            "values": {"type": "array", "items": {"type": "number"}},
        },
    },
    "DefaultData": {
        "type": "object",
        "description": "At most one of tensor, ndarray, tftensor (the first present is used).",
        "properties": {
            "names": {"type": "array", "items": {"type": "string"}},
            "tensor": _ref("Tensor"),
            "ndarray": {
                "type": "array",
                "items": {},
                "description": "A rectangular nested array (every row the same length).",
            },
            "tftensor": _ref("TensorProto"),
        },
    },
    "TensorProto": _TENSOR_PROTO,
    "Metric": {
        "type": "object",
        "required": ["key", "type", "value"],
        "properties": {
            "key": {"type": "string"},
            "type": {"type": "string", "enum": ["COUNTER", "GAUGE", "TIMER"]},
            "value": {"type": "number"},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Meta": {
        "type": "object",
        "properties": {
            "puid": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": {}},
            "routing": {"type": "object", "additionalProperties": {"type": "integer"}},
            "requestPath": {"type": "object", "additionalProperties": {"type": "string"}},
            "metrics": {"type": "array", "items": _ref("Metric")},
        },
    },
    "Status": {
        "type": "object",
        "properties": {
            "code": {"type": "integer"},
            "info": {"type": "string"},
            "reason": {"type": "string"},
            "status": {
                "oneOf": [{"type": "integer"}, {"type": "string", "enum": ["SUCCESS", "FAILURE"]}]
            },
        },
    },
    "SeldonMessage": {
        "type": "object",
        "description": (
            "One of data, binData (base64), strData or jsonData; when several are present "
            "the first in that order is used. Other keys are ignored."
        ),
        "anyOf": [{"required": [name]} for name in _PAYLOADS],
        "properties": {
            "status": _ref("Status"),
            "meta": _ref("Meta"),
            "data": _ref("DefaultData"),
            "binData": {"type": "string", "format": "byte"},
            "strData": {"type": "string"},
            "jsonData": {},
        },
    },
    # What the server answers: request meta is echoed as sent (Seldon does not check
    # it), and names are whatever class_names() returns.
    "SeldonAnswer": {
        "type": "object",
        "properties": {
            "status": _ref("Status"),
            "meta": {
                "type": "object",
                "description": "The request's meta (puid, tags, metrics, requestPath, echoed "
                "as sent) merged with the model's tags and metrics.",
                "properties": {
                    "puid": {},
                    "tags": {},
                    "requestPath": {"type": "object"},
                    "metrics": {"type": "array"},
                },
            },
            "data": {
                "type": "object",
                "properties": {
                    "names": {"type": "array"},
                    "tensor": _ref("Tensor"),
                    "ndarray": {"type": "array"},
                    "tftensor": {"type": "object"},
                },
            },
            "binData": {"type": "string", "format": "byte"},
            "strData": {"type": "string"},
            "jsonData": {},
        },
    },
    "SeldonMessageList": {
        "type": "object",
        "required": ["seldonMessages"],
        "properties": {
            "seldonMessages": {"type": "array", "minItems": 1, "items": _ref("SeldonMessage")}
        },
    },
    # Feedback: the protobuf JSON mapping, parsed strictly.
    "ProtoTensor": _strict(
        {
            "shape": {"type": "array", "minItems": 1, "items": {**_INT32, "minimum": 0}},
            "values": {"type": "array", "items": {"type": "number"}},
        },
        required=["shape"],
        description=_TENSOR_RULE,
    ),
    "ProtoDefaultData": _strict(
        {
            "names": {"type": "array", "items": {"type": "string"}},
            "tensor": _ref("ProtoTensor"),
            "ndarray": {
                "type": "array",
                "items": {},
                "description": "A rectangular nested array (every row the same length).",
            },
            "tftensor": _ref("TensorProto"),
        },
        **_at_most_one(("tensor", "ndarray", "tftensor")),
    ),
    "ProtoMetric": _strict(
        {
            "key": {"type": "string"},
            "type": {"type": "string", "enum": ["COUNTER", "GAUGE", "TIMER"]},
            "value": _FLOAT32,
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        }
    ),
    "ProtoMeta": _strict(
        {
            "puid": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": {}},
            "routing": {"type": "object", "additionalProperties": _INT32},
            "requestPath": {"type": "object", "additionalProperties": {"type": "string"}},
            "metrics": {"type": "array", "items": _ref("ProtoMetric")},
        }
    ),
    "ProtoStatus": _strict(
        {
            "code": _INT32,
            "info": {"type": "string"},
            "reason": {"type": "string"},
            "status": {"type": "string", "enum": ["SUCCESS", "FAILURE"]},
        }
    ),
    "ProtoSeldonMessage": _strict(
        {
            "status": _ref("ProtoStatus"),
            "meta": _ref("ProtoMeta"),
            "data": _ref("ProtoDefaultData"),
            "binData": {"type": "string", "format": "byte"},
            "strData": {"type": "string"},
            "jsonData": {},
        },
        description="At most one of data, binData, strData, jsonData.",
        **_at_most_one(_PAYLOADS),
    ),
    "Feedback": _strict(
        {
            "request": _ref("ProtoSeldonMessage"),
            "response": _ref("ProtoSeldonMessage"),
            "reward": _FLOAT32,
            "truth": _ref("ProtoSeldonMessage"),
        }
    ),
    "ErrorStatus": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {
                "type": "object",
                "required": ["code", "info", "reason", "status"],
                "properties": {
                    "code": {"type": "integer", "enum": [-1]},
                    "info": {"type": "string"},
                    "reason": {"type": "string"},
                    "status": {"type": "integer", "enum": [1]},
                },
            }
        },
    },
}


def _error(description: str, example: str = "the model failed: ValueError") -> dict[str, Any]:
    body = {"status": {"code": -1, "info": example, "reason": "MICROSERVICE_BAD_DATA", "status": 1}}
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("ErrorStatus"), "example": body}},
    }


# The examples the docs page offers to "try it out" with: each is an answer a model
# that echoes its input (the quick-start's) would give, or a request it takes.
MESSAGE_EXAMPLE = {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}}
_ANSWER_EXAMPLE = {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}, "meta": {}}
_EXAMPLES: dict[str, Any] = {
    "SeldonMessage": MESSAGE_EXAMPLE,
    "Feedback": {
        "request": MESSAGE_EXAMPLE,
        "response": {"data": {"ndarray": [[1.0, 2.0]]}},
        "reward": 1.0,
    },
    "aggregate": {"seldonMessages": [MESSAGE_EXAMPLE, MESSAGE_EXAMPLE]},
}


_ERRORS = {
    "400": _error("The request is not a valid SeldonMessage, or the model rejected it"),
    "413": _error("The request body is larger than --max-body-size"),
    "500": _error("The model failed"),
}


def _json(
    schema: dict[str, Any], example: Any = None, description: str = "The answer"
) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"application/json": media}}


def _post(summary: str, body: str | dict[str, Any]) -> dict[str, Any]:
    schema = _ref(body) if isinstance(body, str) else body
    example = _EXAMPLES["aggregate" if not isinstance(body, str) else body]
    form = {
        "schema": {"type": "object", "properties": {"json": schema}, "required": ["json"]},
        "encoding": {"json": {"contentType": "application/json"}},
    }
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": schema, "example": example},
                    "application/x-www-form-urlencoded": form,
                },
            },
            "responses": {"200": _json(_ref("SeldonAnswer"), _ANSWER_EXAMPLE), **_ERRORS},
        }
    }


_METADATA_EXAMPLE = {
    "name": "MyModel",
    "versions": [""],
    "platform": "",
    "inputs": [{"messagetype": "tensor", "schema": {"names": ["a", "b"], "shape": [2]}}],
    "outputs": [{"messagetype": "tensor", "schema": {"shape": [2]}}],
}


def _get(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": responses}}


def _member_paths() -> dict[str, Any]:
    """A graph's ``/api/v1.0/metadata/{node}`` and ``/api/v1.0/status/{node}``."""
    node = {
        "name": "node",
        "in": "path",
        "required": True,
        "description": "The name of a node of the graph",
        "schema": {"type": "string"},
    }
    missing = _error("The graph has no node of that name", "the graph has no node 'x'")
    answers = {
        "node_metadata": ("One node's metadata", _json({"type": "object"}, _METADATA_EXAMPLE)),
        "node_status": ("One node's health status", _json(_ref("SeldonAnswer"), _ANSWER_EXAMPLE)),
    }
    paths = {}
    for prefix, route in MEMBER_PREFIXES.items():
        summary, found = answers[route.kind]
        item = _get(summary, {"200": found, "404": missing})
        item["get"]["parameters"] = [node]
        paths[prefix + "{node}"] = item
    return paths


def document(v2: bool = True, deployment: bool = False) -> dict[str, Any]:
    """The document; `v2`: with the Open Inference Protocol's paths (not for a graph,
    which does not serve them); `deployment`: a graph's paths (the orchestrator's API
    and its members by name) instead of a component's."""
    aggregate_body = {
        "oneOf": [
            _ref("SeldonMessageList"),
            {"type": "array", "minItems": 1, "items": _ref("SeldonMessage")},
        ]
    }
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    live, ready = _json(status, {"status": "alive"}), _json(status, {"status": "ready"})
    not_ready = _error("load() has not finished (or failed)")
    # What each operation's paths take and answer, by HTTP method. A data path also
    # takes GET with a ``json=`` query parameter (Seldon's form); only POST is described.
    by_operation = {
        "predict": _post("Predict", "SeldonMessage"),
        "transform_input": _post("Transform the input", "SeldonMessage"),
        "transform_output": _post("Transform the output", "SeldonMessage"),
        "route": _post("Choose a child (answers [[n]])", "SeldonMessage"),
        "aggregate": _post("Combine several messages", aggregate_body),
        "send_feedback": _post("Send feedback on a prediction", "Feedback"),
        "ping": _get(
            "Liveness, without calling the model",
            {
                "200": {
                    "description": "pong",
                    "content": {"text/html": {"schema": {"type": "string"}, "example": "pong"}},
                }
            },
        ),
        "health_status": _get(
            "The model's health_status()",
            {"200": _json(_ref("SeldonAnswer"), _ANSWER_EXAMPLE), **_ERRORS},
        ),
        "metadata": _get(
            "Model metadata",
            {
                "200": _json({"type": "object"}, _METADATA_EXAMPLE),
                "500": _error("Invalid model metadata", "Model metadata unavailable"),
            },
        ),
        "openapi": _get("This document", {"200": _json({"type": "object"}, {"openapi": "3.0.3"})}),
        "live": _get("The process is up", {"200": live}),
        "ready": _get("load() has finished", {"200": ready, "503": not_ready}),
    }
    routes = DEPLOYMENT_ROUTES if deployment else ROUTES
    paths = {
        path: {
            method: item
            for method, item in by_operation[route.kind].items()
            if method.upper() in route.methods
        }
        for path, route in routes.items()
    }
    if deployment:
        paths.update(_member_paths())
    schemas = dict(_SCHEMAS)
    if v2:
        paths.update(openapi_v2.paths())
        schemas.update(openapi_v2.SCHEMAS)
    return {
        "openapi": "3.0.0",
        "info": {
            # The title names every protocol the document lists: a graph serves the
            # Seldon protocol alone.
            "title": "unitserve: Seldon protocol and Open Inference Protocol (V2)"
            if v2
            else "unitserve: Seldon protocol",
            "version": __version__,
            "description": (
                "The REST APIs served by unitserve: the Seldon Core 1.x microservice API "
                "(/predict, /api/v1.0/predictions, ...) and the Open Inference Protocol, "
                "also known as the V2 or KServe protocol (the /v2 paths)."
                if v2
                else "The Seldon Core 1.x REST API served by a unitserve graph: the "
                "orchestrator's (/api/v1.0/predictions, ...) and each node's metadata and "
                "status by name."
                if deployment
                else "The Seldon Core 1.x microservice REST API (/predict, ...)."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
