"""The OpenAPI 3.0 document served at ``/seldon.json``: the SeldonMessage REST API.

Written from the wire format of spec §3.3 (our own text). Kept as data so that
tests and fuzzers (schemathesis) can read the same contract the server serves.
"""

from __future__ import annotations

from typing import Any

from .version import __version__

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


_SCHEMAS: dict[str, Any] = {
    "Tensor": {
        "type": "object",
        "required": ["shape", "values"],
        "properties": {
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "values": {"type": "array", "items": {"type": "number"}},
        },
    },
    "DefaultData": {
        "type": "object",
        "properties": {
            "names": {"type": "array", "items": {"type": "string"}},
            "tensor": _ref("Tensor"),
            "ndarray": {"type": "array", "items": {}},
            "tftensor": {"type": "object", "description": "TensorFlow TensorProto in proto3 JSON"},
        },
    },
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
        "description": "One of data, binData (base64), strData or jsonData.",
        "properties": {
            "status": _ref("Status"),
            "meta": _ref("Meta"),
            "data": _ref("DefaultData"),
            "binData": {"type": "string", "format": "byte"},
            "strData": {"type": "string"},
            "jsonData": {},
        },
    },
    "SeldonMessageList": {
        "type": "object",
        "required": ["seldonMessages"],
        "properties": {"seldonMessages": {"type": "array", "items": _ref("SeldonMessage")}},
    },
    "Feedback": {
        "type": "object",
        "properties": {
            "request": _ref("SeldonMessage"),
            "response": _ref("SeldonMessage"),
            "reward": {"type": "number"},
            "truth": _ref("SeldonMessage"),
        },
    },
    "ErrorStatus": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": _ref("Status")},
    },
}

_ERRORS = {
    "400": {
        "description": "The request is not a valid SeldonMessage, or the model rejected it",
        "content": {"application/json": {"schema": _ref("ErrorStatus")}},
    },
    "500": {
        "description": "The model failed",
        "content": {"application/json": {"schema": _ref("ErrorStatus")}},
    },
}


def _operation(summary: str, body: str) -> dict[str, Any]:
    message = {"application/json": {"schema": _ref(body)}}
    form = {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "properties": {"json": {"type": "string"}},
                "required": ["json"],
            }
        }
    }
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {**message, **form}},
            "responses": {
                "200": {
                    "description": "The answer",
                    "content": {"application/json": {"schema": _ref("SeldonMessage")}},
                },
                **_ERRORS,
            },
        }
    }


def document() -> dict[str, Any]:
    aggregate_body = {
        "oneOf": [_ref("SeldonMessageList"), {"type": "array", "items": _ref("SeldonMessage")}]
    }
    paths = {
        "/predict": _operation("Predict", "SeldonMessage"),
        "/transform-input": _operation("Transform the input", "SeldonMessage"),
        "/transform-output": _operation("Transform the output", "SeldonMessage"),
        "/route": _operation("Choose a child (answers [[n]])", "SeldonMessage"),
        "/aggregate": _operation("Combine several messages", "SeldonMessageList"),
        "/send-feedback": _operation("Send feedback on a prediction", "Feedback"),
    }
    paths["/aggregate"]["post"]["requestBody"]["content"]["application/json"]["schema"] = (
        aggregate_body
    )
    return {
        "openapi": "3.0.0",
        "info": {
            "title": "unitserve Seldon protocol",
            "version": __version__,
            "description": "The Seldon Core 1.x microservice REST API served by unitserve.",
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
