"""The served model's place in the model repository: loaded, or unloaded by a client.

The Open Inference Protocol's repository extension lets a client unload the model and
load it again (Seldon Core 2's agent does so, and Triton's clients offer it). unitserve
keeps its one model in memory throughout: "unloaded" only makes the model unavailable
on the Open Inference Protocol (not ready, inference refused) until a client loads it
again. REST and gRPC share the one object each worker's `Invoker` holds, so an unload
over one transport shows on the other. The Seldon protocol's routes never look at it.

The state belongs to one worker: with several workers, an unload reaches only the
worker that answered it.
"""

from __future__ import annotations

# Repository states, as the protocol's index names them.
READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
LOADING = "LOADING"

#: Why an unloaded model does not answer (the sentence clients receive).
UNLOADED_REASON = "the model was unloaded through the model repository: load it again first"


class ModelState:
    """Whether a client unloaded the model. A plain flag: setting and reading a Python
    attribute is atomic, and the REST loop and the gRPC threads only set or read it."""

    __slots__ = ("unloaded",)

    def __init__(self) -> None:
        self.unloaded = False

    def unload(self) -> None:
        self.unloaded = True

    def load(self) -> None:
        self.unloaded = False

    def state(self, loaded: bool) -> tuple[str, str]:
        """(repository state, reason) given whether ``load()`` has finished."""
        if self.unloaded:
            return UNAVAILABLE, "unloaded"
        if not loaded:
            return LOADING, "load() has not finished"
        return READY, ""
