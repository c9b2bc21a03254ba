"""One served model: the user object, its engine and invoker, its state, metadata,
error handlers and batch limits, with the lifecycle around them.

    load()    builds the user object if it was released, runs its ``load()`` (unless
              it already ran, as with --preload), reads its metadata, and marks the
              model ready (or failed, saying why);
    unload()  takes the model out of service and releases the user object: its
              batcher and threads stop and nothing keeps a reference to it;
    close()   stops the threads for good (the worker is stopping, or the registry
              forgets the model).

What the load downloads (``unitserve.storage.download()`` in the class's constructor,
its ``load()`` or its metadata: a prepackaged server's model URI) is leased in the
cache for the model's `Claim` until the object that uses the files goes: at unload, at
close, or at once when building the object failed. Then, unless another model of the
process uses the same folder, a newer version's download may remove it.

The worker serves one or more of these (through `ModelRegistry`), and a graph's
local nodes are ones too: the load sequence is written once, here.

A model is served with one of Seldon's two APIs (`seldon_api`): a component's, the
Python wrapper's (``/predict``, ``/health/status``, the seven gRPC services), or a
deployment's, the orchestrator's (``/api/v1.0/predictions``, ``seldon.protos.Seldon``
alone), which also answers for the models a deployment is made of, by name: their
metadata and health status. A graph is a deployment; its nodes are its members.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from unitserve import metadata as seldon_metadata
from unitserve.batching import BatchLimits, BatchObserver, batch_limits
from unitserve.calls import Invoker, Lane, Offloader, Request
from unitserve.engine import Engine, MetricsRecorder, Outcome
from unitserve.errors import NotReady, UnknownModel, is_not_implemented
from unitserve.models.error_handlers import FlaskErrorHandlers, error_handlers_of
from unitserve.models.model_settings import ModelSettings
from unitserve.models.release import let_go, on_a_thread, tracker
from unitserve.models.state import ModelState
from unitserve.storage import leases

log = logging.getLogger("unitserve")

# Which of Seldon's APIs a model is served with (see the module doc): the transports
# choose their route tables and services by the default model's.
COMPONENT_API = "component"
DEPLOYMENT_API = "deployment"


class ServedModel:
    """One model and its lifecycle (see the module doc). Built on the event loop that
    serves it (its invoker answers there)."""

    # Whether requests carry a request id the model reads and answers with (a graph's
    # Seldon-Puid): the transports then hand it over and send it back.
    carries_puid = False
    seldon_api: ClassVar[str] = COMPONENT_API

    def __init__(
        self,
        settings: ModelSettings,
        user: Any = None,
        *,
        factory: Callable[[], Any] | None = None,
        recorder: MetricsRecorder | None = None,
        threads: int = 1,
        pool: Offloader | None = None,
        request_timeout: float = 0.0,
        batch_observer: BatchObserver | None = None,
        in_flight: Callable[[], int] | None = None,
        loaded: bool = False,
        label: str | None = None,
    ) -> None:
        """`user` is the user object (None: built by `factory` at `load()`); `loaded`
        says its ``load()`` already ran (--preload); `label` names the model in log
        lines and reasons (default: its class). `threads` is how many of its calls run
        at once: on threads of its own, or, with `pool`, on that pool's threads that
        other models share (a repository's many models)."""
        self.settings = settings
        self.name = settings.served_name
        self.version = settings.version
        self.factory = factory
        self.recorder = recorder or MetricsRecorder()
        self.threads = threads
        self.pool = pool
        self.request_timeout = request_timeout
        self.batch_observer = batch_observer
        self.in_flight = in_flight
        self.label = label
        self.state = ModelState()
        # What load() builds; None until then (the metadata also when it is invalid).
        self.metadata: dict[str, Any] | None = None
        # The class's own Open Inference Protocol metadata (`metadata.supplied_oip`).
        self.oip_metadata: dict[str, Any] = {}
        self.user: Any = None
        self.engine: Engine | None = None
        self.invoker: Invoker | None = None
        self.error_handlers: FlaskErrorHandlers | None = None
        self.batch_limits: BatchLimits | None = None
        self._user_loaded = False
        # The cached model versions this model's load downloaded (see the module doc).
        self.leases = leases.Claim(label or f"model {self.name!r}")
        # One load or unload at a time: two repository loads arriving together build
        # one object, and an unload waits for a load under way.
        self._lifecycle = asyncio.Lock()
        if user is not None:
            self._attach(user, loaded)

    def _attach(self, user: Any, loaded: bool) -> None:
        self.user = user
        self._user_loaded = loaded
        self.engine = Engine(user, self.settings.engine, self.recorder)
        self.batch_limits = batch_limits(
            self.settings.max_batch_size, self.settings.max_batch_time, user
        )
        self.invoker = Invoker(
            self.engine,
            self.threads,
            self.request_timeout,
            self.batch_limits,
            self.batch_observer,
            self.in_flight,
            state=self.state,
            offloader=None if self.pool is None else Lane(self.pool, self.threads),
        )
        self.error_handlers = error_handlers_of(user)

    @property
    def described(self) -> str:
        return self.label or type(self.user).__name__

    # ------------------------------------------------------------------ lifecycle

    @property
    def title(self) -> str:
        """What the docs page calls the API: the model's name."""
        return self.name

    async def load(self) -> bool:
        """Make the model ready: True when it is, False when it failed (logged, and
        the state says why)."""
        async with self._lifecycle:
            return await self._load()

    async def _load(self) -> bool:
        if self.state.is_ready:
            return True
        self.state.mark_loading()
        if self.user is None:
            if self.factory is None:
                self.state.mark_failed(f"model {self.name!r} has no implementation to load")
                return False
            try:
                # On a thread of its own: importing and constructing may take a while.
                user = await on_a_thread(self.leases.run, self.factory)
            except Exception as exc:
                log.exception("building model %r failed; it will not be served", self.name)
                self.leases.release()  # nothing was built to use what it fetched
                self.state.mark_failed(f"model {self.name!r} could not be built: {exc}")
                return False
            self._attach(user, loaded=False)
        invoker = self.invoker
        assert invoker is not None and self.engine is not None
        if not self._user_loaded:
            try:
                await self._run_user_load(invoker)
            except Exception:
                log.exception("load() of %s failed; it will not be served", self.described)
                self.state.mark_failed(
                    f"load() of {self.described} failed: this worker cannot serve"
                )
                return False
            self._user_loaded = True
        self.metadata = seldon_metadata.build(
            await self._user_metadata(invoker), self.settings.metadata, self.settings.image
        )
        self.oip_metadata = seldon_metadata.supplied_oip(self.user)
        self.state.mark_ready()
        return True

    async def _run_user_load(self, invoker: Invoker) -> None:
        load = getattr(self.user, "load", None)
        if inspect.iscoroutinefunction(load):  # on the loop its async predict uses
            with unless_not_implemented(), self.leases.collecting():
                await load()
        elif self.pool is not None:
            # Not on the shared threads: a load() that fetches large files for minutes
            # would hold one that the serving models need.
            await on_a_thread(self.leases.run, functools.partial(call_load, self.user))
        else:  # not invoker.offload: the request timeout is for requests, not load()
            await invoker.offloader.submit(
                functools.partial(self.leases.run, functools.partial(call_load, self.user))
            )

    async def _user_metadata(self, invoker: Invoker) -> Any:
        assert self.engine is not None
        method = self.engine.methods.init_metadata
        if method is None:
            return None
        try:
            # A prepackaged server reads the metadata.yaml beside its model (downloaded).
            if method.is_async:
                with self.leases.collecting():
                    return await method.fn()
            return await invoker.offloader.submit(functools.partial(self.leases.run, method.fn))
        except Exception as exc:
            if not is_not_implemented(exc):
                log.exception("init_metadata() of %s failed; using the default", self.described)
        return None

    async def unload(self) -> None:
        """Take the model out of service and release the user object. Requests that
        were already running finish; later ones are answered "not ready". A later
        `load()` builds the object again (with the factory)."""
        async with self._lifecycle:
            self._release()

    def _release(self) -> None:
        self.state.mark_unloaded()
        invoker = self.invoker
        if invoker is not None:
            invoker.flush_batches()  # queued requests are answered, not left waiting
            invoker.close()
        still_there = None if self.user is None else tracker(self.user)
        self.user = self.engine = self.invoker = self.error_handlers = None
        invoker = None
        self.metadata = None
        self.oip_metadata = {}
        self._user_loaded = False
        if still_there is not None:
            # Its memory goes now, not at some later pass (see `release`).
            let_go(still_there, f"the unloaded {self.label or f'model {self.name!r}'}")
        self.leases.release()  # the object that read the files is gone

    def close(self) -> None:
        """Stop the model's threads (the worker is stopping, or the registry forgets
        the model), and let go of the cached versions its load leased."""
        if self.invoker is not None:
            self.invoker.close()
        self.leases.release()

    # ------------------------------------------------------------------ serving

    def check(self, name: str, version: str | None = None) -> None:
        """UnknownModel (404 / NOT_FOUND) unless `version` (when given) is this
        model's; `name` is the one it was found by."""
        if version and version != self.version:  # gRPC sends "" for "whichever is served"
            served = f"only version {self.version!r}" if self.version else "no versions"
            raise UnknownModel(f"unknown version {version!r} of model {name!r}: it has {served}")

    def require_ready(self) -> Invoker:
        """The invoker, or NotReady (503 / UNAVAILABLE) saying why the model cannot
        answer."""
        if not self.state.is_ready or self.invoker is None:
            raise NotReady(f"model {self.name!r} is not ready: {self.state.reason}")
        return self.invoker

    async def call(self, op: str, request: Request) -> Outcome:
        """Run engine operation `op` (the invoker waits while the model loads)."""
        invoker = self.invoker
        if invoker is None:  # unloaded, or being built again
            raise NotReady(f"model {self.name!r} is not ready: {self.state.reason}")
        return await invoker.call(op, request)

    def call_blocking(self, op: str, request: Request) -> Outcome:
        """`call` from a thread that is not the event loop's (gRPC's)."""
        invoker = self.invoker
        if invoker is None:
            raise NotReady(f"model {self.name!r} is not ready: {self.state.reason}")
        return invoker.call_blocking(op, request)

    def member_metadata(self, name: str) -> dict[str, Any] | None:
        """The metadata of the model called `name` within this one (Seldon's
        ``ModelMetadata`` with a name). A component is one model: its own metadata,
        whatever the name, as Seldon's wrapper answers (None when it is invalid). A
        deployment answers for its member, or raises UnknownModel."""
        return self.metadata

    async def member_status(self, name: str, probe: Request) -> Outcome:
        """The health status of the model called `name` within this one (a deployment's
        ``/api/v1.0/status/<name>``): a component's own ``health_status``."""
        return await self.call("health_status", probe)

    async def not_ready(self) -> str | None:
        """Why the model cannot answer now (its readiness probe), or None if it can."""
        return None if self.state.is_ready else self.state.reason

    async def wait_ready(self) -> None:
        """Return once the model is ready (NotReady, saying why, otherwise)."""
        await self.state.wait_ready(self.request_timeout or None)

    def wants_message(self, op: str) -> bool:
        return self.invoker is not None and self.invoker.wants_message(op)

    def index_entry(self) -> dict[str, Any]:
        """The model as the repository index lists it."""
        entry: dict[str, Any] = {"name": self.name}
        if self.version is not None:
            entry["version"] = self.version
        entry["state"] = self.state.index_state
        entry["reason"] = self.state.reason
        return entry


@contextlib.contextmanager
def unless_not_implemented() -> Iterator[None]:
    """A load() that says "not implemented" (SeldonComponent's) is no load at all."""
    try:
        yield
    except NotImplementedError:
        pass
    except Exception as exc:
        if not is_not_implemented(exc):
            raise


def call_load(user: Any) -> None:
    """The user's load(), if it has one, from synchronous code (a user thread, or the
    supervisor for --preload, where an ``async def load`` gets an event loop of its own)."""
    load = getattr(user, "load", None)
    if load is None or not callable(load):
        return
    with unless_not_implemented():
        result = load()
        if inspect.isawaitable(result):
            asyncio.run(_awaited(result))


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
