"""Seldon Core 2's agent, played by a test: what it does to an inference server's models
folder and which calls it makes, in its order, as read from Core 2's Go code (the
scheduler's agent: ``pkg/agent/modelserver_controlplane/oip/v2.go``,
``pkg/agent/repository/mlserver/mlserver.go``, ``pkg/agent/rproxy*.go``).

- Files: a Model ``iris`` version 1 lands in ``<models>/iris_1/1/``; its
  ``model-settings.json`` is rewritten with ``name`` = ``iris_1`` and
  ``parameters.version`` = ``"1"``, the Model's parameters added to
  ``parameters.extra``, and every key but the ones the agent's struct holds dropped.
  Unloading deletes ``<models>/iris_1``.
- Control calls, over gRPC only, on ``inference.GRPCInferenceService``:
  ``ServerLive`` until it says live, then ``RepositoryIndex``, then an unload of each
  model listed READY or LOADING; later, loads and unloads by the versioned name.
  A load is retried (gRPC's retry on UNAVAILABLE, from 100 ms, 5 tries); an unload
  answered NOT_FOUND counts as done.
- The channel sends keepalive pings every 60 s (unlimited, as Go's client does) and
  takes messages up to 1000 MiB.
- Data plane: inference by the versioned name over REST and gRPC; an answer of 404 /
  400 (REST) or NOT_FOUND / UNAVAILABLE (gRPC) makes it load the model again and
  retry once.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx

from unitserve.proto import inference_pb2 as pb

SERVICE = "inference.GRPCInferenceService"
MAX_MESSAGE = 1000 * 1024 * 1024
KEEPALIVE_MS = 60_000
# The keys of model-settings.json the agent's struct keeps (others are dropped).
KEPT = ("name", "inputs", "outputs", "platform", "versions", "parallel_workers",
        "implementation", "parameters")  # fmt: skip
KEPT_PARAMETERS = ("uri", "version", "format", "content_type", "extra", "environment_tarball")
# A Model's requirements → the runtime the agent names when the folder has no settings.
RUNTIMES = {
    "sklearn": ("mlserver_sklearn.SKLearnModel", "./model.joblib"),
    "xgboost": ("mlserver_xgboost.XGBoostModel", "./model.bst"),
    "lightgbm": ("mlserver_lightgbm.LightGBMModel", "./model.bst"),
    "mlflow": ("mlserver_mlflow.MLflowRuntime", "./"),
}
RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
RELOAD_ON_REST = (404, 400)
RELOAD_ON_GRPC = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)


class Core2Agent:
    """The agent of one server pod: its models folder, its gRPC channel, its proxy."""

    def __init__(
        self, models_dir: Path, grpc_target: str, http_url: str, keepalive_ms: int = KEEPALIVE_MS
    ) -> None:
        self.models_dir = models_dir
        self.grpc_target = grpc_target
        self.http_url = http_url
        self.channel = grpc.insecure_channel(
            grpc_target,
            options=[
                ("grpc.keepalive_time_ms", keepalive_ms),
                ("grpc.keepalive_timeout_ms", 2_000),
                ("grpc.keepalive_permit_without_calls", 0),
                ("grpc.http2.max_pings_without_data", 0),  # Go's client has no such limit
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
            ],
        )
        self.http = httpx.Client(base_url=http_url, timeout=60)
        self.calls: list[tuple[str, str]] = []  # (RPC, outcome), in order
        self.kind = ""  # which server it drives, for the tests' expectations

    def close(self) -> None:
        self.channel.close()
        self.http.close()

    # ------------------------------------------------------------------ control plane

    def rpc(self, method: str, request: Any, answer_type: Any, timeout: float) -> Any:
        call = self.channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=answer_type.FromString,
        )
        try:
            answer = call(request, timeout=timeout)
        except grpc.RpcError as exc:
            self.calls.append((method, exc.code().name))
            raise
        self.calls.append((method, "OK"))
        return answer

    def wait_live(self, timeout: float = 60) -> None:
        """ServerLive until it answers live (the agent backs off for up to 15 min)."""
        deadline = time.monotonic() + timeout
        pause = 0.05
        while True:
            try:
                if self.rpc("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse, 5).live:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"ServerLive not true within {timeout} s")
            time.sleep(pause)
            pause = min(pause * 2, 1.0)

    def index(self) -> dict[str, str]:
        """RepositoryIndex: {name: state} (the agent skips entries without a name)."""
        answer = self.rpc(
            "RepositoryIndex", pb.RepositoryIndexRequest(), pb.RepositoryIndexResponse, 60
        )
        return {m.name: m.state for m in answer.models if m.name}

    def start(self) -> dict[str, str]:
        """The agent's start: live, index, unload what is listed READY or LOADING."""
        self.wait_live()
        listed = self.index()
        for name, state in listed.items():
            if state in ("READY", "LOADING"):
                self.unload(name)
        return listed

    def load(self, name: str, timeout: float = 3600) -> None:
        """RepositoryModelLoad with the agent's retries on UNAVAILABLE; raises the last
        grpc.RpcError when the model does not load."""
        pause = 0.1
        for attempt in range(5):
            try:
                self.rpc(
                    "RepositoryModelLoad",
                    pb.RepositoryModelLoadRequest(model_name=name),
                    pb.RepositoryModelLoadResponse,
                    timeout,
                )
                return
            except grpc.RpcError as exc:
                if exc.code() not in RETRIED or attempt == 4:
                    raise
            time.sleep(pause)
            pause *= 2

    def unload(self, name: str) -> str:
        """RepositoryModelUnload: "OK", or "NOT_FOUND" (the agent takes it as done)."""
        try:
            self.rpc(
                "RepositoryModelUnload",
                pb.RepositoryModelUnloadRequest(model_name=name),
                pb.RepositoryModelUnloadResponse,
                120,
            )
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return "NOT_FOUND"
        return "OK"

    # ------------------------------------------------------------------ files

    def place(
        self,
        source: Path,
        model: str,
        version: int,
        requirements: tuple[str, ...] = (),
        parameters: dict[str, str] | None = None,
    ) -> str:
        """Copy a Model's files into the models folder as the agent does; returns the
        name the server is asked to load (``<model>_<version>``)."""
        name = f"{model}_{version}"
        target = self.models_dir / name / "1"
        shutil.rmtree(self.models_dir / name, ignore_errors=True)
        shutil.copytree(source, target)
        path = target / "model-settings.json"
        if path.exists():
            settings = json.loads(path.read_text())
        else:
            implementation, uri = next(RUNTIMES[r] for r in requirements if r in RUNTIMES)
            settings = {"implementation": implementation, "parameters": {"uri": uri}}
        kept = {k: v for k, v in settings.items() if k in KEPT}
        params = {k: v for k, v in (kept.get("parameters") or {}).items() if k in KEPT_PARAMETERS}
        params["version"] = str(version)
        if parameters:
            params["extra"] = {**(params.get("extra") or {}), **parameters}
        kept["parameters"] = params
        kept["name"] = name
        path.write_text(json.dumps(kept))
        return name

    def remove(self, name: str) -> None:
        """What the agent does after an unload: delete the model's folder."""
        shutil.rmtree(self.models_dir / name, ignore_errors=True)

    # ------------------------------------------------------------------ data plane

    def infer_rest(self, name: str, body: dict[str, Any]) -> httpx.Response:
        """POST /v2/models/<name>/infer through the proxy: reload on 404/400, once."""
        return self._with_reload(
            name,
            lambda: self.http.post(f"/v2/models/{name}/infer", json=body),
            lambda r: r.status_code in RELOAD_ON_REST,
        )

    def infer_grpc(self, name: str, request: Any) -> Any:
        """ModelInfer with model_name = the versioned name and no version; reload on
        NOT_FOUND/UNAVAILABLE, once."""
        request.model_name, request.model_version = name, ""

        def call() -> Any:
            try:
                return self.rpc("ModelInfer", request, pb.ModelInferResponse, 60)
            except grpc.RpcError as exc:
                return exc

        def missing(answer: Any) -> bool:
            return isinstance(answer, grpc.RpcError) and answer.code() in RELOAD_ON_GRPC

        answer = self._with_reload(name, call, missing)
        if isinstance(answer, grpc.RpcError):
            raise answer
        return answer

    def _with_reload(
        self, name: str, send: Callable[[], Any], missing: Callable[[Any], bool]
    ) -> Any:
        answer = send()
        if missing(answer):
            self.load(name)
            answer = send()
        return answer
