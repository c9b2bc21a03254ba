"""The one model a worker serves, as the Open Inference Protocol addresses it: its
name and version, readiness, repository index and metadata. Shared by the REST
and gRPC transports so that both answer alike.

A request names a model (and optionally a version): another name, or a version
other than the configured one, is not found. Ready means ``load()`` has finished
and no client unloaded the model through the repository extension.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

from unitserve import model_state
from unitserve.errors import NotReady, ServingError
from unitserve.model_state import ModelState
from unitserve.version import __version__

#: The server's name in the server metadata.
SERVER_NAME = "unitserve"

#: The protocol extensions this server implements (the binary tensor data extension
#: is REST's; the server metadata lists what the server as a whole offers).
EXTENSIONS = ("binary_tensor_data", "model_repository")


class UnknownModel(ServingError):
    """A request for a model (or a version) this server does not serve."""

    http_status = 404
    reason = "MICROSERVICE_UNKNOWN_MODEL"
    grpc_code = grpc.StatusCode.NOT_FOUND


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


@dataclass(slots=True)
class ServedModel:
    name: str
    version: str | None
    state: ModelState

    def check(self, name: str, version: str = "") -> None:
        """UnknownModel unless `name` (and `version`, when given) is this model's.
        An empty version means "whichever is served", as clients send it."""
        if name != self.name:
            shown = repr(name[:200]) if name else "no model name"
            raise UnknownModel(f"unknown model {shown}: this server serves {self.name!r}")
        if version and version != self.version:
            have = f"only version {self.version!r}" if self.version else "no versions"
            raise UnknownModel(
                f"model {self.name!r} has no version {version[:200]!r} (it has {have})"
            )

    def ready(self, loaded: bool) -> bool:
        return loaded and not self.state.unloaded

    def require_ready(self, loaded: bool, not_loaded_reason: str) -> None:
        """NotReady, saying why, unless the model can answer an inference."""
        if self.state.unloaded:
            raise NotReady(model_state.UNLOADED_REASON)
        if not loaded:
            raise NotReady(not_loaded_reason)

    def index(self, loaded: bool, ready_only: bool = False) -> list[dict[str, Any]]:
        """The repository index: this one model, with its state."""
        state, reason = self.state.state(loaded)
        if ready_only and state != model_state.READY:
            return []
        entry: dict[str, Any] = {"name": self.name}
        if self.version:
            entry["version"] = self.version
        entry["state"] = state
        entry["reason"] = reason
        return [entry]

    def metadata(self, meta: dict[str, Any]) -> dict[str, Any]:
        """The model metadata in the protocol's form, from the component's metadata
        (``init_metadata()`` / ``MODEL_METADATA``, as /metadata serves it).

        Only the inputs and outputs written as protocol tensors (``name``,
        ``datatype``, ``shape``) are listed: the Seldon kinds (``messagetype``) have
        no form here. The name is the one clients address the model by."""
        if self.version:
            versions = [self.version]
        else:
            versions = [v for v in meta.get("versions") or [] if isinstance(v, str) and v]
        return {
            "name": self.name,
            "versions": versions,
            "platform": meta.get("platform") or "",
            "inputs": _tensors(meta.get("inputs")),
            "outputs": _tensors(meta.get("outputs")),
        }


def _tensors(entries: Any) -> list[dict[str, Any]]:
    out = []
    for entry in entries or []:
        if isinstance(entry, dict) and "datatype" in entry:
            out.append(
                {
                    "name": entry.get("name", ""),
                    "datatype": entry["datatype"],
                    "shape": list(entry.get("shape") or []),
                }
            )
    return out
