"""One verified request: send the very body the load generator will send, check the answer.

Checks (a server's `check` in the server table):
  seldon  the reply is a Seldon message whose `ndarray`/`tensor` equals the request's numbers
  v2      the reply's first output equals the request's numbers and shape
  echo    the reply body is byte-equal to the request body
  status  HTTP 200 / gRPC OK is enough (servers that answer a fixed body)
"""

import http.client
import json
from dataclasses import dataclass

import grpc
import numpy as np

from unitbench import payloads, protos
from unitbench.payloads import Body


class CheckFailed(Exception):
    """The server answered, but not with what an identity model must answer."""


@dataclass(frozen=True)
class Answer:
    ok: bool
    detail: str
    reply_bytes: int = 0  # reply body size (gRPC: the message, without the 5-byte frame)


def _compare(got: np.ndarray, want: np.ndarray) -> None:
    if got.shape != want.shape:
        raise CheckFailed(f"shape {got.shape} != {want.shape}")
    if not np.array_equal(got, want):
        raise CheckFailed(f"numbers differ ({int((got != want).sum())} of {want.size})")


def _seldon_json_array(reply: dict) -> np.ndarray:
    data = reply.get("data") or {}
    if "ndarray" in data:
        return np.asarray(data["ndarray"], dtype=float)
    if "tensor" in data:
        tensor = data["tensor"]
        return np.asarray(tensor["values"], dtype=float).reshape(tensor["shape"])
    raise CheckFailed(f"no ndarray/tensor in reply: {str(reply)[:200]}")


def _v2_json_array(reply: dict, binary: bytes = b"") -> np.ndarray:
    output = (reply.get("outputs") or [None])[0]
    if not output:
        raise CheckFailed(f"no outputs in reply: {str(reply)[:200]}")
    fp32 = output.get("datatype") == "FP32"
    size = (output.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if not fp32:
            raise CheckFailed(f"binary output of datatype {output.get('datatype')}")
        return np.frombuffer(binary[:size], dtype="<f4").reshape(output["shape"])
    dtype = np.float32 if fp32 else float
    return np.asarray(output["data"], dtype=dtype).reshape(output["shape"])


def _v2_binary_reply(reply: bytes, header_length: str | None) -> np.ndarray:
    """A binary-extension reply: JSON of `header_length` bytes, then the output buffers."""
    if header_length is None:
        return _v2_json_array(json.loads(reply))
    cut = int(header_length)
    return _v2_json_array(json.loads(reply[:cut]), reply[cut:])


def check_reply(
    check: str, body: Body, request: bytes, reply: bytes, header_length: str | None = None
) -> None:
    """Raise CheckFailed unless `reply` is the identity answer to `request`."""
    if check == "status":
        return
    if check == "echo":
        if reply != request:
            raise CheckFailed(f"echo differs: {len(reply)} vs {len(request)} bytes")
        return
    want = payloads.array(body.payload)
    try:
        if body.proto == "grpc":
            reader = protos.v2_reply_array if check == "v2" else protos.seldon_reply_array
            got = reader(reply)
        elif body.form == "v2-binary":
            got = _v2_binary_reply(reply, header_length)
        else:
            decoded = json.loads(reply)
            got = _v2_json_array(decoded) if check == "v2" else _seldon_json_array(decoded)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckFailed(f"cannot read reply: {exc}") from exc
    _compare(got, want)


def rest_request(port: int, body: Body, timeout: float) -> tuple[int, bytes, str | None]:
    """(status, body, Inference-Header-Content-Length of the reply if any)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            body.path,
            body=body.file.read_bytes(),
            headers={"Content-Type": body.content_type, **dict(body.headers)},
        )
        response = conn.getresponse()
        header_length = response.getheader("Inference-Header-Content-Length")
        return response.status, response.read(), header_length
    finally:
        conn.close()


# A private subchannel pool and short reconnect backoff: grpcio otherwise shares connections
# (and their exponential backoff, 1 s, 1.6 s, 2.6 s, ...) between channels to the same address,
# and one attempt that reached a server not yet speaking HTTP/2 would delay start-up detection.
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 200),
]


def grpc_request(port: int, body: Body, timeout: float) -> bytes:
    """One unary call with the body's message bytes, through grpcio (raw bytes, no stubs)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(body.path)  # no (de)serialisers: bytes in, bytes out
        return call(body.message, timeout=timeout)


def verify(port: int, body: Body, check: str, timeout: float = 60.0) -> Answer:
    """Send one request and check the answer. Connection errors are failures, not exceptions."""
    header_length: str | None = None
    try:
        if body.proto == "grpc":
            reply = grpc_request(port, body, timeout)
            request = body.message
        else:
            status, reply, header_length = rest_request(port, body, timeout)
            if status != 200:
                return Answer(False, f"HTTP {status}: {reply[:300]!r}", len(reply))
            request = body.file.read_bytes()
        check_reply(check, body, request, reply, header_length)
    except grpc.RpcError as exc:
        return Answer(False, f"gRPC {exc.code().name}: {exc.details()}")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(False, f"request failed: {exc!r}")
    except CheckFailed as exc:
        return Answer(False, f"wrong answer: {exc}", len(reply))
    return Answer(True, f"{check} OK, {len(reply)}-byte reply", len(reply))
