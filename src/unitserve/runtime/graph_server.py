"""`unitserve graph`: a SeldonDeployment's graph served with the lifecycle of
`unitserve serve`: the same supervisor (ports, workers, replacement, drain) and the
same worker (event loop, REST and gRPC servers). What differs is what a worker serves:
its registry holds the graph as one model (``unitserve.graph.serving.GraphModel``),
whose Seldon API is a deployment's, and no Open Inference Protocol.
"""

from __future__ import annotations

import dataclasses
import errno
from typing import Any

from unitserve.engine import MetricsRecorder
from unitserve.errors import StartupError
from unitserve.graph.serving import GraphPlan, graph_model
from unitserve.models.dataplane import DataPlane
from unitserve.runtime.supervisor import Supervisor
from unitserve.runtime.worker import Worker
from unitserve.settings import Settings


@dataclasses.dataclass
class GraphWorker(Worker):
    plan: GraphPlan | None = None

    def _add_models(self, recorder: MetricsRecorder) -> None:
        assert self.plan is not None
        self.registry.add(graph_model(self.plan, self.settings, recorder, self.loaded))

    def _data_plane(self) -> DataPlane | None:
        return None  # a graph answers the Seldon protocol only


@dataclasses.dataclass
class GraphSupervisor(Supervisor):
    plan: GraphPlan | None = None

    def _load_user(self) -> Any:
        return self.plan

    def _served(self) -> str:
        return self.settings.interface_name  # "graph <file>"

    def _new_worker(self, slot: int) -> Worker:
        return GraphWorker(
            self.settings,
            self.plan,
            self.http_socket,
            slot=slot,
            notes_fd=self.notes_w,
            loaded=self.settings.preload,
            metrics_dir=self.metrics_dir,
            plan=self.plan,
        )


def run(settings: Settings, plan: GraphPlan) -> int:
    try:
        return GraphSupervisor(settings, plan=plan).run()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(str(exc)) from None
        raise
