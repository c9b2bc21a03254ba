"""Per-request bookkeeping shared by both transports: request metrics, the access
log, and counting requests for ``--max-requests``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from unitserve import tracing
from unitserve.models.registry import ModelRegistry
from unitserve.operations import (
    ENGINE_OPERATIONS,
    INFER,
    METADATA,
    MODEL_METADATA,
    MODEL_READY,
)

access_log = logging.getLogger("unitserve.access")

#: Where a REST request's puid waits in its ASGI scope for the access line (written
#: there only when access lines are).
PUID_KEY = "unitserve.puid"


def access_fields(
    protocol: str, code: str, seconds: float, what: str, client: str, puid: str | None
) -> dict[str, Any]:
    """The fields of an access line that the JSON log format writes (the text format
    writes the line's message only). A gRPC call is an HTTP/2 POST to the RPC's path, so
    it gets that method. The request's server span is still current here, so
    ``trace_id`` is its trace's (None with tracing off)."""
    method, _, path = what.partition(" ")
    if not path:
        method, path = "POST", what
    return {
        "method": method,
        "path": path,
        "status": int(code) if code.isdigit() else code,
        "duration_ms": round(seconds * 1000, 3),
        "protocol": protocol,
        "client": client,
        "puid": puid,
        "trace_id": tracing.current_trace_id(),
    }


class PuidCodec:
    """A request's codec that notes, on the request, the Seldon puid of the message it
    decodes (the request's ``meta.puid``; the Open Inference Protocol's codecs put the
    request's ``id`` there), for the access line. Put in front of the codec only when
    access lines are written: without them a request decodes exactly as before. A puid
    the request already has (a graph's, from its ``Seldon-Puid`` header) is kept. A
    ``*_raw`` method's request is never decoded, so its access line has no puid."""

    __slots__ = ("_codec", "_request", "proto")

    def __init__(self, codec: Any, request: Any) -> None:
        self._codec = codec
        self._request = request
        self.proto = codec.proto

    def __getattr__(self, name: str) -> Any:  # everything else is the codec's own
        return getattr(self._codec, name)

    def decode(self, payload: Any) -> Any:
        msg = self._codec.decode(payload)
        self._note(msg)
        return msg

    def decode_list(self, payload: Any) -> Any:
        msgs = self._codec.decode_list(payload)
        if msgs:  # an aggregate's answer takes the first message's puid
            self._note(msgs[0])
        return msgs

    def _note(self, msg: Any) -> None:
        meta = getattr(msg, "meta", None)
        if self._request.puid is None and isinstance(meta, dict) and meta.get("puid"):
            self._request.puid = str(meta["puid"])


class RequestMetrics(Protocol):
    def request_started(self, protocol: str) -> None: ...

    def request_finished(
        self, operation: str, protocol: str, code: str, seconds: float, model: str
    ) -> None: ...


# The Seldon protocol's operations that are the default model's (its health probes,
# the API document and a graph's node routes are the server's).
SELDON_MODEL_OPERATIONS = frozenset(
    {op.name for op in ENGINE_OPERATIONS if op.rest or op.grpc} | {METADATA.name}
)
# The Open Inference Protocol's operations on the model they name (the repository's
# load and unload are the server's, and the server's health and metadata).
NAMED_MODEL_OPERATIONS = frozenset({INFER.name, MODEL_READY.name, MODEL_METADATA.name})


class ModelLabels:
    """The ``model`` label of a finished request: the name of a served model it reached,
    or "" (health, the server's own routes, a name this server does not serve), so that
    the series follow the models served and never the names clients send."""

    def __init__(self, registry: ModelRegistry | None) -> None:
        self.registry = registry

    def of(self, operation: str, named: str | None) -> str:
        """`named`: the model the request named (the Open Inference Protocol's path or
        message), or None for a Seldon route, whose model is the default one."""
        registry = self.registry
        if registry is None:
            return ""
        if named is None:
            default = registry.default
            if default is None or operation not in SELDON_MODEL_OPERATIONS:
                return ""
            return default.name
        if operation in NAMED_MODEL_OPERATIONS and named in registry.models:
            return named
        return ""


class RequestAccounting:
    """Told when each request starts and finishes: records the request metrics, writes
    the access log line and, after ``--max-requests`` requests, calls `on_limit`."""

    def __init__(
        self,
        metrics: RequestMetrics,
        access_log_enabled: bool = False,
        max_requests: int = 0,
        on_limit: Callable[[], None] | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.metrics = metrics
        self.models = ModelLabels(registry)
        self.access_log_enabled = access_log_enabled
        self.remaining = max_requests or -1
        self.on_limit = on_limit
        self._lock = threading.Lock()  # requests finish on the loop and on gRPC threads
        self._in_flight = 0

    def in_flight(self) -> int:
        """Requests started and not finished yet, on every transport (adaptive batching
        sends a request at once when it is the only one)."""
        return self._in_flight

    def started(self, protocol: str) -> None:
        with self._lock:  # gRPC requests start and finish on threads of their own
            self._in_flight += 1
        self.metrics.request_started(protocol)

    def finished(
        self,
        operation: str,
        protocol: str,
        code: str,
        seconds: float,
        what: str,
        peer: str | Callable[[], str],
        puid: str | None = None,
        model: str | None = None,
    ) -> None:
        """Record a finished request; `peer` may be a callable, called only for the
        access log (finding it costs a little on every request otherwise). `what` is
        ``"METHOD /path"`` on REST and the RPC's path on gRPC. `model` is the model an
        Open Inference request named, None on the Seldon routes (see `ModelLabels`)."""
        with self._lock:
            self._in_flight -= 1
        self.metrics.request_finished(
            operation, protocol, code, seconds, self.models.of(operation, model)
        )
        if self.access_log_enabled:
            client = peer() if callable(peer) else peer
            access_log.info(
                "%s %s %s %.2fms",
                client,
                what,
                code,
                seconds * 1000,
                extra={"access": access_fields(protocol, code, seconds, what, client, puid)},
            )
        if self.remaining > 0:
            with self._lock:
                self.remaining -= 1
                reached = self.remaining == 0
            if reached and self.on_limit is not None:
                self.on_limit()
