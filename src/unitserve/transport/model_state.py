"""The one model a worker serves, as the Open Inference Protocol sees it: its name and
version, whether it is ready, and the repository extension's load and unload.

Shared by the REST and gRPC transports of a worker. The model copy is never released:
``unload`` only takes the model out of service (not ready, inference answered
"unavailable") until ``load`` puts it back, as Triton does for an unloaded model.
The state is the worker's own: with several workers, a repository request reaches
one of them.
"""

from __future__ import annotations

from typing import Any

from unitserve.calls import Invoker
from unitserve.errors import NotReady, UnknownModel

READY = "READY"
LOADING = "LOADING"
UNAVAILABLE = "UNAVAILABLE"


class ModelState:
    def __init__(self, invoker: Invoker, name: str, version: str | None = None) -> None:
        self.invoker = invoker
        self.name = name
        self.version = version
        self.unloaded = False

    def check(self, name: str, version: str | None = None) -> None:
        """UnknownModel (404 / NOT_FOUND) unless `name` (and `version`, when given) are
        the served model's."""
        if name != self.name:
            raise UnknownModel(f"unknown model {name!r}: this server serves {self.name!r}")
        if version and version != self.version:  # gRPC sends "" for "whichever is served"
            served = f"only version {self.version!r}" if self.version else "no versions"
            raise UnknownModel(f"unknown version {version!r} of model {name!r}: it has {served}")

    @property
    def ready(self) -> bool:
        return self.invoker.ready.is_set() and not self.unloaded

    @property
    def state(self) -> str:
        if self.unloaded:
            return UNAVAILABLE
        if self.invoker.ready.is_set():
            return READY
        return LOADING if not self.invoker.settled.is_set() else UNAVAILABLE

    @property
    def reason(self) -> str:
        if self.unloaded:
            return "unloaded through the repository extension: load it to serve it again"
        if self.invoker.ready.is_set():
            return ""
        return self.invoker.not_ready_reason

    def require_ready(self) -> None:
        """NotReady (503 / UNAVAILABLE), saying why, unless the model can answer."""
        if not self.ready:
            raise NotReady(f"model {self.name!r} is not ready: {self.reason}")

    def index_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name}
        if self.version is not None:
            entry["version"] = self.version
        entry["state"] = self.state
        entry["reason"] = self.reason
        return entry

    def load(self, name: str) -> None:
        self.check(name)
        if not self.invoker.ready.is_set():
            # load() failed or is still running: nothing to put back in service.
            raise NotReady(f"model {self.name!r} cannot be loaded: {self.invoker.not_ready_reason}")
        self.unloaded = False

    def unload(self, name: str) -> None:
        self.check(name)
        self.unloaded = True
