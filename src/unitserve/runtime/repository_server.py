"""`unitserve start`: a model repository server, as MLServer serves a models folder.

The supervisor and its workers are `unitserve serve`'s; what differs is what a worker
serves. A repository worker starts with no model of its own: its registry's model
source is the models folder, every model found there is loaded at start (unless
MLSERVER_LOAD_MODELS_AT_STARTUP is false), and the repository extension loads and
unloads models by name while it serves, in every worker through the control channel.
A model that fails is listed as unavailable with its reason; the others serve.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from unitserve.engine import MetricsRecorder
from unitserve.models.model_settings import ModelSettings
from unitserve.models.served_model import ServedModel
from unitserve.repository import ServerSettings
from unitserve.runtime.repository_source import RepositorySource
from unitserve.runtime.supervisor import Supervisor
from unitserve.runtime.worker import Worker
from unitserve.settings import Settings, defaults

log = logging.getLogger("unitserve")

# What the log and the API docs page call the server (it serves no one class).
SERVER_NAME = "repository"


@dataclasses.dataclass
class RepositoryWorker(Worker):
    server: ServerSettings | None = None
    environ: Mapping[str, str] | None = None

    def _add_models(self, recorder: MetricsRecorder) -> None:
        assert self.server is not None
        self.registry.source = RepositorySource(
            self.server.models_dir, self._served_model(recorder), self.environ
        )

    def _served_model(
        self, recorder: MetricsRecorder
    ) -> Callable[[ModelSettings, Callable[[], Any]], ServedModel]:
        settings = self.settings
        metrics = self._metrics

        def make(model: ModelSettings, factory: Callable[[], Any]) -> ServedModel:
            name = model.served_name
            return ServedModel(
                model,
                factory=factory,
                # Its user metrics carry its name and version (model_name, model_version).
                recorder=recorder if metrics is None else metrics.for_model(name, model.version),
                threads=settings.user_threads,
                request_timeout=settings.request_timeout,
                batch_observer=self._batches_of(name),
                in_flight=self.accounting.in_flight,
                label=f"model {model.served_name!r}",
            )

        return make

    async def _start_models(self) -> bool:
        assert self.server is not None
        if self.server.load_models_at_startup:
            served = await self.registry.start_source()
            log.info("worker %d serves %d model(s) found at start", self.slot, served)
        return True  # a model that failed is listed as such; the server serves the others


@dataclasses.dataclass
class RepositorySupervisor(Supervisor):
    server: ServerSettings | None = None
    environ: Mapping[str, str] | None = None
    user_metrics_by_model: ClassVar[bool] = True

    def _load_user(self) -> Any:
        return None  # each worker builds the models it loads

    def _served(self) -> str | None:
        return None  # `unitserve start` names the folder and where each setting came from

    def _new_worker(self, slot: int) -> Worker:
        return RepositoryWorker(
            self.settings,
            None,
            self.http_socket,
            slot=slot,
            notes_fd=self.notes_w,
            metrics_dir=self.metrics_dir,
            server=self.server,
            environ=self.environ,
        )


def server_settings(server: ServerSettings) -> Settings:
    """The supervisor's and the workers' settings for an MLServer-style server."""
    base = defaults(SERVER_NAME)
    # A REST body may be as large as a gRPC message (Core 2 sets 1000 MiB for both).
    body = max(base.max_body_size, server.grpc_max_message_length or 0)
    return dataclasses.replace(
        base,
        max_body_size=body,
        host=server.host,
        http_port=server.http_port,
        grpc_port=server.grpc_port,
        metrics_port=server.metrics_port,
        workers=max(1, server.parallel_workers),  # MLServer's 0: no separate workers
        grpc_max_message_size=server.grpc_max_message_length,
        log_level="DEBUG" if server.debug else "INFO",
        model_name=None,
    )


def run(server: ServerSettings, environ: Mapping[str, str]) -> int:
    settings = server_settings(server)
    log.info(
        "serving the models in %s with %d worker(s): %s",
        server.models_dir,
        settings.workers,
        server.described(),
    )
    return RepositorySupervisor(settings, server=server, environ=dict(environ)).run()
