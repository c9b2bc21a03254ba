"""Tensor shapes from the wire, checked before anything is allocated.

A shape is a few bytes that can describe any number of elements. Three things
must hold before numpy sees it: its size is computed exactly (numpy's int64
product wraps around, so ``[65536] * 4`` would "need" 0 values), it does not
describe more elements than the request carries unless that is a small number
(a tftensor's single value fills its whole shape, and a zero-size tensor's other
dimensions still become ``t:i`` names in the answer: without a bound, a request
of 30 bytes could ask for gigabytes), and numpy can hold its number of
dimensions. Each failure is the client's mistake: a BadRequest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from unitserve.errors import BadRequest

#: The most elements a shape may describe beyond the values the request carries.
MAX_IMPLIED_ELEMENTS = 1 << 20


def shown(shape: Sequence[int]) -> str:
    """A shape for an error message, bounded (a shape may have millions of entries)."""
    if len(shape) <= 8:
        return str(list(shape))
    return f"[{', '.join(str(d) for d in shape[:8])}, ...] ({len(shape)} dimensions)"


def element_count(shape: Sequence[int], carried: int, where: str) -> int:
    """The exact number of elements `shape` describes, given that the request carries
    `carried` values. BadRequest if it implies more than MAX_IMPLIED_ELEMENTS others."""
    described = math.prod(d for d in shape if d)  # a zero-size shape's other dimensions
    if described > carried and described > MAX_IMPLIED_ELEMENTS:
        if 0 in shape:
            # It holds no elements, but its other dimensions are still made into
            # something (column names, an answer's shape): bounded all the same.
            raise BadRequest(
                f"{where} shape {shown(shape)} holds no elements, but its other dimensions "
                f"multiply to {described}, more than the {MAX_IMPLIED_ELEMENTS} allowed "
                "for an empty tensor"
            )
        raise BadRequest(
            f"{where} shape {shown(shape)} describes {described} elements for the "
            f"{carried} values sent (at most {MAX_IMPLIED_ELEMENTS} may be implied)"
        )
    return math.prod(shape)


def reshape(values: np.ndarray, shape: Sequence[int], where: str) -> np.ndarray:
    """`values` in `shape`: the value count must match the shape exactly."""
    expected = element_count(shape, values.size, where)
    if values.size != expected:
        raise BadRequest(
            f"{where} has {values.size} values but shape {shown(shape)} needs {expected}"
        )
    return _checked(lambda: values.reshape(shape), shape, where)


def filled(shape: Sequence[int], value: object, dtype: np.dtype, where: str) -> np.ndarray:
    """An array of `shape` filled with `value` (TensorFlow's rule for one value or none)."""
    element_count(shape, 0, where)
    return _checked(lambda: np.full(shape, value, dtype=dtype), shape, where)


def _checked(make: Callable[[], np.ndarray], shape: Sequence[int], where: str) -> np.ndarray:
    try:
        return make()
    except ValueError:
        # The size was checked: what is left is numpy's limit on dimensions
        # (32 in numpy 1.x, 64 in 2.x).
        raise BadRequest(
            f"{where} shape {shown(shape)} has {len(shape)} dimensions, more than numpy supports"
        ) from None
