"""The engine's view of a request and of an answer, independent of the wire.

A codec turns a SeldonMessage (JSON dict or protobuf) into a `Message` and a
`Reply` back into its wire form. Payload kinds keep Seldon's names.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

# Payload kinds. The first four live under `data`; DATA_EMPTY is a `data`
# object with none of ndarray / tensor / tftensor in it.
NDARRAY = "ndarray"
TENSOR = "tensor"
TFTENSOR = "tftensor"
DATA_EMPTY = "data"
STR = "strData"
BIN = "binData"
JSON = "jsonData"
CUSTOM = "customData"

DATA_KINDS = frozenset({NDARRAY, TENSOR, TFTENSOR, DATA_EMPTY})


@dataclass(slots=True)
class Message:
    """One decoded SeldonMessage.

    `features` is what the user method receives (numpy array, str, bytes, JSON
    value or protobuf Any); `meta` is the meta argument exactly as Seldon passes
    it (REST: the request's object or None; proto: a dict, ``{}`` when absent).
    """

    kind: str | None
    features: Any
    names: list[Any] = field(default_factory=list)
    meta: dict[str, Any] | None = None


@dataclass(slots=True)
class FeedbackMessage:
    """A decoded Feedback: the request's features and names, reward, truth and the
    routing entry for this node (None if absent)."""

    request: Message
    reward: float
    truth: Any
    routing: int | None


@dataclass(slots=True)
class Reply:
    """An answer to encode: payload `kind` and `value`, `names` for data kinds, `meta`.

    For data kinds `value` is a numpy array, or for NDARRAY the user's own list
    (kept as is, as Seldon does on REST).
    """

    kind: str
    value: Any
    names: list[Any] | None
    meta: dict[str, Any]


#: How a model standing in for one of MLServer's runtimes made its outputs: arrays, as
#: MLServer's NumPy codec encodes them, or the columns of a table, as its pandas codec does.
ARRAYS = "np"
COLUMNS = "pd"


class RuntimeOutputs(dict[str, Any]):
    """The named outputs (name → array) of a model that stands in for one of MLServer's
    inference runtimes (the prepackaged servers on the Open Inference Protocol).

    The model says what its outputs are; the Open Inference codec writes them as
    MLServer writes such outputs (their ``content_type`` tags, a 1-D array as one
    value a row), so that a client, or a Core 2 pipeline passing them on, gets
    MLServer's answer. `made_of` is ARRAYS or COLUMNS; `content_type` is the content
    type of the answer as a whole, when the runtime names one (MLServer's MLflow
    runtime does), else None. The request's parameters are not echoed, as the
    runtimes do not echo them."""

    __slots__ = ("content_type", "made_of")

    def __init__(
        self, outputs: dict[str, Any], made_of: str = ARRAYS, content_type: str | None = None
    ) -> None:
        super().__init__(outputs)
        self.made_of = made_of
        self.content_type = content_type

    def with_outputs(self, outputs: dict[str, Any]) -> RuntimeOutputs:
        """Other outputs made the same way (a batch's answer split by request)."""
        return RuntimeOutputs(outputs, self.made_of, self.content_type)


class Codec(Protocol):
    """What the engine needs from a wire format."""

    #: True when numbers travel as doubles and meta comes from protobuf (gRPC,
    #: REST feedback); False for the REST JSON path where ints stay ints.
    proto: bool

    def decode(self, request: Any) -> Message: ...

    def decode_list(self, request: Any) -> list[Message]: ...

    def decode_feedback(self, request: Any, routing_key: str) -> FeedbackMessage: ...

    def encode(self, reply: Reply) -> Any: ...

    def raw_metrics(self, answer: Any) -> list[dict[str, Any]]: ...

    def without_raw_metrics(self, answer: Any) -> Any: ...

    def encode_raw(self, answer: Any) -> Any: ...


# Request ids must be unique, not secret: their bits come from a generator seeded from
# the system's randomness once per process (again in each forked worker, so that workers
# never share a sequence). Reading os.urandom for each request instead is a system call
# that lets go of the GIL in the middle of the user thread's work, handing the
# interpreter to the event loop's thread and back: a thread switch a request.
_id_bits = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _id_bits.seed(os.urandom(32)))


def new_request_id() -> str:
    """An id for a request that came without one (a Seldon puid, an inference id): a
    random version-4 UUID in the text `str(uuid.uuid4())` writes, built from the random
    bits' hex directly, for about a third of that call's CPU (the `uuid.UUID` object
    costs more than the rest of a request's bookkeeping)."""
    h = f"{_id_bits.getrandbits(128):032x}"
    # The version nibble is 4; the variant's two top bits are 10 (8, 9, a or b).
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"
