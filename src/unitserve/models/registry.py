"""The models a worker serves: name → version → `ServedModel`.

`unitserve serve` is a registry holding one model, loaded at start, which is also the
default model the Seldon routes answer with. The repository extension's load and
unload are operations of the registry: they go through a control channel, which runs
them in every worker of the server before the request is answered (with no
supervisor, as in tests, the local channel runs them here alone).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from unitserve.errors import NotReady, UnknownModel
from unitserve.models.served_model import ServedModel

log = logging.getLogger("unitserve")

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

LOAD = "load"
UNLOAD = "unload"


class ControlChannel(Protocol):
    """How a repository operation reaches every worker (the supervisor's channel)."""

    def set_handler(self, handler: Handler) -> None: ...

    async def broadcast(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run the handler in every worker (this one included); return when all did."""
        ...


class LocalChannel:
    """The channel of a worker alone: the handler runs here, and only here."""

    def __init__(self) -> None:
        self.handler: Handler | None = None

    def set_handler(self, handler: Handler) -> None:
        self.handler = handler

    async def broadcast(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        assert self.handler is not None, "the registry sets the handler"
        return await self.handler(op, args)


class RegistryHooks:
    """What else happens when models come and go (per-model metrics series, say).
    These do nothing; a subclass overrides what it needs."""

    def model_loaded(self, model: ServedModel) -> None:
        pass

    def model_unloaded(self, model: ServedModel) -> None:
        """The model's labelled series (and anything else kept per model) go."""


class ModelRegistry:
    def __init__(
        self, channel: ControlChannel | None = None, hooks: RegistryHooks | None = None
    ) -> None:
        self.models: dict[str, dict[str | None, ServedModel]] = {}
        self.default: ServedModel | None = None
        self.hooks = hooks or RegistryHooks()
        self.channel: ControlChannel = channel or LocalChannel()
        self.channel.set_handler(self._apply)

    def add(self, model: ServedModel, *, default: bool = False) -> ServedModel:
        """Serve `model` (the first one added is the default unless another says so)."""
        self.models.setdefault(model.name, {})[model.version] = model
        if default or self.default is None:
            self.default = model
        return model

    def all(self) -> list[ServedModel]:
        return [m for versions in self.models.values() for m in versions.values()]

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model of that name (and version, when given: "" is any); UnknownModel
        (404 / NOT_FOUND), saying what is served, otherwise."""
        versions = self.models.get(name)
        if versions is None:
            served = ", ".join(repr(n) for n in self.models) or "no model"
            raise UnknownModel(f"unknown model {name!r}: this server serves {served}")
        if version:
            found = versions.get(version)
            if found is not None:
                return found
        model = next(iter(versions.values()))
        model.check(name, version)  # says which versions there are
        return model

    @property
    def ready(self) -> bool:
        """The server is ready when every model it serves is."""
        return all(m.state.is_ready for m in self.all())

    async def start(self) -> bool:
        """Load every model at start, in this worker (each worker does): True if all
        of them are ready."""
        ok = True
        for model in self.all():
            if await model.load():
                self.hooks.model_loaded(model)
            else:
                ok = False
        return ok

    # ------------------------------------------------------------------ repository

    async def load(self, name: str) -> ServedModel:
        """Load (or load again) model `name` in every worker."""
        model = self.get(name)
        await self.channel.broadcast(LOAD, {"name": name})
        return model

    async def unload(self, name: str) -> ServedModel:
        """Unload model `name` in every worker, releasing its user object."""
        model = self.get(name)
        await self.channel.broadcast(UNLOAD, {"name": name})
        return model

    async def _apply(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """One worker's part of a repository operation."""
        model = self.get(str(args.get("name", "")))
        if op == LOAD:
            if not await model.load():
                raise NotReady(f"model {model.name!r} cannot be loaded: {model.state.reason}")
            self.hooks.model_loaded(model)
        elif op == UNLOAD:
            await model.unload()
            self.hooks.model_unloaded(model)
        else:
            raise ValueError(f"unknown repository operation {op!r}")
        return {}

    def flush_batches(self) -> None:
        for model in self.all():
            if model.invoker is not None:
                model.invoker.flush_batches()

    def close(self) -> None:
        for model in self.all():
            model.close()
