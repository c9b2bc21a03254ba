"""Model metadata: defaults from the image, the user's ``init_metadata()``,
``MODEL_METADATA`` (YAML or JSON) on top, validated against Seldon's schema.

Computed once per worker, after ``load()`` (Seldon computes it before; a model
that reads its metadata from loaded artefacts needs it after).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import jsonschema
import yaml

log = logging.getLogger("unitserve")

_V1_ARRAY_TYPES = ["tensor", "ndarray", "tftensor"]
_KNOWN_TYPES = [*_V1_ARRAY_TYPES, "jsonData", "strData", "binData"]
_V2_DATATYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
_INT_LIST = {"type": "array", "items": {"type": "integer"}}
# The Open Inference Protocol's parameters: scalars, the values its gRPC form can carry.
_PARAMETERS = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}}


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


# A tensor as the Open Inference Protocol describes it; its parameters (a content type
# a client should send it as, say) are this server's addition to Seldon's schema.
_V2_TENSOR_FIELDS = {
    "name": {"type": "string"},
    "datatype": {"enum": _V2_DATATYPES},
    "shape": _INT_LIST,
    "parameters": _PARAMETERS,
}

_MESSAGE = {
    "anyOf": [
        _closed(
            {
                "messagetype": {"enum": _V1_ARRAY_TYPES},
                "schema": _closed(
                    {"names": {"type": "array", "items": {"type": "string"}}, "shape": _INT_LIST}
                ),
            },
            ["messagetype"],
        ),
        _closed(
            {"messagetype": {"const": "jsonData"}, "schema": {"type": "object"}}, ["messagetype"]
        ),
        _closed({"messagetype": {"const": "strData"}}, ["messagetype"]),
        _closed({"messagetype": {"const": "binData"}}, ["messagetype"]),
        _closed(
            {
                "messagetype": {"type": "string", "not": {"enum": _KNOWN_TYPES}},
                "schema": {"type": "object"},
            },
            ["messagetype"],
        ),
        # (Seldon requires none of the fields; one without all three is not served.)
        _closed(_V2_TENSOR_FIELDS),
    ]
}

SCHEMA: dict[str, Any] = _closed(
    {
        "name": {"type": "string"},
        "versions": {"type": "array", "items": {"type": "string"}},
        "platform": {"type": "string"},
        "inputs": {"type": "array", "items": _MESSAGE},
        "outputs": {"type": "array", "items": _MESSAGE},
        "custom": {"type": "object", "additionalProperties": {"type": "string"}},
        # The model's parameters in its Open Inference Protocol metadata.
        "parameters": _PARAMETERS,
    }
)

_OIP_TENSOR = _closed(_V2_TENSOR_FIELDS, ["name", "datatype", "shape"])
#: What a served class may give for its Open Inference Protocol metadata, in its
#: ``oip_model_metadata`` attribute once loaded (a prepackaged server reads it from
#: the model's files): it fills what the metadata above leaves out.
OIP_SCHEMA: dict[str, Any] = _closed(
    {
        "inputs": {"type": "array", "items": _OIP_TENSOR},
        "outputs": {"type": "array", "items": _OIP_TENSOR},
        "parameters": _PARAMETERS,
    }
)


def split_image(image: str) -> tuple[str, str]:
    """``registry:5000/name:tag`` → (``registry:5000/name``, ``tag``), split on the last colon."""
    name, sep, version = image.rpartition(":")
    return (name, version) if sep else (image, "")


def defaults(image: str | None) -> dict[str, Any]:
    name, version = split_image(image) if image else ("", "")
    return {
        "name": name,
        "versions": [version],
        "platform": "",
        "inputs": [],
        "outputs": [],
        "custom": {},
    }


def from_environment(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        log.error("MODEL_METADATA is not valid YAML or JSON, ignored: %s", exc)
        return {}
    if not isinstance(value, dict):
        log.error("MODEL_METADATA must be a mapping, ignored: %r", value)
        return {}
    return value


def build(user_metadata: Any, env_text: str | None, image: str | None) -> dict[str, Any] | None:
    """The validated metadata, or None (logged) when it does not follow the schema."""
    if user_metadata is None:
        user_metadata = {}
    elif not isinstance(user_metadata, dict):
        log.error(
            "init_metadata() must return a dict, got %s: ignored", type(user_metadata).__name__
        )
        user_metadata = {}
    merged = {**defaults(image), **user_metadata, **from_environment(env_text)}
    # The error `jsonschema.validate` would raise, without checking the schema itself
    # again on every model's load (most of a repository model's load time).
    error = jsonschema.exceptions.best_match(_validator().iter_errors(merged))
    if error is not None:
        log.error(
            "model metadata is invalid, /metadata will answer 500: %s (at %s)",
            error.message,
            "/".join(str(p) for p in error.absolute_path) or "top level",
        )
        return None
    return merged


def supplied_oip(user: Any) -> dict[str, Any]:
    """The user object's ``oip_model_metadata`` when it follows `OIP_SCHEMA`; else
    ``{}`` (logged when it is there but invalid)."""
    value = getattr(user, "oip_model_metadata", None)
    if value is None:
        return {}
    error = jsonschema.exceptions.best_match(_validator("oip").iter_errors(value))
    if error is not None:
        log.error(
            "oip_model_metadata of %s is invalid, ignored: %s (at %s)",
            type(user).__name__,
            error.message,
            "/".join(str(p) for p in error.absolute_path) or "top level",
        )
        return {}
    result: dict[str, Any] = value
    return result


@functools.cache
def _validator(which: str = "seldon") -> Any:
    """The schema's validator, the schema checked once."""
    schema = OIP_SCHEMA if which == "oip" else SCHEMA
    kind = jsonschema.validators.validator_for(schema)
    kind.check_schema(schema)
    return kind(schema)
