"""The Open Inference Protocol over a model registry, written once for both transports.

The REST routes (`transport/rest/v2.py`) and the gRPC service
(`transport/grpc/inference.py`) are thin adapters: they read their request, call
here, and write the answer or the error in their own form. Every decision — which
model, whether it is ready, what a repository request may ask, what is logged, and
the sentence of each error — is taken here, so both transports give the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from unitserve.errors import BadRequest, NotReady, ServingError
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.protocol.v2.model_metadata import model_metadata, server_metadata

log = logging.getLogger("unitserve")

INVALID_METADATA = (
    "the model's metadata is invalid: init_metadata() or MODEL_METADATA does not follow "
    "the metadata schema (the server's log says why)"
)


class DataPlane:
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.server_metadata = server_metadata()

    # ------------------------------------------------------------------ health

    def server_live(self) -> bool:
        return True

    def server_ready(self) -> bool:
        return self.registry.ready

    def model_ready(self, name: str, version: str | None) -> bool:
        return self.registry.get(name, version).state.is_ready

    # ------------------------------------------------------------------ metadata

    def model_metadata(self, name: str, version: str | None) -> dict[str, Any]:
        """The model's metadata in the protocol's form."""
        model = self.registry.get(name, version)
        if not model.state.is_ready:
            raise NotReady(f"model {model.name!r} is not ready: {model.state.reason}")
        seldon = model.metadata
        if seldon is None:  # logged when it was built
            raise ServingError(INVALID_METADATA)
        return model_metadata(seldon, model.name, model.version, model.oip_metadata)

    # ------------------------------------------------------------------ inference

    def inference_model(self, name: str, version: str | None) -> ServedModel:
        """The model an inference request is for, ready to answer it."""
        model = self.registry.get(name, version)
        model.require_ready()
        return model

    # ------------------------------------------------------------------ repository

    async def repository_index(self, only_ready: Any = False) -> list[dict[str, Any]]:
        if not isinstance(only_ready, bool):
            raise BadRequest("ready must be true or false")
        entries = await self.registry.index()
        return [e for e in entries if e["state"] == "READY" or not only_ready]

    async def load(self, name: str, parameters: Mapping[str, Any] | None = None) -> None:
        _check_load_parameters(parameters)
        await self.registry.load(name)
        log.info("model %r loaded through the model repository", name)

    async def unload(self, name: str) -> None:
        await self.registry.unload(name)
        log.info("model %r unloaded through the model repository", name)


def _check_load_parameters(parameters: Any) -> None:
    """Triton's load can carry another configuration or files: this server loads the
    model it was given and refuses them rather than ignore them."""
    if parameters is None:
        return
    if not isinstance(parameters, Mapping):
        raise BadRequest("parameters must be a JSON object")
    if any(k == "config" or str(k).startswith("file:") for k in parameters):
        raise BadRequest(
            "loading with a configuration or files is not supported: this server loads "
            "the models it was started with"
        )
