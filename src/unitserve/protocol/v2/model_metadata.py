"""Server and model metadata in the Open Inference Protocol's shape.

The server metadata says what the server itself is: its name, version and the protocol
extensions it implements. Both transports answer with it.


The Seldon metadata (``init_metadata()`` with ``MODEL_METADATA`` on top, see
`unitserve.metadata`) already describes tensors as ``{name, datatype, shape}`` when
the user writes them for this protocol; those are served as they are. Seldon message
descriptions (``{"messagetype": ...}``) have no tensor form and are left out. The name
is the served model's (the one in the request path), not the metadata's ``name``,
which defaults to the image name. A tensor's ``parameters`` (the content type a client
should send it as) and the model's ``parameters`` are served too.

A served class may describe its tensors for this protocol itself (a prepackaged server
from its model's files: MLFLOW_SERVER from the model's signature): that description
fills the inputs, the outputs and the parameters the metadata above gives none of, so
a user's metadata.yaml or ``MODEL_METADATA`` wins where it says something.
"""

from __future__ import annotations

from typing import Any

from unitserve.version import __version__

#: The server's name in the server metadata.
SERVER_NAME = "unitserve"

#: The protocol extensions this server implements (the binary tensor data extension
#: is REST's; the server metadata lists what the server as a whole offers).
EXTENSIONS = ("binary_tensor_data", "model_repository")


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}


def _tensor(item: dict[str, Any]) -> dict[str, Any]:
    tensor = {"name": item["name"], "datatype": item["datatype"], "shape": list(item["shape"])}
    if item.get("parameters"):
        tensor["parameters"] = dict(item["parameters"])
    return tensor


def _tensors(items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        return []
    return [
        _tensor(t)
        for t in items
        if isinstance(t, dict) and {"name", "datatype", "shape"} <= t.keys()
    ]


def model_metadata(
    seldon: dict[str, Any],
    name: str,
    version: str | None,
    supplied: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``{"name", "versions"?, "platform", "inputs", "outputs", "parameters"?}`` for the
    served model: from its metadata, else from what its class `supplied`."""
    supplied = supplied or {}
    out: dict[str, Any] = {"name": name}
    if version is not None:
        # Only the configured version: it is the one the paths accept (the metadata's
        # own ``versions`` default to the image tag, which no path would accept).
        out["versions"] = [version]
    out["platform"] = str(seldon.get("platform") or "")
    for key in ("inputs", "outputs"):
        out[key] = _tensors(seldon.get(key)) or _tensors(supplied.get(key))
    parameters = seldon.get("parameters") or supplied.get("parameters")
    if parameters:
        out["parameters"] = dict(parameters)
    return out
