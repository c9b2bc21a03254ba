"""``--target seldon``: the SeldonDeployment of one component (`seldon_deployment`),
or of a graph that `unitserve graph GRAPH.yaml` serves (`graph_deployment`).

SeldonDeployment field names follow the SeldonDeployment ``machinelearning.seldon.io/v1`` types
(Seldon Core's operator/apis/machinelearning.seldon.io/v1/seldondeployment_types.go,
"Seldon Deployment CRD" in its reference docs) and what its defaulting webhook
and controller do with a wrapped container:

* container ports named ``http``, ``grpc`` and ``metrics`` are taken as the
  component's REST, gRPC and Prometheus ports (instead of numbering new ones),
  so declaring unitserve's 9000/5000/6000 keeps image and manifest in step;
* ``PREDICTIVE_UNIT_HTTP_SERVICE_PORT`` / ``_GRPC_SERVICE_PORT`` are added by
  the operator only when the container does not set them; we set them to the
  declared ports. ``PREDICTIVE_UNIT_METRICS_SERVICE_PORT`` and
  ``PREDICTIVE_UNIT_METRICS_ENDPOINT`` (``/prometheus``, which unitserve also
  answers) are always appended by the operator from the ``metrics`` port, and
  ``PREDICTIVE_UNIT_ID`` / ``_IMAGE``, ``PREDICTOR_ID`` / ``_LABELS`` and
  ``SELDON_DEPLOYMENT_ID`` from the deployment: we leave those to it;
* probes the container already has are kept (otherwise it adds TCP probes):
  ours are HTTP probes on unitserve's honest ``/live`` and ``/ready``;
* a graph node must have a container of the same name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from unitserve.cli import s2i
from unitserve.cli.manifest.common import (
    PORTS,
    PackagingError,
    component_probes,
    dns_name,
    named_ports,
    resources,
    security_context,
)
from unitserve.servers import IMPLEMENTATIONS
from unitserve.version import __version__

API_VERSION = "machinelearning.seldon.io/v1"
# The v1 PredictiveUnitType values a graph node may have (no OUTLIER_DETECTOR there).
GRAPH_TYPES = ("MODEL", "ROUTER", "COMBINER", "TRANSFORMER", "OUTPUT_TRANSFORMER")
SELDON_FILE = "seldondeployment.yaml"


def seldon_deployment(
    name: str,
    image: str,
    graph_type: str,
    transport: str = "REST",
    replicas: int = 1,
    cpu: str = "500m",
    memory: str = "512Mi",
) -> dict[str, Any]:
    """The SeldonDeployment object: one predictor, one container, a one-node graph."""
    container = seldon_container(name, image, cpu, memory)
    return {
        "apiVersion": API_VERSION,
        "kind": "SeldonDeployment",
        "metadata": {"name": name},
        "spec": {
            "protocol": "seldon",
            "predictors": [
                {
                    "name": "default",
                    "replicas": replicas,
                    "componentSpecs": [{"spec": {"containers": [container]}}],
                    "graph": {
                        "name": name,
                        "type": graph_type,
                        "endpoint": {"type": transport},
                        "children": [],
                    },
                }
            ],
        },
    }


def seldon_container(name: str, image: str, cpu: str, memory: str) -> dict[str, Any]:
    """A component's container as the Seldon operator expects it (see the module
    docstring): named ports, the port variables, honest probes."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": named_ports(),
        "env": [
            {"name": "PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "value": str(PORTS["http"])},
            {"name": "PREDICTIVE_UNIT_GRPC_SERVICE_PORT", "value": str(PORTS["grpc"])},
        ],
        **component_probes(),
        "resources": resources(cpu, memory),
        "securityContext": security_context(),
    }


def graph_deployment(
    path: Path,
    predictor: str | None,
    images: dict[str, str],
    transport: str | None = None,
    replicas: int | None = None,
    cpu: str = "500m",
    memory: str = "512Mi",
) -> dict[str, Any]:
    """The SeldonDeployment of the graph in `path` (what `unitserve graph` serves), ready
    for a cluster: each node found in a folder as `unitserve graph` finds it gets a
    container of its name running its image (``images``, else the image the file
    already gives that container), keeping the container's own ``env``; remote and
    built-in nodes stay as they are. The graph itself is not changed, but for the
    endpoint type of local nodes (``transport``, else what the node says, else REST)."""
    from unitserve.graph import nodes, spec

    try:
        graph = spec.load(path, predictor)
        sources = nodes.find_sources(graph, {}, s2i.read_environment_file)
    except spec.GraphError as exc:
        raise PackagingError(str(exc)) from None
    document = next(
        d
        for d in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if isinstance(d, dict) and d.get("kind") == "SeldonDeployment"
    )
    chosen = next(p for p in document["spec"]["predictors"] if p.get("name") == graph.name)
    for name in images:
        if name not in sources:
            raise PackagingError(f"--image {name}=...: the graph has no node named {name!r}")
    existing: dict[str, dict[str, Any]] = {}
    for component in chosen.get("componentSpecs") or []:
        for container in (component.get("spec") or {}).get("containers") or []:
            existing[container.get("name")] = container
    for node in graph.root.walk():
        if node.implementation in IMPLEMENTATIONS and node.name not in images:
            sources[node.name] = None  # a prepackaged server: the operator brings its image
    containers = []
    for node in graph.root.walk():
        if sources.get(node.name) is None:
            continue
        known = existing.pop(node.name, {})
        image = images.get(node.name) or known.get("image")
        if not image:
            raise PackagingError(
                f"node {node.name!r}: no image (give --image {node.name}=IMAGE, built with "
                f"`unitserve build {node.name}`)"
            )
        container = seldon_container(node.name, image, cpu, memory)
        env = [e for e in known.get("env") or [] if not e.get("name", "").startswith("PREDICTIVE_")]
        container["env"] = [*container["env"], *env]
        containers.append(container)
    containers.extend(existing.values())  # containers of other nodes the file already has
    _set_endpoints(chosen["graph"], sources, transport)
    predictor_out = {
        **{k: v for k, v in chosen.items() if k not in ("componentSpecs", "componentSpec")},
        # A pod per node: every container listens on the same three ports, as the image
        # built by `unitserve build` does, so two cannot share a pod.
        "componentSpecs": [{"spec": {"containers": [c]}} for c in containers],
    }
    if replicas is not None:
        predictor_out["replicas"] = replicas
    metadata: dict[str, Any] = (
        document["metadata"] if isinstance(document.get("metadata"), dict) else {}
    )
    name = dns_name(str(metadata.get("name") or graph.deployment or path.stem))
    return {
        "apiVersion": API_VERSION,
        "kind": "SeldonDeployment",
        "metadata": {"name": name},
        "spec": {"protocol": "seldon", "predictors": [predictor_out]},
    }


def _set_endpoints(raw: dict[str, Any], sources: dict[str, Any], transport: str | None) -> None:
    if sources.get(str(raw.get("name"))) is not None:
        endpoint: dict[str, Any] = raw["endpoint"] if isinstance(raw.get("endpoint"), dict) else {}
        kind = transport or str(endpoint.get("type") or "REST").upper()
        raw["endpoint"] = {"type": kind}  # the operator fills in host and ports
    for child in raw.get("children") or []:
        _set_endpoints(child, sources, transport)


def render(sdep: dict[str, Any], source: str) -> str:
    header = (
        f"# Generated by `unitserve manifest` {__version__} for {source}.\n"
        f"# Apply with: kubectl apply -f seldondeployment.yaml (Seldon Core 1.x installed).\n"
        "# The operator adds PREDICTIVE_UNIT_ID/IMAGE, PREDICTOR_ID/LABELS, "
        "SELDON_DEPLOYMENT_ID\n# and the metrics port variables; resources are placeholders.\n"
    )
    return header + yaml.safe_dump(sdep, sort_keys=False, default_flow_style=False)
