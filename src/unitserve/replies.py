"""What the engine answers with, apart from calling user code: the payload kind of a
user's result (following the result's type and, for numeric arrays, the request's
kind), Seldon's default column names, and the answer's meta (puid, tags and metrics
merged, the request path)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from unitserve.errors import BadModelOutput, BadRequest, UnknownPayloadType
from unitserve.message import (
    BIN,
    CUSTOM,
    DATA_KINDS,
    JSON,
    NDARRAY,
    STR,
    TENSOR,
    TFTENSOR,
    Message,
    Reply,
)


def answer_meta(
    own_path: dict[str, str],
    msgs: list[Message],
    merge_request: bool,
    static_tags: Any,
    runtime_tags: Any,
    metrics: list[dict[str, Any]],
) -> dict[str, Any]:
    """The answer's meta: the request's puid, its tags and metrics merged (unless
    `merge_request` is false) with the class's, and the request path with this
    node's own entry."""
    out: dict[str, Any] = {}
    first = msgs[0].meta
    if first and first.get("puid"):
        out["puid"] = first["puid"]
    tags: Any = None
    request_metrics: list[Any] = []
    path = dict(own_path)
    if merge_request:
        for msg in msgs:
            meta = msg.meta
            if not meta:
                continue
            if "tags" in meta:
                tags = merge_tags(tags, meta["tags"], "meta.tags")
            if meta.get("metrics"):
                if not isinstance(meta["metrics"], list):
                    raise BadRequest("meta.metrics must be a list")
                request_metrics.extend(meta["metrics"])
            if meta.get("requestPath"):
                if not isinstance(meta["requestPath"], dict):
                    raise BadRequest("meta.requestPath must be an object")
                path.update(meta["requestPath"])
    if static_tags:
        tags = merge_user_tags(tags, static_tags, "tags()")
    if runtime_tags:
        tags = merge_user_tags(tags, runtime_tags, "SeldonResponse.tags")
    if tags:
        out["tags"] = tags
    if request_metrics or metrics:
        out["metrics"] = request_metrics + metrics
    if path:
        out["requestPath"] = path
    return out


def reply_of(
    data: Any,
    request_kind: str | None,
    meta: dict[str, Any],
    proto: bool,
    names_asked: bool,
    class_names: list[Any] | None,
) -> tuple[Reply, int | None]:
    """The payload kind of the answer follows the result's type and, for numeric
    arrays, the request's kind. The second value is None, or the number of columns
    when the class's class_names() is to name them (`names_asked`: the caller asks
    it; this calls no user code, so that an answer without it costs no generator)."""
    if isinstance(data, np.ndarray):  # the usual result first: none of the others
        arr = data
    else:
        if isinstance(data, dict):
            return Reply(JSON, data, None, meta), None
        if isinstance(data, bytes | bytearray):
            return Reply(BIN, bytes(data), None, meta), None
        if isinstance(data, str):
            return Reply(STR, data, None, meta), None
        if proto and is_any(data):
            return Reply(CUSTOM, data, None, meta), None
        if not isinstance(data, list):
            raise UnknownPayloadType(
                f"Unknown data type returned as payload (must be list or np array):{data}"
            )
        try:
            arr = np.array(data)
        except (ValueError, TypeError) as exc:
            raise BadModelOutput(f"the model returned a list that is not an array: {exc}") from None
    numeric = arr.dtype.kind in "iufc"  # np.number: ints, floats, complex (not bool)
    if request_kind in DATA_KINDS:
        kind = request_kind if numeric and request_kind in (TENSOR, TFTENSOR) else NDARRAY
    else:
        kind = TENSOR if numeric else NDARRAY
    value = data if kind == NDARRAY and isinstance(data, list) else arr
    if arr.ndim < 2:
        return Reply(kind, value, [], meta), None
    if names_asked:
        return Reply(kind, value, [], meta), arr.shape[1]
    if class_names is not None:
        return Reply(kind, value, class_names, meta), None
    return Reply(kind, value, default_names(arr.shape[1]), meta), None


def merge_tags(tags: Any, update: Any, where: str) -> Any:
    if tags is None:
        return update if not isinstance(update, dict) else dict(update)
    if not isinstance(tags, dict) or not isinstance(update, dict):
        raise BadRequest(f"{where}: tags must be JSON objects to be merged")
    tags.update(update)
    return tags


def merge_user_tags(tags: Any, extra: Any, where: str) -> Any:
    """Tags from the class (``tags()`` or a SeldonResponse's) merged over `tags`."""
    if not isinstance(extra, dict):
        raise BadModelOutput(f"{where} must return a dict, got {type(extra).__name__}")
    return merge_tags(tags, extra, where)


def is_any(value: Any) -> bool:
    descriptor = getattr(value, "DESCRIPTOR", None)
    return getattr(descriptor, "full_name", None) == "google.protobuf.Any"


def default_names(columns: int) -> list[str]:
    """Seldon's ``t:0 … t:n-1`` (kept for the usual widths; callers never modify it)."""
    return _cacheddefault_names(columns) if columns <= 1024 else [f"t:{i}" for i in range(columns)]


@functools.lru_cache(maxsize=64)
def _cacheddefault_names(columns: int) -> list[str]:
    return [f"t:{i}" for i in range(columns)]
