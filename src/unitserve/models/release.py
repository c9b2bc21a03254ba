"""Letting an unloaded model's memory go, at the cost that takes and no more.

A model's objects go the moment the server drops its references to them, by reference
counting: nothing of the server's holds a model in a reference cycle, and no thread
keeps anything of the last call it ran (`on_a_thread` here, and the offloader's
threads, drop it before they answer). Python's cyclic collector is needed only when
the model's own objects hold one another (a class that keeps a bound method of itself,
say): a full collection looks at every object of the process, tens of milliseconds in
a worker that imported scikit-learn, so it runs only when the model's object outlived
its release.

Either way, the C allocator keeps the freed pages of the model's smaller arrays for
later allocations, so the worker's resident memory would stay at its peak after the
unload: on glibc they are handed back to the operating system (``malloc_trim``, well
under a millisecond).
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import gc
import logging
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("unitserve")

T = TypeVar("T")

# What says whether a released object is still there: it, or None once it is gone.
Tracker = Callable[[], object | None]


def tracker(obj: object) -> Tracker:
    """A `Tracker` of `obj` that does not keep it alive. An object that cannot be
    weakly referenced cannot be watched: it is taken to be still there."""
    try:
        return weakref.ref(obj)
    except TypeError:
        return lambda: True


def let_go(still_there: Tracker, what: str) -> bool:
    """After the server dropped its references to a model's object: collect reference
    cycles if the object is still there, then hand the freed memory back to the
    operating system. Returns whether a full collection ran."""
    collected = still_there() is not None
    if collected:
        started = time.perf_counter()
        gc.collect()
        log.debug(
            "%s was still in memory after its release (in a reference cycle, or held "
            "elsewhere): a full garbage collection took %.1f ms and it is %s",
            what,
            (time.perf_counter() - started) * 1e3,
            "still there" if still_there() is not None else "gone",
        )
    trim_heap()
    return collected


def trim_heap() -> bool:
    """Hand the C allocator's free memory back to the operating system; False where
    that cannot be done (not glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):  # a C library without it (musl)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


async def on_a_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a thread of the loop's default executor, as `asyncio.to_thread`,
    but leaving that thread no reference to the arguments or the result once the
    caller has it: an idle executor thread keeps its last call's until its next one,
    and a model loaded there would then outlive its unload."""
    box: list[Any] = [args]

    def run() -> None:
        box.append(fn(*box.pop()))

    try:
        await asyncio.to_thread(run)
        return box.pop()
    finally:
        box.clear()
