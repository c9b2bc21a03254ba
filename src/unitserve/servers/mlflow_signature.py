"""An MLflow model's signature as its Open Inference Protocol metadata, as MLServer's
mlflow runtime answers ``GET /v2/models/<name>``.

Each column or tensor of the signature is a tensor of the metadata, with the content
type a client should send it as in its ``parameters``: a column is ``[-1, 1]`` of its
type (``np`` for numbers and booleans, ``str`` for text, ``base64`` for binary,
``datetime`` for dates; ``pd_json`` for arrays, objects and maps, sent as JSON text), a
tensor its own shape and type (``np``). Unnamed ones are ``input-<i>`` and
``output-<i>``. The model's own ``parameters.content_type`` says what the model takes:
``pd`` (a table) for columns, ``np`` for one unnamed tensor, ``dict`` for named tensors.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger("unitserve.servers")

INPUT_PREFIX = "input-"
OUTPUT_PREFIX = "output-"

# MLflow's column types (by their name): the tensor's datatype and content type.
_COLUMN_TYPES = {
    "boolean": ("BOOL", "np"),
    "integer": ("INT32", "np"),
    "long": ("INT64", "np"),
    "float": ("FP32", "np"),
    "double": ("FP64", "np"),
    "string": ("BYTES", "str"),
    "binary": ("BYTES", "base64"),
    "datetime": ("BYTES", "datetime"),
}
# Arrays, objects, maps and "any" columns: sent as JSON text.
_JSON_COLUMN = ("BYTES", "pd_json")

_NUMPY_TYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}


def oip_metadata(signature: Any) -> dict[str, Any] | None:
    """``{"inputs", "outputs", "parameters"}`` from an MLflow ``ModelSignature``, or
    None for a model saved without one (its metadata then says nothing of its tensors)."""
    if signature is None or signature.inputs is None:
        return None
    return {
        "inputs": tensors(signature.inputs, INPUT_PREFIX),
        "outputs": tensors(signature.outputs, OUTPUT_PREFIX),
        "parameters": {"content_type": model_content_type(signature.inputs)},
    }


def tensors(schema: Any, prefix: str) -> list[dict[str, Any]]:
    """One metadata tensor per column or tensor of an MLflow ``Schema`` (none for a
    signature that gives no outputs)."""
    if schema is None:
        return []
    out = []
    for index, spec in enumerate(schema.inputs):
        datatype, content_type = _types(spec)
        out.append(
            {
                "name": spec.name or f"{prefix}{index}",
                "datatype": datatype,
                "shape": _shape(spec),
                "parameters": {"content_type": content_type},
            }
        )
    return out


def model_content_type(schema: Any) -> str:
    if schema.is_tensor_spec():
        return "dict" if schema.has_input_names() else "np"
    return "pd"


def _types(spec: Any) -> tuple[str, str]:
    if _is_tensor(spec):
        return numpy_datatype(spec.type), "np"
    kind = spec.type
    # MLflow's plain column types are its DataType enum; the rest (Array, Object, Map,
    # AnyType) are classes describing nested values.
    if type(kind).__name__ == "DataType":
        return _COLUMN_TYPES.get(kind.name, _JSON_COLUMN)
    return _JSON_COLUMN


def _shape(spec: Any) -> list[int]:
    return [int(d) for d in spec.shape] if _is_tensor(spec) else [-1, 1]


def _is_tensor(spec: Any) -> bool:
    return type(spec).__name__ == "TensorSpec"


def numpy_datatype(dtype: Any) -> str:
    """The protocol's datatype of a NumPy dtype: text, bytes and objects are BYTES."""
    dtype = np.dtype(dtype)
    return _NUMPY_TYPES.get(str(dtype), "BYTES")
