"""The server under fuzz and what every one of its answers must look like.

Invariants: every answer is a well-formed 2xx or 4xx, or a 5xx that a
model caused (its own exception, or output that cannot be sent), with Seldon's
JSON error body on REST; no answer carries a traceback or Python's internal
error text from unitserve's own code; gRPC never answers UNKNOWN; every request
finishes within a bounded time; and afterwards the server still answers
``/health/ping`` with the same worker processes (none crashed and was replaced).

"A model caused it" is decided from the server's log, not guessed from the text:
a 500 from an exception is logged with its traceback, and the innermost frame
inside this repository must be a file of tests/fixtures (user code), not
src/unitserve.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
from grpc import StatusCode
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis.control import currently_in_test_context

from ..conftest import Server

REPO = Path(__file__).resolve().parents[2]
FIXTURES_DIR = str(REPO / "tests" / "fixtures")

# Seconds any one request may take: a hang fails the test instead of stalling it.
TIMEOUT = 20.0

# ----------------------------------------------------------------------------- profiles

#: ``short`` (default): derandomized and small, for `make test`; ``long``: random
#: and UNITSERVE_FUZZ_SCALE (default 20) times as many examples, for `make fuzz`.
PROFILE = os.environ.get("UNITSERVE_FUZZ_PROFILE", "short")
SCALE = int(os.environ.get("UNITSERVE_FUZZ_SCALE", "20"))
_QUIET = [
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.filter_too_much,
    HealthCheck.large_base_example,
]
settings.register_profile(
    "unitserve-short",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_QUIET,
    # No shrinking: against a server it can take minutes. The failing example is
    # printed as found, and reproducible (derandomized); `make fuzz` shrinks.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)
settings.register_profile(
    "unitserve-long", deadline=None, print_blob=True, suppress_health_check=_QUIET
)
if PROFILE not in ("short", "long"):
    raise ValueError(f"UNITSERVE_FUZZ_PROFILE must be short or long, not {PROFILE!r}")


def fuzz(examples: int) -> settings:
    """Settings of one fuzz test: `examples` in the short profile, SCALE times more
    in the long one."""
    if PROFILE == "long":
        return settings(settings.get_profile("unitserve-long"), max_examples=examples * SCALE)
    return settings(settings.get_profile("unitserve-short"), max_examples=examples)


# ----------------------------------------------------------------------------- invariants

# Python's own wording for internal failures: never in an answer of ours. (User code
# may say anything: those answers are checked against the log instead.)
INTERNAL_TEXT = re.compile(
    r"Traceback \(most recent|File \"|object has no attribute|unsupported operand|"
    r"not subscriptable|'NoneType'|object is not callable|maximum recursion depth|"
    r"Unable to allocate|cannot reshape|maximum supported dimension|index out of range|"
    r"KeyError|invalid literal for|positional argument|unhashable type|"
    r"set_int_max_str_digits|<class '|Unexpected <|object of type|can't multiply|"
    r"can only concatenate|Python int too large|cannot convert float"
)
ERROR_KEYS = {"code", "info", "reason", "status"}
# uvicorn's answer to what its HTTP parser refuses (unknown method, bad request line).
UVICORN_INVALID_HTTP = b"Invalid HTTP request received."
_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+', re.MULTILINE)

# Model output the engine cannot send, by Seldon's rules (a list answer must be an
# array; None or a scalar is no payload): a 500 (gRPC: INTERNAL) the model caused
# without raising. An identity method answers these for a jsonData of [1, [2]] or null.
MODEL_OUTPUT_ERRORS = (
    "the model returned a list that is not an array",
    "Unknown data type returned as payload",
    "the model's answer cannot be written as JSON",  # e.g. complex numbers in a dict
)


def _event(what: str) -> None:
    """Count an answer kind (pytest --hypothesis-show-statistics shows the spread)."""
    if currently_in_test_context():
        event(what)


def raised_in_user_code(log: str) -> bool:
    """True if the last traceback in `log` was raised in a fixture (user code)."""
    start = log.rfind("Traceback (most recent call last)")
    if start < 0:
        return False
    ours = [f for f in _FRAME.findall(log[start:]) if f.startswith(str(REPO))]
    return bool(ours) and ours[-1].startswith(FIXTURES_DIR)


def check_error_body(body: bytes) -> dict[str, Any]:
    """Seldon's error body, exactly: {"status": {"code": -1, "info", "reason", "status": 1}}."""
    doc = orjson.loads(body)
    assert isinstance(doc, dict) and set(doc) == {"status"}, body[:300]
    status = doc["status"]
    assert isinstance(status, dict) and set(status) == ERROR_KEYS, body[:300]
    assert status["code"] == -1 and status["status"] == 1, body[:300]
    assert isinstance(status["info"], str) and isinstance(status["reason"], str), body[:300]
    assert status["reason"], body[:300]
    return status


# ----------------------------------------------------------------------------- the target


class GrpcClient:
    """A grpc.aio channel on an event loop of its own, called synchronously (hypothesis
    tests are plain functions)."""

    def __init__(self, target: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.channel = self.loop.run_until_complete(self._open(target))

    @staticmethod
    async def _open(target: str) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", -1)])

    def call(self, path: str, data: bytes) -> tuple[grpc.StatusCode, bytes | None, str]:
        """(code, answer bytes or None, details) of one unary call."""
        method = self.channel.unary_unary(
            path, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )

        async def go() -> tuple[grpc.StatusCode, bytes | None, str]:
            try:
                return grpc.StatusCode.OK, await method(data, timeout=TIMEOUT), ""
            except grpc.aio.AioRpcError as exc:
                return exc.code(), None, exc.details() or ""

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.channel.close())
        self.loop.close()


@dataclass
class Target:
    """One running server under fuzz, with the bookkeeping the invariants need."""

    server: Server
    json_answers: bool = True  # False for PAYLOAD_PASSTHROUGH (raw bodies)
    workers: set[int] = field(default_factory=set)
    log_offset: int = 0
    http: httpx.Client = field(init=False)
    _grpc: GrpcClient | None = None

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.server.url, timeout=TIMEOUT)
        self.workers = self.worker_pids()
        self.new_log()

    @property
    def grpc(self) -> GrpcClient:
        if self._grpc is None:
            self._grpc = GrpcClient(self.server.grpc_target)
        return self._grpc

    def close(self) -> None:
        self.http.close()
        if self._grpc is not None:
            self._grpc.close()

    def worker_pids(self) -> set[int]:
        """The supervisor's child processes (its workers)."""
        assert self.server.proc is not None
        pid = self.server.proc.pid
        children: set[int] = set()
        for task in Path(f"/proc/{pid}/task").iterdir():
            children |= {int(c) for c in (task / "children").read_text().split()}
        return children

    def new_log(self) -> str:
        """Server log written since the last call."""
        with open(self.server.log_file.name, "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        self.log_offset += len(data)
        return data.decode("utf-8", "replace")

    def check_alive(self) -> None:
        """The server answers /health/ping and no worker died (and was replaced)."""
        assert self.server.proc is not None and self.server.proc.poll() is None, "server exited"
        r = self.http.get("/health/ping")
        assert (r.status_code, r.text) == (200, "pong")
        assert self.worker_pids() == self.workers, f"a worker was replaced:\n{self.new_log()}"

    # ------------------------------------------------------------------ REST

    def request(
        self, method: str, path: str, *, invalid_http: bool = False, **kw: Any
    ) -> httpx.Response:
        """One request, then the invariants on its answer. `invalid_http`: the request
        is not HTTP that llhttp accepts, and may get uvicorn's own plain-text 400."""
        self.new_log()
        r = self.http.request(method, path, **kw)
        _event(f"HTTP {r.status_code}")
        self.check_answer(method, path, r, invalid_http)
        return r

    def check_answer(
        self, method: str, path: str, r: httpx.Response, invalid_http: bool = False
    ) -> None:
        self.check_parts(
            method, path, r.status_code, r.headers.get("content-type"), r.content, invalid_http
        )

    def check_parts(
        self,
        method: str,
        path: str,
        status: int,
        content_type: str | None,
        body: bytes,
        invalid_http: bool = False,
    ) -> None:
        """The invariants on one REST answer (any HTTP client's)."""
        where = f"{method} {path} → {status}: {body[:500]!r}"
        assert 200 <= status < 600 and not 300 <= status < 400, where
        assert b"Traceback (most recent" not in body, where
        if invalid_http and (status, body) == (400, UVICORN_INVALID_HTTP):
            return  # refused by the HTTP parser: our app never saw it (see the report)
        if method == "HEAD" or (method == "OPTIONS" and status == 200):
            assert body == b"", where
            return
        if status >= 400:
            assert content_type == "application/json", where
            info = check_error_body(body)["info"]
            if status >= 500:
                self.check_model_caused(info, where)
            else:
                assert not INTERNAL_TEXT.search(info), where
        elif path == "/health/ping":
            assert body == b"pong", where
        elif self.json_answers:
            assert content_type == "application/json", where
            orjson.loads(body)  # strict JSON: no bare NaN, valid UTF-8

    def check_model_caused(self, info: str, where: str) -> None:
        """A 5xx (REST) or INTERNAL (gRPC) answer must come from the model."""
        log = self.new_log()
        if raised_in_user_code(log):
            return
        assert info.startswith(MODEL_OUTPUT_ERRORS), (
            f"server error not caused by the model: {where}\n{log[-3000:]}"
        )

    # ------------------------------------------------------------------ gRPC

    def rpc(
        self,
        path: str,
        data: bytes,
        # StatusCode by its own name: in this class, `grpc` is the client property.
        known: Callable[[StatusCode, str], bool] = lambda code, details: False,
    ) -> tuple[StatusCode, bytes | None, str]:
        """One RPC, then the invariants on its answer. `known(code, details)` is True for
        answers of a known bug (each with its xfail test), which are let through."""
        self.new_log()
        code, answer, details = self.grpc.call(path, data)
        _event(f"gRPC {code.name}")
        where = f"{path} → {code.name}: {details[:500]!r}"
        if known(code, details):
            return code, answer, details
        assert code != grpc.StatusCode.UNKNOWN, where
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, where
        if code == grpc.StatusCode.INTERNAL:
            self.check_model_caused(details, where)
        elif code != grpc.StatusCode.OK:
            assert not INTERNAL_TEXT.search(details), where
        return code, answer, details
