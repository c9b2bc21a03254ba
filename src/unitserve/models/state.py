"""Whether a model can answer, and why not: the one owner of a model's readiness.

A model is *loading* (its ``load()`` has not finished), *ready*, *failed* (``load()``
raised: the reason says so) or *unloaded* (taken out of service and released through
the repository extension). Requests wait while it loads (up to the request timeout)
and are answered "not ready" (503 / UNAVAILABLE) in the other states.

Lives on the worker's event loop: the transports' threads only read it.
"""

from __future__ import annotations

import asyncio

from unitserve.errors import NotReady

LOADING = "LOADING"
READY = "READY"
FAILED = "FAILED"
UNLOADED = "UNLOADED"

# The states as the Open Inference Protocol's repository index names them.
_INDEX_STATE = {LOADING: "LOADING", READY: "READY", FAILED: "UNAVAILABLE", UNLOADED: "UNAVAILABLE"}

UNLOADED_REASON = "unloaded through the repository extension: load it to serve it again"


class ModelState:
    def __init__(self, what: str = "the model") -> None:
        self.what = what
        # Read on every request: a plain attribute, kept in step with `status`.
        self.is_ready = False
        self.status = LOADING
        self.reason = f"{what} is loading: load() has not finished"
        # Ready, failed or unloaded: nothing to wait for. The event that requests wait
        # on is made when one first has to (a repository server holds thousands of
        # states, most never waited on, and an event is most of a state's memory).
        self._is_settled = False
        self._settled: asyncio.Event | None = None

    def mark_loading(self) -> None:
        self._set(LOADING, f"{self.what} is loading: load() has not finished")
        self._is_settled = False
        if self._settled is not None:
            self._settled.clear()

    def mark_ready(self) -> None:
        self._set(READY, "")
        self._settle()

    def mark_failed(self, reason: str) -> None:
        """load() failed: requests waiting for it (and later ones) are answered 503."""
        self._set(FAILED, reason)
        self._settle()

    def mark_unloaded(self, reason: str = UNLOADED_REASON) -> None:
        self._set(UNLOADED, reason)
        self._settle()

    def _set(self, status: str, reason: str) -> None:
        self.status = status
        self.reason = reason
        self.is_ready = status == READY

    def _settle(self) -> None:
        self._is_settled = True
        if self._settled is not None:
            self._settled.set()

    @property
    def settled(self) -> bool:
        return self._is_settled

    @property
    def index_state(self) -> str:
        """The state as a repository index entry names it."""
        return _INDEX_STATE[self.status]

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Return once the model is ready; NotReady (saying why) if it is not, or did
        not become ready within `timeout` seconds."""
        if not self._is_settled:
            if self._settled is None:
                self._settled = asyncio.Event()
            if timeout is None:
                await self._settled.wait()
            else:
                try:
                    await asyncio.wait_for(self._settled.wait(), timeout)
                except TimeoutError:
                    raise NotReady(self.reason) from None
        if not self.is_ready:
            raise NotReady(self.reason)
