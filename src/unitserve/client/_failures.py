"""How a failed call becomes a `ClientError`, and which failures a retry may cure.

Both transports and both I/O twins raise the same error: the server's status, its
reason word and its sentence when it gave them; ``NO_ANSWER`` or ``TIMEOUT`` when it
did not answer at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import httpx
import orjson


class ClientError(Exception):
    """A call that failed: the server said no, or could not be reached.

    ``status`` is the HTTP status (REST), the gRPC status code's name (gRPC), or 0 when
    no answer came at all; ``reason`` is Seldon's reason word (``MICROSERVICE_BAD_DATA``
    ...) when the server gave one, else the HTTP reason phrase or the gRPC code;
    ``message`` is the server's own sentence.
    """

    def __init__(self, status: int | str, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message


def error_from_body(status: int, phrase: str, content: bytes) -> ClientError:
    """The error a non-200 answer stands for, with the server's reason and sentence when
    its body is Seldon's (``{"status": {"info", "reason"}}``) or the OIP's (``{"error"}``)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ClientError(status, phrase, content.decode("utf-8", "replace").strip()[:2000])
    if isinstance(body, dict):
        inner = body.get("status")
        if isinstance(inner, dict):
            return ClientError(
                status, str(inner.get("reason") or phrase), str(inner.get("info") or "")
            )
        if "error" in body:
            return ClientError(status, phrase, str(body["error"]))
    return ClientError(status, phrase, content.decode("utf-8", "replace")[:2000])


# Failures with no answer that a second try may cure (the connection was refused,
# dropped or reset). A read timeout is not among them: the server may still be working
# on the first try.
RETRY_HTTP = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.PoolTimeout,
)


def grpc_error(exc: grpc.RpcError) -> ClientError:
    code = exc.code()
    name = code.name if code is not None else "UNKNOWN"
    return ClientError(name, name, exc.details() or "")


def retryable(exc: ClientError) -> bool:
    """What a retry may cure: no answer at all, or the server saying it is unavailable."""
    return exc.reason == "NO_ANSWER" or exc.status in (503, "UNAVAILABLE")


def no_answer(call_name: str, exc: Exception) -> ClientError:
    return ClientError(0, "NO_ANSWER", f"{call_name}: {type(exc).__name__}: {exc}")


def timed_out(call_name: str) -> ClientError:
    return ClientError(0, "TIMEOUT", f"{call_name}: no answer in time")


@contextmanager
def http_errors(call_name: str) -> Iterator[None]:
    """httpx's failures as ClientError: no answer (a retry may cure it) or a timeout."""
    try:
        yield
    except RETRY_HTTP as exc:
        raise no_answer(call_name, exc) from None
    except httpx.TimeoutException as exc:
        raise timed_out(call_name) from exc


@contextmanager
def grpc_errors() -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as exc:
        raise grpc_error(exc) from None
