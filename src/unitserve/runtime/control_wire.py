"""The control channel's framing: one JSON object per line, both ways.

The supervisor and each of its workers share a socketpair. A worker sends
``broadcast`` requests and ``ack`` answers; the supervisor sends ``op``s to run,
the ``replay`` log followed by ``replayed``, and ``done`` answers to broadcasts.
JSON keeps the messages readable in a debugger's dump of the socket, and
compact JSON never holds a raw newline, so a line is a message.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

log = logging.getLogger("unitserve")

# A load's arguments are a few names and paths; a line this long is a fault.
MAX_LINE = 16 * 1024 * 1024


class FramingError(Exception):
    """The other side sent something that is not a stream of messages."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as its line (a TypeError if it holds something JSON cannot)."""
    return orjson.dumps(message) + b"\n"


def describe(op: str, args: dict[str, Any]) -> str:
    """An operation in a log line or an error: ``load 'iris'``."""
    name = args.get("name")
    return f"{op} {name!r}" if isinstance(name, str) else op


def reason(exc: BaseException) -> str:
    """Why an operation failed, in one line."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LineBuffer:
    """Bytes as they arrive from a socket, turned into the messages they complete."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._pending = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._pending += data
        end = self._pending.rfind(b"\n")
        if end < 0:
            if len(self._pending) > self._limit:
                raise FramingError(f"a control message is longer than {self._limit} bytes")
            return []
        complete = bytes(self._pending[:end])
        del self._pending[: end + 1]
        messages = []
        for line in complete.split(b"\n"):
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("control channel: skipped a line that is not JSON: %.80r", line)
                continue
            if isinstance(message, dict):
                messages.append(message)
            else:
                log.warning("control channel: skipped a line that is not an object: %.80r", line)
        return messages
