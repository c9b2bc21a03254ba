"""An Open Inference request as a prepackaged server's model is given it, chosen by the
request's ``parameters.content_type``, as MLServer's runtimes decode their requests.

The protocol codec has already read each input into an array of its datatype (BYTES as
`str` or `bytes`, by the input's own content type). What the model is handed then
depends on what the request says it is:

    ``pd``    a pandas DataFrame: one column an input, named after it, holding the
              input's values in order (text for BYTES), so that a model fitted on a
              DataFrame with named columns (a Pipeline with a ColumnTransformer) gets
              the table it was fitted on;
    ``np``    the request's one input as an array (the default of the scikit-learn,
              XGBoost and LightGBM runtimes);
    ``str``   the request's one input as a list of `str` (a text model's documents);
    ``dict``  (MLflow only) the inputs as a dict name → array.

This is decoding a server does for itself, as an MLServer runtime calls its own
``decode_request``: a class of the user's own gets the inputs as the protocol maps
them. It runs in the call, after adaptive batching, so that batched requests are
decoded once, together. pandas is imported only for a request that asks for a table.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from unitserve.errors import SeldonMicroserviceException

TABLE = "pd"
ARRAY = "np"
TEXT = "str"
TENSOR_DICT = "dict"

#: The request content types of the scikit-learn, XGBoost and LightGBM runtimes.
RUNTIME_CONTENT_TYPES = (TABLE, ARRAY, TEXT)


def checked_default(content_type: str | None, accepted: tuple[str, ...]) -> str | None:
    """A server's own default content type (MLServer's model settings
    ``parameters.content_type``: what a request naming none is read as), checked at
    start."""
    if content_type is not None and content_type not in accepted:
        known = ", ".join(repr(c) for c in accepted)
        raise ValueError(f"content_type must be one of {known}, not {content_type!r}")
    return content_type or None


def request_content_type(meta: Any) -> str | None:
    """The request's ``parameters.content_type`` (None when it names none). Adaptive
    batching stacks only requests whose content types agree, so a batch's is its first
    request's."""
    if not isinstance(meta, dict):
        return None
    batch = meta.get("batch")
    if isinstance(batch, list) and "rows" in meta:
        return request_content_type(batch[0]) if batch else None
    tags = meta.get("tags")
    found = tags.get("content_type") if isinstance(tags, dict) else None
    return found if isinstance(found, str) and found else None


def decode(
    features: Any,
    content_type: str | None,
    accepted: tuple[str, ...] = RUNTIME_CONTENT_TYPES,
    default: str | None = ARRAY,
) -> Any:
    """`features` (one input's array, or a dict name → array of several, in request
    order) as the request's `content_type` says, else as `default` (None: unchanged).
    A content type not in `accepted`, or inputs that do not make what it names, are
    the client's error: a 400 saying why."""
    chosen = content_type or default
    if chosen is None:
        return features
    if chosen not in accepted:
        known = ", ".join(repr(c) for c in accepted)
        raise _bad_request(
            f"parameters.content_type {chosen!r} is not one this server decodes: "
            f"send one of {known}, or none"
        )
    if chosen == TABLE:
        return to_table(features)
    if chosen == TENSOR_DICT:
        return dict(features) if isinstance(features, dict) else {"input-0": features}
    single = _single_input(features, chosen, asked=content_type is not None)
    if chosen == TEXT:
        return [_text(v) for v in np.asarray(single, dtype=object).reshape(-1).tolist()]
    return single


def to_table(features: Any) -> Any:
    """The inputs as a DataFrame of one column an input (see the module doc)."""
    inputs = features if isinstance(features, dict) else {"input-0": features}
    columns: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for name, value in inputs.items():
        arr = np.asarray(value)
        flat = arr.reshape(-1)
        if arr.dtype.kind in "OSU":
            # BYTES: text, as MLServer reads the strings of a JSON request; bytes
            # that are not UTF-8 stay bytes.
            flat = np.array([_text(v) for v in flat.tolist()], dtype=object)
        columns[str(name)] = flat
        lengths[str(name)] = len(flat)
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{name!r} has {n}" for name, n in lengths.items())
        raise _bad_request(
            "a request with parameters.content_type 'pd' is a table of one column an "
            f"input, and its columns must be as long as each other: {counts} values"
        )
    pandas = importlib.import_module("pandas")
    return pandas.DataFrame(columns)


def _single_input(features: Any, content_type: str, asked: bool) -> Any:
    if not isinstance(features, dict):
        return features
    if len(features) == 1:
        return next(iter(features.values()))
    names = ", ".join(repr(n) for n in features)
    said = (
        f"parameters.content_type {content_type!r} decodes one input"
        if asked
        else "without parameters.content_type this server takes one input"
    )
    raise _bad_request(
        f"{said}, and the request has {len(features)} ({names}): send one input, or "
        "parameters.content_type 'pd' to give the model a table of one column an input"
    )


def _text(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    return value


def _bad_request(sentence: str) -> SeldonMicroserviceException:
    return SeldonMicroserviceException(sentence, status_code=400)
