"""The models a worker serves: name → version → `ServedModel`.

`unitserve serve` is a registry holding one model, loaded at start, which is also the
default model the Seldon routes answer with. The repository extension's load and
unload are operations of the registry: they go through the worker's control channel
(``unitserve.runtime.control``), which runs them in every worker of the server before
the request is answered (with no supervisor, its local channel runs them here alone).

A registry may have a model source (`unitserve start`'s models folder): a load of a
name the registry does not hold asks the source, in every worker, to build it (each
worker builds its own copy), and a load of a model the source built, but that is not
serving, builds it afresh from what the source finds then. An unload of such a model
releases it and forgets it: the index lists it as the source finds it, unloaded. A
model released (unloaded, or forgotten after its load failed) lets go of the cached
versions of its model files (`ServedModel`), so the cache may drop the older ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from unitserve.errors import ModelLoadFailed, NotReady, ServingError, UnknownModel
from unitserve.models.served_model import ServedModel

log = logging.getLogger("unitserve")

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]

LOAD = "load"
UNLOAD = "unload"
UNKNOWN = "unknown"  # a worker's answer: the operation's model is not there
FAILED = "failed"  # a worker's answer: the model failed to load, and why


# How long a load may take in the slowest worker before it is refused (a model's load()
# may fetch and unpack a large file), and an unload.
LOAD_TIMEOUT = 1800.0
UNLOAD_TIMEOUT = 300.0


class ControlChannel(Protocol):
    """What the registry needs of the worker's control channel
    (``unitserve.runtime.control.ControlChannel``, which the worker hands it)."""

    def set_handler(self, handler: Handler) -> None: ...

    async def broadcast(
        self, op: str, args: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Run the handler in every worker (this one included); return when all did,
        or raise saying which worker failed and why."""
        ...


class ModelSource(Protocol):
    """Where models the registry does not hold yet come from, by name."""

    @property
    def missing(self) -> str:
        """Where a model that is not found was looked for, as a clause of a sentence."""
        ...

    async def build(self, name: str) -> ServedModel:
        """A new, not yet loaded model `name` (UnknownModel if there is none now)."""
        ...

    async def builders(self) -> dict[str, Callable[[], ServedModel]]:
        """Every model found now, each with what builds it, for the loads at start
        (one reading of the source, not one per model)."""
        ...

    async def index_entries(self, held: set[str]) -> list[dict[str, Any]]:
        """The repository index's entries of the models found now that are not in
        `held` (not loaded: ``UNAVAILABLE`` with an empty reason, or why not servable).
        Off the event loop: finding them reads the source."""
        ...


class ModelHooks(Protocol):
    """What else happens when models come and go: the worker's metrics
    (``unitserve.metrics.models``) keep each model's ready gauge and, through it, which
    models' series a scrape shows."""

    def model_loaded(self, model: ServedModel) -> None:
        """The model serves (loaded at start or through the repository extension)."""

    def model_unloaded(self, model: ServedModel) -> None:
        """The model no longer serves; the registry may still hold it, to load it again."""

    def model_released(self, model: ServedModel) -> None:
        """The registry no longer holds the model (one from the source, unloaded or
        failed): anything kept for it goes."""


class RegistryHooks:
    """Hooks that do nothing (a `ModelHooks`); a subclass overrides what it needs."""

    def model_loaded(self, model: ServedModel) -> None:
        pass

    def model_unloaded(self, model: ServedModel) -> None:
        pass

    def model_released(self, model: ServedModel) -> None:
        pass


class ModelRegistry:
    def __init__(
        self,
        channel: ControlChannel,
        hooks: ModelHooks | None = None,
        source: ModelSource | None = None,
    ) -> None:
        self.models: dict[str, dict[str | None, ServedModel]] = {}
        self.default: ServedModel | None = None
        self.hooks: ModelHooks = hooks or RegistryHooks()
        self.source = source
        # Models the source built that failed to load: name → their index entry
        # (name, version, UNAVAILABLE and why).
        self.failed: dict[str, dict[str, Any]] = {}
        # The names whose models came from the source (released and forgotten on unload).
        self._from_source: set[str] = set()
        self._name_locks: dict[str, asyncio.Lock] = {}
        self.channel = channel
        self.channel.set_handler(self._apply)

    def add(self, model: ServedModel, *, default: bool = False) -> ServedModel:
        """Serve `model` (the first one added is the default unless another says so)."""
        self._hold(model)
        if default or self.default is None:
            self.default = model
        return model

    def _hold(self, model: ServedModel) -> None:
        self.models.setdefault(model.name, {})[model.version] = model

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
        """Load (or load again) model `name` in every worker; returns once it serves."""
        if name not in self.models and self.source is None:
            self.get(name)  # UnknownModel, saying what is served
        # A name the source may have is looked for by each worker as it builds the
        # model (one look at the source per load, not one here and one there): one
        # that is not found is answered UNKNOWN, as a 404.
        await self._broadcast(LOAD, name, LOAD_TIMEOUT)
        return self.get(name)

    async def unload(self, name: str) -> None:
        """Unload model `name` in every worker, releasing its user object."""
        if name not in self.models and name not in self.failed:
            self.get(name)  # UnknownModel (a second unload too)
        await self._broadcast(UNLOAD, name, UNLOAD_TIMEOUT)

    async def index(self) -> list[dict[str, Any]]:
        """Every model: those held, those that failed, and what the source finds."""
        entries = [m.index_entry() for m in self.all()]
        entries += [dict(entry) for entry in self.failed.values()]
        if self.source is not None:
            entries += await self.source.index_entries({*self.models, *self.failed})
        return entries

    async def start_source(self) -> int:
        """Load every model the source finds, in this worker alone (each worker does
        at start); a model that fails is logged and listed as such. Returns how many
        serve."""
        assert self.source is not None
        served = 0
        for name, build in (await self.source.builders()).items():
            try:
                await self._load_here(name, build)
                served += 1
            except ServingError as exc:
                log.error("model %r will not be served: %s", name, exc.message)
        return served

    async def _broadcast(self, op: str, name: str, timeout: float) -> None:
        try:
            answer = await self.channel.broadcast(op, {"name": name}, timeout)
        except ServingError:
            raise
        except Exception as exc:  # the channel's ControlError: which worker failed, and why
            raise NotReady(str(exc)) from exc
        # This worker's answer is every worker's: a name's operations run one after
        # another in all of them, so they hold the same models when each one runs.
        if answer.get(UNKNOWN):
            raise UnknownModel(str(answer[UNKNOWN]))
        if answer.get(FAILED):
            raise ModelLoadFailed(str(answer[FAILED]))

    async def _apply(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """One worker's part of a repository operation."""
        name = str(args.get("name", ""))
        # One operation per name at a time here too (the supervisor's channel already
        # orders them; in-process, the local channel does not).
        lock = self._name_locks.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                if op == LOAD:
                    await self._load_here(name)
                elif op == UNLOAD:
                    await self._unload_here(name)
                else:
                    raise ValueError(f"unknown repository operation {op!r}")
        except UnknownModel as exc:
            # Not a failure of the operation: the model is gone (unloaded by another
            # request just before this one, or its files removed). Said as 404.
            return {UNKNOWN: exc.message}
        except ModelLoadFailed as exc:  # the model's fault: listed as such, the rest serve
            return {FAILED: exc.message}
        return {}

    async def _load_here(self, name: str, build: Callable[[], ServedModel] | None = None) -> None:
        """Load `name` in this worker; `build` makes it when the source has already
        been read (at start), else the source is read for it."""
        held = self.models.get(name)
        if self.source is not None and (
            held is None
            or (name in self._from_source and not any(m.state.is_ready for m in held.values()))
        ):
            # Read afresh: the files may have changed since the last load.
            self._forget(name)
            model = build() if build is not None else await self.source.build(name)
            self._hold(model)  # never the default: the Seldon routes serve one class
            self._from_source.add(name)
        else:
            model = self.get(name)
        if not await model.load():
            reason = model.state.reason
            if name in self._from_source:
                entry = model.index_entry()  # UNAVAILABLE, with its version and why
                self._forget(name)
                self.failed[name] = entry
            raise ModelLoadFailed(f"model {name!r} cannot be loaded: {reason}")
        self.hooks.model_loaded(model)

    async def _unload_here(self, name: str) -> None:
        if name in self.failed and name not in self.models:
            del self.failed[name]
            return
        model = self.get(name)
        await model.unload()
        self.hooks.model_unloaded(model)
        if name in self._from_source:
            self._forget(name)

    def _forget(self, name: str) -> None:
        """Drop what the registry holds for `name` (a model from the source)."""
        self.failed.pop(name, None)
        self._from_source.discard(name)
        for model in (self.models.pop(name, None) or {}).values():
            model.close()
            self.hooks.model_released(model)

    def flush_batches(self) -> None:
        for model in self.all():
            if model.invoker is not None:
                model.invoker.flush_batches()

    def close(self) -> None:
        for model in self.all():
            model.close()
