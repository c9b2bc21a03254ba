"""The Open Inference Protocol datatype table."""

from __future__ import annotations

import numpy as np
import pytest

from unitserve.errors import BadModelOutput, BadRequest
from unitserve.protocol.v2 import datatypes

TABLE = [
    ("BOOL", np.bool_, 1, "bool_contents"),
    ("UINT8", np.uint8, 1, "uint_contents"),
    ("UINT16", np.uint16, 2, "uint_contents"),
    ("UINT32", np.uint32, 4, "uint_contents"),
    ("UINT64", np.uint64, 8, "uint64_contents"),
    ("INT8", np.int8, 1, "int_contents"),
    ("INT16", np.int16, 2, "int_contents"),
    ("INT32", np.int32, 4, "int_contents"),
    ("INT64", np.int64, 8, "int64_contents"),
    ("FP16", np.float16, 2, None),
    ("FP32", np.float32, 4, "fp32_contents"),
    ("FP64", np.float64, 8, "fp64_contents"),
]


@pytest.mark.parametrize(("name", "dtype", "size", "contents"), TABLE)
def test_fixed_size_types_both_ways(name, dtype, size, contents):
    t = datatypes.by_name(name, "input 'x'")
    assert t.dtype == np.dtype(dtype)
    assert t.size == size == t.wire.itemsize
    assert t.wire.byteorder in "<|"
    assert t.contents == contents
    assert datatypes.of_array(np.zeros(2, dtype=dtype), "output") is t
    # The answer side also reads arrays in the other byte order.
    assert datatypes.of_array(np.zeros(2, dtype=np.dtype(dtype).newbyteorder(">")), "o") is t


def test_every_protocol_type_is_in_the_table():
    assert set(datatypes.BY_NAME) == {row[0] for row in TABLE} | {"BYTES"}


@pytest.mark.parametrize("array", [np.array(["a"]), np.array([b"a"]), np.array(["a"], object)])
def test_text_and_objects_are_bytes(array):
    t = datatypes.of_array(array, "output")
    assert t is datatypes.BYTES
    assert t.is_bytes and t.size is None and t.contents == "bytes_contents"


def test_bf16_is_refused_with_a_reason():
    with pytest.raises(BadRequest, match=r"BF16.*not support.*bfloat16"):
        datatypes.by_name("BF16", "input 'x'")


@pytest.mark.parametrize("name", ["FLOAT32", "fp32", None, 3, ["FP32"]])
def test_unknown_datatype_names_the_known_ones(name):
    with pytest.raises(BadRequest, match=r"input 'x' has datatype .*expected one of BOOL"):
        datatypes.by_name(name, "input 'x'")


@pytest.mark.parametrize("dtype", [np.complex64, "datetime64[s]", "V4"])
def test_answer_dtypes_the_protocol_cannot_carry(dtype):
    with pytest.raises(BadModelOutput, match="cannot carry"):
        datatypes.of_array(np.zeros(1, dtype=dtype), "output 'o'")
