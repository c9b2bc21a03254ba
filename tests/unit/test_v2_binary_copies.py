"""The binary tensor data path copies a tensor at most once each way.

What is proved, for a 1000x1000 FP32 round trip through the REST app (binary input,
``binary_data_output`` asked for, an identity model):

- **In, one copy**: the body arrives as the server's transport hands it over, in chunks
  (64 KiB here, as uvicorn's reads give them); the app joins them into one buffer (the one
  copy) and the array the user's ``predict`` gets is a view of that buffer
  (``np.frombuffer``), not a copy of it.
- **Out, no copy in the app**: the tensor's bytes in the reply are a view of the very array
  the user returned; only the transport's socket write may copy them once more.
- **Both together**: Python's allocation tracer (``tracemalloc``, which numpy reports its
  data buffers to) sees the request allocate at its peak less than twice the tensor's size.
  A control model that copies its input once goes over that bound, so the meter does see
  tensor copies and the first test cannot pass for want of seeing them.

The app is driven as the ASGI server drives it (``receive`` and ``send`` callables), rather
than through httpx as the other REST tests do, so that the only allocations traced are the
server's: the client's own joining of the reply would otherwise count too.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import numpy as np
import orjson
import pytest

from .engine_harness import Harness

SHAPE = (1000, 1000)
CHUNK = 64 * 1024
PATH = "/v2/models/{name}/infer"


class Identity:
    """Keeps the array it was given, and answers it unchanged."""

    def __init__(self) -> None:
        self.seen: np.ndarray | None = None

    def predict(self, X: np.ndarray, feature_names: Any) -> np.ndarray:
        self.seen = X
        return X


class CopiesOnce(Identity):
    """The control: one copy of the tensor, made by the model."""

    def predict(self, X: np.ndarray, feature_names: Any) -> np.ndarray:
        self.seen = X
        return X.copy()


def binary_request(arr: np.ndarray) -> tuple[list[bytes], int]:
    """The request body in transport-sized chunks, and the JSON header's length."""
    data = arr.astype("<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(arr.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    body = header + data
    return [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)], len(header)


def round_trip(h: Harness, chunks: list[bytes], header_length: int) -> list[dict[str, Any]]:
    """One request through the ASGI app; the messages it sent, bodies as it gave them."""
    size = sum(map(len, chunks))
    path = PATH.format(name=type(h.user).__name__)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(size).encode()),
            (b"inference-header-content-length", str(header_length).encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 9000),
    }
    pending = iter(range(len(chunks)))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        i = next(pending, None)
        if i is None:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[i], "more_body": i < len(chunks) - 1}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    h.loop.run_until_complete(h.app(scope, receive, send))
    return sent


def reply_of(sent: list[dict[str, Any]]) -> tuple[int, dict[str, Any], list[Any]]:
    """(status, the JSON header, the body parts after it) of the sent messages."""
    start = sent[0]
    assert start["type"] == "http.response.start"
    parts = [m["body"] for m in sent[1:] if m.get("body")]
    headers = dict(start["headers"])
    cut = int(headers[b"inference-header-content-length"])
    whole = b"".join(bytes(p) for p in parts)
    return start["status"], orjson.loads(whole[:cut]), parts


def traced_peak(h: Harness, chunks: list[bytes], header_length: int) -> tuple[int, list]:
    round_trip(h, chunks, header_length)  # warm: first-use imports and caches
    tracemalloc.start()
    try:
        sent = round_trip(h, chunks, header_length)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, sent


@pytest.fixture
def tensor() -> np.ndarray:
    return np.random.default_rng(12).random(SHAPE, dtype=np.float32)


def test_binary_round_trip_copies_the_tensor_once_in_and_not_again(
    model: Any, tensor: np.ndarray
) -> None:
    h = model(Identity())
    chunks, header_length = binary_request(tensor)
    peak, sent = traced_peak(h, chunks, header_length)

    status, header, parts = reply_of(sent)
    assert status == 200, header
    assert header["outputs"][0]["parameters"] == {"binary_data_size": tensor.nbytes}
    out = np.frombuffer(b"".join(bytes(p) for p in parts)[-tensor.nbytes :], "<f4")
    assert np.array_equal(out.reshape(SHAPE), tensor)

    # In: the user's array views one buffer holding the whole request body.
    seen = h.user.seen
    assert seen is not None and not seen.flags.owndata
    owner: Any = seen
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    if isinstance(owner, memoryview):  # a slice of the body past the JSON header
        owner = owner.obj
    assert isinstance(owner, bytes) and len(owner) == sum(map(len, chunks))
    # Out: the reply's tensor bytes are the user's array itself.
    assert any(np.shares_memory(np.asarray(p), seen) for p in parts)
    # Together: less than two tensors allocated at the peak (the join is the only one).
    assert peak < 2 * tensor.nbytes, f"peak {peak} bytes for a {tensor.nbytes}-byte tensor"


def test_the_meter_sees_a_copy_of_the_tensor(model: Any, tensor: np.ndarray) -> None:
    h = model(CopiesOnce())
    chunks, header_length = binary_request(tensor)
    peak, sent = traced_peak(h, chunks, header_length)
    assert reply_of(sent)[0] == 200
    assert peak >= 2 * tensor.nbytes
