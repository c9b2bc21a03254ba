"""Request bodies: the same seeded numbers in every wire form a server under test speaks.

Logical payloads (what the report's rows are called):

| payload        | array     | Seldon REST       | Seldon gRPC          | V2 (MLServer)        |
|----------------|-----------|-------------------|----------------------|----------------------|
| small          | 1 x 4     | `ndarray`         | `ndarray` (ListValue)| FP64 data / contents |
| medium         | 100 x 100 | `ndarray`         | `ndarray` (ListValue)| FP64 data / contents |
| medium-tensor  | 100 x 100 | `tensor`          | `tensor` (packed)    | (same as medium)     |
| large          | 1000x1000 | `ndarray`         | `tensor` (packed)    | FP64 data / contents |

Open Inference Protocol rows (servers of the "v2" family only), FP32 as its users send it:

| payload      | array     | REST                                   | gRPC                 |
|--------------|-----------|----------------------------------------|----------------------|
| v2-small     | 1 x 4     | JSON `data`                            | `raw_input_contents` |
| v2-large     | 1000x1000 | JSON `data`                            | `raw_input_contents` |
| v2-large-bin | 1000x1000 | binary tensor data extension both ways | (REST only)          |

gRPC `large` uses the packed `tensor` form: as a ListValue the 1M numbers would be ~11 MB of
nested messages, a form nobody sends at that size. Both forms exceed gRPC's default 4 MiB receive
limit, so servers on default settings may reject it; the report says so where it happens.
Numbers are uniform doubles in [0, 1) from a fixed seed, written with full precision (shortest
repr, ~18 characters), so a reply can be compared exactly with the request.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from unitbench import protos
from unitbench.paths import PAYLOAD_DIR

SEED = 20240505
SHAPES: dict[str, tuple[int, int]] = {
    "small": (1, 4),
    "medium": (100, 100),
    "medium-tensor": (100, 100),
    "large": (1000, 1000),
}
SELDON_PAYLOADS = tuple(SHAPES)
V2_SHAPES: dict[str, tuple[int, int]] = {
    "v2-small": (1, 4),
    "v2-large": (1000, 1000),
    "v2-large-bin": (1000, 1000),
}
SHAPES.update(V2_SHAPES)
PAYLOADS = tuple(SHAPES)
V2_ONLY = tuple(V2_SHAPES)
V2_REST_ONLY = ("v2-large-bin",)
V2_MODEL = "identity"
SELDON_REST_PATH = "/predict"
SELDON_GRPC_PATH = "/seldon.protos.Model/Predict"
V2_REST_PATH = f"/v2/models/{V2_MODEL}/infer"
V2_GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"


@dataclass(frozen=True)
class Body:
    """One request body on disk and how to send it."""

    payload: str  # logical payload name (small, medium, ...)
    proto: str  # "rest" or "grpc"
    family: str  # "seldon" or "v2"
    form: str  # "ndarray", "tensor" or "v2"
    path: str  # URL path (REST) or /package.Service/Method (gRPC)
    file: Path  # the exact bytes the load generator sends (gRPC: length-prefixed frame)
    headers: tuple[tuple[str, str], ...] = ()  # besides content-type (binary: the JSON's length)

    @property
    def content_type(self) -> str:
        if self.proto == "grpc":
            return "application/grpc"
        return "application/octet-stream" if self.form == "v2-binary" else "application/json"

    @property
    def message(self) -> bytes:
        """The body without the gRPC frame prefix (what a gRPC client library sends)."""
        data = self.file.read_bytes()
        return data[5:] if self.proto == "grpc" else data

    @property
    def size(self) -> int:
        return self.file.stat().st_size


@cache
def array(payload: str) -> np.ndarray:
    """The numbers of a payload (the same for every form of it)."""
    rng = np.random.default_rng([SEED, *SHAPES[payload]])
    numbers = rng.random(SHAPES[payload])
    # the Open Inference rows carry FP32, as tritonclient and KServe users send it
    return numbers.astype(np.float32) if payload in V2_SHAPES else numbers


def is_large(payload: str) -> bool:
    return SHAPES[payload][0] >= 1000


def seldon_form(payload: str, proto: str) -> str:
    if payload == "medium-tensor" or (payload == "large" and proto == "grpc"):
        return "tensor"
    return "ndarray"


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def binary_header_length(payload: str) -> int:
    """Length of the JSON part of a binary-extension body (its Inference-Header-Content-Length)."""
    return len(_v2_binary_header(array(payload)))


def _v2_binary_header(data: np.ndarray) -> bytes:
    tensor = {"name": "input-0", "shape": list(data.shape), "datatype": "FP32"}
    return _json(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": data.nbytes}}],
            "parameters": {"binary_data_output": True},
        }
    )


def _encode(payload: str, proto: str, family: str, form: str) -> bytes:
    data = array(payload)
    if form == "v2-binary":
        return _v2_binary_header(data) + data.astype("<f4").tobytes()
    if form == "v2-raw":
        return protos.grpc_frame(protos.v2_request_raw(data, V2_MODEL))
    if form == "v2-fp32":
        tensor = {"name": "input-0", "shape": list(data.shape), "datatype": "FP32"}
        # float() of a float32 is exact, so every server parses back the very same FP32 number
        return _json({"inputs": [{**tensor, "data": [float(x) for x in data.ravel()]}]})
    if family == "v2":
        if proto == "grpc":
            return protos.grpc_frame(protos.v2_request(data, V2_MODEL))
        tensor = {"name": "input-0", "shape": list(data.shape), "datatype": "FP64"}
        return _json({"inputs": [{**tensor, "data": data.ravel().tolist()}]})
    if proto == "grpc":
        return protos.grpc_frame(protos.seldon_request(data, form))
    if form == "tensor":
        tensor = {"shape": list(data.shape), "values": data.ravel().tolist()}
        return _json({"data": {"tensor": tensor}})
    return _json({"data": {"ndarray": data.tolist()}})


def body(payload: str, proto: str, family: str) -> Body | None:
    """The body for a payload in a family's wire form, written once; None if it has no such form."""
    if payload not in SHAPES:
        raise ValueError(f"unknown payload {payload!r}; known: {', '.join(PAYLOADS)}")
    headers: tuple[tuple[str, str], ...] = ()
    if payload in V2_SHAPES:
        if family != "v2" or (proto == "grpc" and payload in V2_REST_ONLY):
            return None  # only servers of the Open Inference Protocol get these rows
        if payload in V2_REST_ONLY:
            form = "v2-binary"
            headers = (("Inference-Header-Content-Length", str(binary_header_length(payload))),)
        else:
            form = "v2-raw" if proto == "grpc" else "v2-fp32"
        path = V2_GRPC_PATH if proto == "grpc" else V2_REST_PATH
    elif family == "v2":
        if payload == "medium-tensor":
            return None  # V2 has one form; MLServer's `medium` row stands for both
        form = "v2"
        path = V2_GRPC_PATH if proto == "grpc" else V2_REST_PATH
    else:
        form = seldon_form(payload, proto)
        path = SELDON_GRPC_PATH if proto == "grpc" else SELDON_REST_PATH
    ext = "bin" if proto == "grpc" or form == "v2-binary" else "json"
    file = PAYLOAD_DIR / f"{family}-{proto}-{payload}-{SEED}.{ext}"
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_bytes(_encode(payload, proto, family, form))
        tmp.replace(file)
    return Body(payload, proto, family, form, path, file, headers)
