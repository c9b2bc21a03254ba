"""Hypothesis strategies: SeldonMessage JSON (well-formed, odd and wrong), the ways a
REST request carries it, mutated bytes, and protobuf messages for gRPC.

Generated values mix valid shapes with wrong types at every level, so that each
decoding branch of the codecs sees both. Sizes stay small: the point is variety
of structure, not volume (the limits tests send the large things).
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, cast

from google.protobuf import json_format
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from unitserve.proto import prediction_pb2 as pb
from unitserve.proto.tensorflow import types_pb2

# ----------------------------------------------------------------------------- JSON values

_text = st.text(max_size=12)
_keys = st.one_of(
    st.sampled_from(["a", "b", "data", "meta", "names", "x", "0", ""]), st.text(max_size=6)
)
_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.integers(),  # beyond 64 bits now and then
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e308, -1e308, 5e-324, 2**53 + 1]),
)
json_scalars = st.one_of(st.none(), st.booleans(), _numbers, _text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=12,
)


def deep(depth: int, leaf: Any = 1, kind: str = "list") -> Any:
    """A value nested `depth` levels deep (lists or objects)."""
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


_deep = st.builds(
    deep,
    st.sampled_from([63, 65, 100, 199, 201, 300, 600, 1000]),
    st.just(1),
    st.sampled_from(["list", "object"]),
)
odd_values = st.one_of(json_values, _deep)


def either(good: st.SearchStrategy[Any], bad_weight: int = 1) -> st.SearchStrategy[Any]:
    """`good` most of the time, any JSON value (a wrong type) sometimes."""
    return st.one_of(*([good] * 3), *([odd_values] * bad_weight))


# ----------------------------------------------------------------------------- payloads

_dtypes = st.sampled_from(["int64", "float64", "bool", "<U3"])


@st.composite
def rectangular(draw: st.DrawFn) -> Any:
    """A nested list numpy reads as a rectangular array (what a real client sends)."""
    arr = draw(
        hnp.arrays(
            dtype=draw(_dtypes),
            shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4),
            elements=None,
        ).filter(lambda a: a.dtype.kind != "f" or bool(a.size == 0 or abs(a).max() < 1e300))
    )
    return arr.tolist()


ndarrays = st.one_of(
    rectangular(),
    st.lists(st.lists(_numbers, max_size=3), max_size=3),  # ragged now and then
    st.lists(json_values, max_size=4),
    odd_values,
)


@st.composite
def consistent_tensor(draw: st.DrawFn) -> dict[str, Any]:
    shape = draw(st.lists(st.integers(0, 4), max_size=4))
    values = draw(st.lists(_numbers, min_size=math.prod(shape), max_size=math.prod(shape)))
    return {"shape": shape, "values": values}


# Shapes that describe far more than they carry, or more dimensions than numpy holds.
_extreme_shapes = st.sampled_from(
    [
        [65536, 65536, 65536, 65536],  # 2**64: wraps to 0 in int64
        [0, 2**40],
        [0, 3_000_000],
        [100000, 100000],
        [1] * 70,
        [2**63, 2],
        [2**64 - 1],
        [],
    ]
)
tensors = st.one_of(
    consistent_tensor(),
    st.fixed_dictionaries(
        {},
        optional={
            "shape": either(st.one_of(st.lists(st.integers(-2, 5), max_size=4), _extreme_shapes)),
            "values": either(st.lists(_numbers, max_size=6)),
        },
    ),
    odd_values,
)

_DT_NAMES = [
    "DT_FLOAT",
    "DT_DOUBLE",
    "DT_INT32",
    "DT_UINT8",
    "DT_INT16",
    "DT_INT8",
    "DT_STRING",
    "DT_COMPLEX64",
    "DT_INT64",
    "DT_BOOL",
    "DT_UINT16",
    "DT_COMPLEX128",
    "DT_HALF",
    "DT_UINT32",
    "DT_UINT64",
    "DT_RESOURCE",
    "DT_VARIANT",
    "DT_BFLOAT16",
]
_b64 = st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode())
_dims = st.lists(
    st.one_of(st.integers(-1, 5), st.sampled_from([0, 100000, 2**31, 2**62])), max_size=4
)
tftensors = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "dtype": either(st.sampled_from(_DT_NAMES) | st.integers(-1, 30)),
            "tensorShape": either(
                st.one_of(
                    _dims.map(lambda ds: {"dim": [{"size": str(d)} for d in ds]}),
                    st.just({"unknownRank": True}),
                )
            ),
            "tensorContent": either(_b64),
            "floatVal": either(st.lists(st.floats(width=32), max_size=4)),
            "doubleVal": either(st.lists(st.floats(), max_size=4)),
            "intVal": either(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=4)),
            "int64Val": either(st.lists(st.integers(-(2**63), 2**63 - 1).map(str), max_size=4)),
            "stringVal": either(st.lists(_b64, max_size=3)),
            "boolVal": either(st.lists(st.booleans(), max_size=4)),
            "halfVal": either(st.lists(st.integers(0, 65535), max_size=4)),
            "scomplexVal": either(st.lists(st.floats(width=32), max_size=4)),
            "uint64Val": either(st.lists(st.integers(0, 2**64 - 1).map(str), max_size=3)),
        },
    ),
    odd_values,
)

_names = either(st.lists(_text, max_size=4))
data_objects = st.one_of(
    st.fixed_dictionaries({}, optional={"names": _names, "ndarray": ndarrays}),
    st.fixed_dictionaries({"tensor": tensors}, optional={"names": _names}),
    st.fixed_dictionaries({"tftensor": tftensors}, optional={"names": _names}),
    st.fixed_dictionaries({}, optional={"names": _names}),
)

_metric = st.fixed_dictionaries(
    {"key": either(st.sampled_from(["calls", "my-counter", "x y", ""])), "value": either(_numbers)},
    optional={
        "type": either(st.sampled_from(["COUNTER", "GAUGE", "TIMER", "HISTOGRAM"])),
        "tags": either(st.dictionaries(_keys, _text, max_size=2)),
    },
)
metas = either(
    st.fixed_dictionaries(
        {},
        optional={
            "puid": either(_text),
            "tags": either(st.dictionaries(_keys, json_values, max_size=3)),
            "routing": either(st.dictionaries(_keys, st.integers(-(2**31), 2**31 - 1), max_size=2)),
            "requestPath": either(st.dictionaries(_keys, _text, max_size=2)),
            "metrics": either(st.lists(_metric, max_size=2)),
        },
    )
)
_status = st.fixed_dictionaries(
    {},
    optional={
        "code": either(st.integers()),
        "info": _text,
        "reason": _text,
        "status": either(st.sampled_from(["SUCCESS", "FAILURE", 0, 1])),
    },
)

messages = st.one_of(
    st.fixed_dictionaries({"data": either(data_objects)}, optional={"meta": metas}),
    st.fixed_dictionaries({"jsonData": odd_values}, optional={"meta": metas}),
    st.fixed_dictionaries({"strData": either(_text)}, optional={"meta": metas}),
    st.fixed_dictionaries(
        {"binData": either(st.one_of(_b64, st.sampled_from(["###", "abc", "", "=="])))},
        optional={"meta": metas},
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "meta": metas,
            "data": data_objects,
            "jsonData": json_values,
            "strData": _text,
            "binData": _b64,
            "customData": json_values,
            "status": _status,
            "extra": json_values,
        },
    ),
    odd_values,
)

aggregate_bodies = st.one_of(
    st.lists(messages, max_size=3),
    st.fixed_dictionaries({"seldonMessages": either(st.lists(messages, max_size=3))}),
    messages,
)

_routed_response = st.fixed_dictionaries(
    {},
    optional={
        "meta": st.fixed_dictionaries(
            {}, optional={"routing": st.dictionaries(_keys, st.integers(-5, 5), max_size=2)}
        ),
        "data": data_objects,
    },
)
feedback_bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "request": either(messages),
            "response": either(_routed_response),
            "reward": either(st.floats(width=32) | st.integers(-5, 5)),
            "truth": either(messages),
        },
    ),
    odd_values,
)

#: Request body strategy per engine operation (see ROUTES in transport/rest.py).
BODIES: dict[str, st.SearchStrategy[Any]] = {
    "predict": messages,
    "transform_input": messages,
    "transform_output": messages,
    "route": messages,
    "aggregate": aggregate_bodies,
    "send_feedback": feedback_bodies,
}


# ----------------------------------------------------------------------------- bytes


def to_json(value: Any, ascii_only: bool = True) -> bytes:
    """JSON text as a Python client writes it (bare NaN/Infinity included)."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """`data` with a few byte-level edits: cut, insert, flip, repeat, or splice in
    something nasty (deep brackets, a huge number, invalid UTF-8)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(out)))
        edit = draw(st.sampled_from(["cut", "insert", "flip", "repeat", "splice"]))
        if edit == "cut":
            del out[pos : pos + draw(st.integers(1, 8))]
        elif edit == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "flip" and pos < len(out):
            out[pos] ^= 1 << draw(st.integers(0, 7))
        elif edit == "repeat":
            out[pos:pos] = out[pos : pos + draw(st.integers(1, 16))]
        elif edit == "splice":
            out[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"[" * 300,
                        b"{" * 50,
                        b"1" * 400,
                        b"1e999",
                        b"NaN",
                        b"-Infinity",
                        b"\xff\xfe",
                        b"\\ud800",
                        b'"',
                        b"\x00",
                        b"]}",
                    ]
                )
            )
    return bytes(out)


# ----------------------------------------------------------------------------- protobuf


@st.composite
def mutated_from(draw: st.DrawFn, source: st.SearchStrategy[bytes]) -> bytes:
    """Bytes drawn from `source`, then mutated."""
    return draw(mutated(draw(source)))


def _parse(value: Any, message_type: Any) -> bytes | None:
    """The message for a JSON value, or None where protobuf refuses it."""
    try:
        return json_format.ParseDict(value, message_type()).SerializeToString()
    except (json_format.ParseError, TypeError, ValueError, AttributeError, RecursionError):
        return None


@st.composite
def proto_bytes(draw: st.DrawFn, message_type: Any, source: st.SearchStrategy[Any]) -> bytes:
    """A serialised `message_type` built from generated JSON (assume, not filter: a
    filter's report would write out the repr of `source`, megabytes of it)."""
    data = _parse(draw(source), message_type)
    assume(data is not None)
    return data  # type: ignore[return-value]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_list(depth: int) -> bytes:
    """A google.protobuf.ListValue holding `depth` - 1 more lists inside each other."""
    listvalue = b""
    for _ in range(depth - 1):
        listvalue = field(1, field(6, listvalue))  # ListValue.values[0].list_value
    return listvalue


def tensor_message(shape: list[int], values: list[float]) -> bytes:
    msg = pb.SeldonMessage()
    msg.data.tensor.shape.extend(shape)
    msg.data.tensor.values.extend(values)
    return msg.SerializeToString()


def tftensor_message(dims: list[int], dtype: int = 1, float_val: tuple[float, ...] = ()) -> bytes:
    msg = pb.SeldonMessage()
    tensor = msg.data.tftensor
    tensor.dtype = cast(types_pb2.DataType, dtype)
    for d in dims:
        tensor.tensor_shape.dim.add().size = d
    tensor.float_val.extend(float_val)
    return msg.SerializeToString()


extreme_protos = st.one_of(
    # jsonData (field 6) and data.ndarray (field 3 of data, field 3) nested deeply
    st.sampled_from([30, 49, 50, 51, 64, 100, 2000]).map(
        lambda n: field(6, field(6, nested_list(n)))
    ),
    st.sampled_from([30, 49, 50, 51, 64, 100, 2000]).map(
        lambda n: field(3, field(3, nested_list(n)))
    ),
    _extreme_shapes.filter(lambda s: all(d < 2**31 for d in s)).map(
        lambda s: tensor_message(s, [1.0])
    ),
    _extreme_shapes.filter(lambda s: all(d < 2**31 for d in s)).map(
        lambda s: tensor_message(s, [])
    ),
    _extreme_shapes.filter(lambda s: all(d < 2**63 for d in s)).map(
        lambda s: tftensor_message(s, 1, (1.0,))
    ),
    _extreme_shapes.filter(lambda s: all(d < 2**63 for d in s)).map(lambda s: tftensor_message(s)),
)
