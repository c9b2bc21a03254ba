"""`unitserve manifest --implementation` and `unitserve build --implementation`: the
SeldonDeployment node and the image of a prepackaged server (SKLEARN_SERVER, ...).

A prepackaged node names its server and its model instead of a class: ``implementation``
and ``modelUri``, which the operator downloads for the server. Without an image the
operator runs Seldon's own server image for it; with one (built by ``unitserve build
DIR --implementation NAME``), that image: unitserve and the server's library, started
as ``unitserve serve NAME``, the model at the ``model_uri`` parameter the operator adds.
"""

from __future__ import annotations

from typing import Any

from unitserve.servers import EXTRAS, IMPLEMENTATIONS

__all__ = [
    "EXTRAS",
    "PrepackagedError",
    "check",
    "local_model_uris",
    "prepackaged_deployment",
]


class PrepackagedError(Exception):
    """A reason not to write the file (one line)."""


def check(implementation: str) -> str:
    if implementation not in IMPLEMENTATIONS:
        raise PrepackagedError(
            f"--implementation {implementation}: not a prepackaged server "
            f"(one of {', '.join(IMPLEMENTATIONS)})"
        )
    return implementation


def prepackaged_deployment(
    sdep: dict[str, Any], implementation: str, model_uri: str | None, with_image: bool
) -> dict[str, Any]:
    """A one-node SeldonDeployment turned into a prepackaged server's: its graph node
    says ``implementation`` and ``modelUri``; without an image, no container (the
    operator brings the server's)."""
    check(implementation)
    if not model_uri:
        raise PrepackagedError(
            "--implementation needs --model-uri: where the operator downloads the model "
            "from (gs://, s3://, https://, pvc://...)"
        )
    predictor = sdep["spec"]["predictors"][0]
    graph = predictor["graph"]
    graph["implementation"] = implementation
    graph["modelUri"] = model_uri
    if not with_image:
        predictor.pop("componentSpecs", None)
    return sdep


def local_model_uris(sdep: dict[str, Any]) -> list[str]:
    """A note for each node of the deployment whose ``modelUri`` is a path on this
    machine (fine for `unitserve graph`, but nothing the operator can download)."""
    notes = []
    stack = [p.get("graph") for p in sdep.get("spec", {}).get("predictors", [])]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        uri = str(node.get("modelUri") or "")
        if uri and ("://" not in uri or uri.startswith("file://")):
            notes.append(
                f"node {node.get('name')!r}: modelUri {uri} is a path on this machine, which "
                "the operator cannot download: in a cluster, give a bucket (s3://, gs://), "
                "https:// or pvc:// URI"
            )
        stack.extend(node.get("children") or [])
    return notes
