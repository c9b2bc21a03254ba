"""The Open Inference Protocol's REST routes, on the same port as the Seldon routes.

Its paths carry the model's name (and optional version), so they are matched here
rather than in the exact-path table: the app looks a path up in that table first and
comes here only for a path under ``/v2`` that is not in it, so the Seldon routes pay
nothing for these. Errors are the protocol's ``{"error": "<sentence>"}``.

    GET  /v2                                          server metadata
    GET  /v2/health/live | /v2/health/ready           server health
    GET  /v2/models/M[/versions/V]                    model metadata
    GET  /v2/models/M[/versions/V]/ready              model readiness
    POST /v2/models/M[/versions/V]/infer              inference
    POST /v2/repository/index                         the repository extension
    POST /v2/repository/models/M/load | /unload
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from unitserve.errors import BadRequest, ServingError
from unitserve.message import Codec
from unitserve.models.dataplane import DataPlane
from unitserve.operations import (
    INFER,
    MODEL_METADATA,
    MODEL_READY,
    REPOSITORY_INDEX,
    REPOSITORY_MODEL_LOAD,
    REPOSITORY_MODEL_UNLOAD,
    SERVER_LIVE,
    SERVER_METADATA,
    SERVER_READY,
)
from unitserve.protocol import jsonio
from unitserve.protocol.v2 import binary
from unitserve.protocol.v2.binary import BinaryAnswer
from unitserve.protocol.v2.json_body import read_json
from unitserve.protocol.v2.json_codec import V2JsonCodec
from unitserve.transport.accounting import PUID_KEY
from unitserve.transport.rest.routes import GET, POST, Route

JSON_TYPE = b"application/json"
BINARY_TYPE = b"application/octet-stream"

Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, Headers, "bytes | BinaryAnswer"]


class NoSuchRoute(ServingError):
    http_status = 404
    reason = "MICROSERVICE_NOT_FOUND"


_FIXED = {
    "": Route(SERVER_METADATA.name, GET),
    "health/live": Route(SERVER_LIVE.name, GET),
    "health/ready": Route(SERVER_READY.name, GET),
    "repository/index": Route(REPOSITORY_INDEX.name, POST),
}
_MODEL_TAILS = {
    (): (MODEL_METADATA.name, GET),
    ("ready",): (MODEL_READY.name, GET),
    ("infer",): (INFER.name, POST),
}
_REPOSITORY_ACTIONS = {
    "load": REPOSITORY_MODEL_LOAD.name,
    "unload": REPOSITORY_MODEL_UNLOAD.name,
}


def match(path: str) -> Route | None:
    """The route of a path under /v2 (already percent-decoded by the server), or None."""
    if path == "/v2":
        return _FIXED[""]
    if not path.startswith("/v2/"):
        return None
    rest = path[4:]
    fixed = _FIXED.get(rest)
    if fixed is not None and rest:
        return fixed
    parts = rest.split("/")
    if len(parts) >= 2 and parts[0] == "models" and parts[1]:
        tail = parts[2:]
        version = None
        if len(tail) >= 2 and tail[0] == "versions" and tail[1]:
            version, tail = tail[1], tail[2:]
        found = _MODEL_TAILS.get(tuple(tail))
        if found is None:
            return None
        return Route(found[0], found[1], parts[1], version)
    if len(parts) == 4 and parts[:2] == ["repository", "models"] and parts[2]:
        action = _REPOSITORY_ACTIONS.get(parts[3])
        if action is not None:
            return Route(action, POST, parts[2])
    return None


@dataclass(slots=True)
class V2Request:
    """An inference body and its codec; split (JSON header, binary part) where the user
    code runs, as the Seldon bodies are parsed."""

    body: bytes
    codec: Codec
    header_length: int | None

    def read(self) -> Any:
        return binary.read_body(self.body, self.header_length)


def _json(status: int, value: Any) -> Answer:
    return status, [(b"content-type", JSON_TYPE)], jsonio.dumps(value)


def error_body(message: str) -> bytes:
    return jsonio.dumps({"error": message})


def _optional_object(body: bytes, what: str) -> dict[str, Any]:
    """A repository request's body: nothing (tritonclient sends none) or a JSON object."""
    if not body.strip():
        return {}
    value = read_json(body)
    if not isinstance(value, dict):
        raise BadRequest(f"the body of {what} must be a JSON object (or empty)")
    return value


class V2Rest:
    """The REST adapter of the Open Inference data plane (see the module doc)."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.server_metadata = jsonio.dumps(plane.server_metadata)

    async def answer(
        self,
        route: Route,
        headers: dict[bytes, bytes],
        body: bytes,
        note: dict[str, Any] | None = None,
    ) -> Answer:
        """The answer to one request; with `note` (the request's ASGI scope when access
        lines are written) an inference request's id is left there as its puid."""
        kind, plane = route.kind, self.plane
        if kind == INFER.name:
            assert route.model is not None
            model = plane.inference_model(route.model, route.version)
            header_length = binary.parse_header_length(headers.get(binary.HEADER_LENGTH.encode()))
            codec = V2JsonCodec(model.name, model.version)  # one per request: it keeps the id
            try:
                status, answer = await model.call(kind, V2Request(body, codec, header_length))
            finally:
                if note is not None and codec.request is not None:
                    note[PUID_KEY] = codec.request.id
            if isinstance(answer, BinaryAnswer):
                return (
                    status,
                    [
                        (b"content-type", BINARY_TYPE),
                        (binary.HEADER_LENGTH.encode(), str(answer.header_length).encode()),
                    ],
                    answer,
                )
            return status, [(b"content-type", JSON_TYPE)], answer
        if kind == SERVER_LIVE.name:
            return _json(200, {"live": plane.server_live()})
        if kind == SERVER_READY.name:
            ready = plane.server_ready()
            return _json(200 if ready else 503, {"ready": ready})
        if kind == SERVER_METADATA.name:
            return 200, [(b"content-type", JSON_TYPE)], self.server_metadata
        if kind == MODEL_READY.name:
            assert route.model is not None
            ready = plane.model_ready(route.model, route.version)
            return _json(200 if ready else 503, {"name": route.model, "ready": ready})
        if kind == MODEL_METADATA.name:
            assert route.model is not None
            return _json(200, plane.model_metadata(route.model, route.version))
        if kind == REPOSITORY_INDEX.name:
            request = _optional_object(body, "a repository index request")
            return _json(200, await plane.repository_index(request.get("ready", False)))
        if kind in (REPOSITORY_MODEL_LOAD.name, REPOSITORY_MODEL_UNLOAD.name):
            assert route.model is not None
            request = _optional_object(body, "a repository load or unload request")
            if kind == REPOSITORY_MODEL_LOAD.name:
                await plane.load(route.model, request.get("parameters") or {})
            else:
                await plane.unload(route.model)
            return 200, [(b"content-type", JSON_TYPE)], b""
        raise NoSuchRoute(f"Not Found: {kind}")  # every kind is answered above
