"""What the synchronous and the asyncio client share in sending a call: what to retry,
how long to wait, how the HTTP client is set up and how gRPC stubs are made. Each twin
(`Client`, `AsyncClient`) then only does its own I/O.
"""

from __future__ import annotations

import random
from typing import Any

import httpx

from unitserve.client._calls import Call, CallBuilder
from unitserve.client._failures import ClientError, retryable

GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 512 * 1024 * 1024),
    ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
]


class Sender(CallBuilder):
    """A `CallBuilder` that knows how its calls are sent, but not whether it waits."""

    def _delay(self, attempt: int) -> float:
        """Back-off before try `attempt + 1`: doubling, capped at 5 s, with jitter so that
        many clients do not come back at the same instant."""
        return min(self.backoff * 2**attempt, 5.0) * (0.5 + random.random() / 2)

    def _tries(self, retries: int | None) -> int:
        return (self.retries if retries is None else retries) + 1

    def _retry_delay(self, exc: ClientError, attempt: int, tries: int) -> float | None:
        """Seconds to wait before trying again after `exc`, or None to give up: the
        failure is not one a retry may cure, or that was the last try."""
        if attempt + 1 >= tries or not retryable(exc):
            return None
        self.retried += 1
        return self._delay(attempt)

    def _http_options(self) -> dict[str, Any]:
        """The httpx client's settings (both twins')."""
        return {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "headers": self.headers,
            "limits": httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_connections,
            ),
        }

    def _stub(self, channel: Any, call: Call) -> Any:
        """The channel's callable for `call`'s method, made once per method."""
        stub = self._stubs.get(call.rpc)
        if stub is None:
            stub = self._stubs[call.rpc] = channel.unary_unary(
                call.rpc,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=call.reply_type.FromString,
            )
        return stub

    def _grpc_metadata(self) -> tuple[tuple[str, str], ...] | None:
        return tuple(self.headers.items()) or None
