"""`unitserve manifest DIR --image IMAGE [--target seldon|kserve]`: Kubernetes objects
that run one component; `unitserve manifest GRAPH.yaml [--image NODE=IMAGE]...`: the
SeldonDeployment of a graph that `unitserve graph GRAPH.yaml` serves (`graph_deployment`).

``--target seldon`` (the default) writes a SeldonDeployment; ``--target kserve``
writes a KServe ServingRuntime and an InferenceService using it, served over the
Open Inference Protocol (see `kserve_manifests`).

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

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from unitserve.cli import manifest_core2, prepackaged, s2i
from unitserve.cli.build import USER_ID, PackagingError, write_generated
from unitserve.servers import IMPLEMENTATIONS
from unitserve.settings import SettingsError
from unitserve.version import __version__

API_VERSION = "machinelearning.seldon.io/v1"
# The v1 PredictiveUnitType values a graph node may have (no OUTLIER_DETECTOR there).
GRAPH_TYPES = ("MODEL", "ROUTER", "COMBINER", "TRANSFORMER", "OUTPUT_TRANSFORMER")
PORTS = {"http": 9000, "grpc": 5000, "metrics": 6000}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TARGETS = ("seldon", "kserve", manifest_core2.TARGET)
SELDON_FILE = "seldondeployment.yaml"
KSERVE_FILE = "inferenceservice.yaml"

# KServe: the API versions of the two objects, and what KServe expects of a runtime's
# container: the name kserve-container and HTTP on 8080 (the port KServe routes to when
# the container declares none).
SERVING_RUNTIME_API = "serving.kserve.io/v1alpha1"
INFERENCE_SERVICE_API = "serving.kserve.io/v1beta1"
KSERVE_CONTAINER = "kserve-container"
KSERVE_HTTP_PORT = 8080
# A model format no built-in KServe runtime claims, so the InferenceService can only
# land on ours.
MODEL_FORMAT = "unitserve"
# Only what the server speaks: Open Inference Protocol over REST and gRPC. KServe's
# V1 protocol (/v1/models/NAME:predict) is not served.
KSERVE_PROTOCOLS = ["v2", "grpc-v2"]
# The node types the Open Inference Protocol can call on their own; a ROUTER or
# COMBINER answers it with an error.
OIP_TYPES = ("MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER")
# The InferenceService name KServe accepts (it must start with a letter).
_ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_RUNTIME_SUFFIX = "-runtime"


def dns_name(text: str) -> str:
    """A Kubernetes DNS-1123 label from a folder or class name (``My_Model`` → ``my-model``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    if not _DNS_LABEL.match(name):
        raise PackagingError(f"cannot make a Kubernetes name from {text!r}: give one with --name")
    return name


def _probe(path: str, period: int, failures: int, port: str | int = "http") -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _resources(cpu: str, memory: str) -> dict[str, Any]:
    # Placeholders: size them to the model (memory grows with --workers).
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def _security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": USER_ID, "allowPrivilegeEscalation": False}


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
        "ports": [
            {"name": port, "containerPort": number, "protocol": "TCP"}
            for port, number in PORTS.items()
        ],
        "env": [
            {"name": "PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "value": str(PORTS["http"])},
            {"name": "PREDICTIVE_UNIT_GRPC_SERVICE_PORT", "value": str(PORTS["grpc"])},
        ],
        # Slow imports and load() are covered by the startup probe (up to 5 minutes),
        # so that liveness can be strict afterwards.
        "startupProbe": _probe("/live", period=5, failures=60),
        "livenessProbe": _probe("/live", period=10, failures=3),
        # 503 until load() has finished in a worker: no traffic before the model is loaded.
        "readinessProbe": _probe("/ready", period=5, failures=3),
        "resources": _resources(cpu, memory),
        "securityContext": _security_context(),
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


def kserve_manifests(
    name: str,
    image: str,
    replicas: int = 1,
    cpu: str = "500m",
    memory: str = "512Mi",
) -> list[dict[str, Any]]:
    """A ServingRuntime running IMAGE and an InferenceService NAME served by it.

    The runtime starts ``unitserve serve`` with HTTP on KServe's port 8080 and
    names the model after the InferenceService: KServe replaces ``{{.Name}}`` in
    a runtime container's fields by the InferenceService's name, so a client
    calls ``/v2/models/NAME/infer`` on the address KServe gives NAME. The class
    to serve comes from the image's own MODEL_NAME (``unitserve build``).
    gRPC stays on its usual port: KServe exposes it only where a port named
    ``h2c`` is declared (docs/kubernetes.md says how).
    """
    runtime_name = name[: 63 - len(_RUNTIME_SUFFIX)].rstrip("-") + _RUNTIME_SUFFIX
    container = {
        "name": KSERVE_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["unitserve", "serve"],
        "args": ["--http-port", str(KSERVE_HTTP_PORT), "--model-name", "{{.Name}}"],
        # No startup probe: Knative (KServe's serverless mode) may refuse one. Liveness
        # therefore allows a minute for imports before the server first answers.
        "livenessProbe": _probe("/v2/health/live", 10, 6, KSERVE_HTTP_PORT),
        # Not ready until load() has finished: KServe sends no traffic before that.
        "readinessProbe": _probe("/v2/health/ready", 5, 3, KSERVE_HTTP_PORT),
        "resources": _resources(cpu, memory),
        "securityContext": _security_context(),
    }
    runtime = {
        "apiVersion": SERVING_RUNTIME_API,
        "kind": "ServingRuntime",
        "metadata": {"name": runtime_name},
        "spec": {
            # Where KServe's Prometheus scraping finds unitserve's metrics.
            "annotations": {
                "prometheus.kserve.io/port": str(PORTS["metrics"]),
                "prometheus.kserve.io/path": "/metrics",
            },
            "supportedModelFormats": [{"name": MODEL_FORMAT, "version": "1", "autoSelect": False}],
            "protocolVersions": list(KSERVE_PROTOCOLS),
            "containers": [container],
        },
    }
    predictor: dict[str, Any] = {
        "model": {
            "modelFormat": {"name": MODEL_FORMAT, "version": "1"},
            "runtime": runtime_name,
            "protocolVersion": "v2",
        },
        # A fixed replica count, as in the SeldonDeployment; 0 lets KServe's
        # serverless mode scale to zero.
        "minReplicas": replicas,
    }
    if replicas > 0:
        predictor["maxReplicas"] = replicas
    isvc = {
        "apiVersion": INFERENCE_SERVICE_API,
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"predictor": predictor},
    }
    return [runtime, isvc]


def render_kserve(objects: list[dict[str, Any]], source: str, filename: str) -> str:
    header = (
        f"# Generated by `unitserve manifest --target kserve` {__version__} for {source}.\n"
        f"# Apply with: kubectl apply -f {filename} (KServe installed).\n"
        "# The model answers on /v2/models/<InferenceService name>/infer; resources are "
        "placeholders.\n"
    )
    body = yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)
    return header + body


def render(sdep: dict[str, Any], source: str) -> str:
    header = (
        f"# Generated by `unitserve manifest` {__version__} for {source}.\n"
        f"# Apply with: kubectl apply -f seldondeployment.yaml (Seldon Core 1.x installed).\n"
        "# The operator adds PREDICTIVE_UNIT_ID/IMAGE, PREDICTOR_ID/LABELS, "
        "SELDON_DEPLOYMENT_ID\n# and the metrics port variables; resources are placeholders.\n"
    )
    return header + yaml.safe_dump(sdep, sort_keys=False, default_flow_style=False)


def _graph_type(directory: Path, given: str | None) -> str:
    try:
        env = s2i.read_environment_file(directory / s2i.ENV_FILE)
        kind = s2i.check_service_type(
            given or env.get("SERVICE_TYPE") or "MODEL",
            "--type" if given else str(s2i.ENV_FILE),
        )
    except SettingsError as exc:
        raise PackagingError(str(exc)) from None
    if kind not in GRAPH_TYPES:
        raise PackagingError(
            f"{kind} is not a SeldonDeployment graph node type ({', '.join(GRAPH_TYPES)})"
        )
    return kind


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "manifest",
        help="write Kubernetes manifests (Seldon Core or KServe) for a component folder",
        description="Write the Kubernetes objects that run IMAGE (built from `unitserve "
        "build DIR`), with probes and resource placeholders. --target seldon (the default) "
        f"writes DIR/{SELDON_FILE}: a SeldonDeployment ({API_VERSION}) with a one-node "
        f"graph. --target kserve writes DIR/{KSERVE_FILE}: a KServe ServingRuntime "
        f"({SERVING_RUNTIME_API}) and an InferenceService ({INFERENCE_SERVICE_API}) "
        "served over the Open Inference Protocol (v2), the model named after the "
        "InferenceService.",
    )
    p.add_argument(
        "directory",
        metavar="DIR|GRAPH",
        type=Path,
        help="the component folder; or a SeldonDeployment file whose graph `unitserve "
        "graph` serves, its nodes in folders next to it",
    )
    p.add_argument(
        "--image",
        action="append",
        default=None,
        metavar="IMAGE|NODE=IMAGE",
        help="the container image, e.g. registry.example/demo:0.1; for a graph, each "
        "local node's as NODE=IMAGE (repeatable; default: the image the file gives the "
        "node's container)",
    )
    p.add_argument(
        "--predictor",
        default=None,
        help="for a graph file: the predictor whose graph to deploy (default: the first)",
    )
    p.add_argument(
        "--target",
        metavar="|".join(TARGETS),
        choices=TARGETS,
        default="seldon",
        help="seldon: a SeldonDeployment for Seldon Core 1.x; kserve: a ServingRuntime and "
        "an InferenceService for KServe; seldon-core-2: a Server (MLServer's ServerConfig "
        f"with unitserve's image) and a Model, in DIR/{manifest_core2.CORE2_FILE} "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--type",
        dest="service_type",
        metavar="TYPE",
        type=str.upper,
        choices=GRAPH_TYPES,
        default=None,
        help=f"graph node type: {', '.join(GRAPH_TYPES)} (default: SERVICE_TYPE from "
        "DIR/.s2i/environment, else MODEL); --target kserve takes "
        f"{', '.join(OIP_TYPES)}",
    )
    p.add_argument(
        "--name",
        default=None,
        help="deployment, container and graph node name; with --target kserve the "
        "InferenceService and model name (default: the folder's name)",
    )
    p.add_argument(
        "--transport",
        metavar="REST|GRPC",
        type=str.upper,
        choices=("REST", "GRPC"),
        default=None,
        help="how the Seldon executor calls the component (default: REST; --target seldon only)",
    )
    p.add_argument(
        "--replicas", metavar="N", type=int, default=1, help="pod replicas (default: %(default)s)"
    )
    p.add_argument("--cpu", default="500m", help="CPU request (default: %(default)s)")
    p.add_argument(
        "--memory", default="512Mi", help="memory request and limit (default: %(default)s)"
    )
    p.add_argument(
        "--implementation",
        metavar="NAME",
        default=None,
        help="a prepackaged server (SKLEARN_SERVER, XGBOOST_SERVER, LIGHTGBM_SERVER, "
        "MLFLOW_SERVER) for the one-node graph, with --model-uri; without --image the "
        "operator runs its own server image",
    )
    p.add_argument(
        "--model-uri",
        metavar="URI",
        default=None,
        help="with --implementation: the graph node's modelUri, which the operator "
        "downloads for the server",
    )
    p.add_argument("--print", action="store_true", help="print to standard output, write nothing")
    p.add_argument(
        "--force", action="store_true", help="replace a file that unitserve did not write"
    )
    manifest_core2.add_arguments(p)
    p.set_defaults(func=run)


def _kserve_checks(name: str, kind: str, transport: str | None) -> None:
    if transport is not None:
        raise PackagingError("--transport is for --target seldon (KServe calls the model itself)")
    if kind not in OIP_TYPES:
        raise PackagingError(
            f"a {kind} cannot be served on its own by KServe (--target kserve takes "
            f"{', '.join(OIP_TYPES)})"
        )
    if not _ISVC_NAME.match(name):
        raise PackagingError(
            f"{name!r} is not an InferenceService name (it must start with a letter): "
            "give one with --name"
        )


def _check_image(image: str) -> None:
    if not image.strip() or any(c.isspace() for c in image):
        raise PackagingError(f"--image {image!r} is not an image reference")


def _run_graph(args: argparse.Namespace) -> tuple[Path, str]:
    """A graph file: its SeldonDeployment for a cluster, next to it."""
    path: Path = args.directory
    if args.target != "seldon":
        raise PackagingError("a graph deploys as a SeldonDeployment (--target seldon)")
    if args.service_type or args.name:
        raise PackagingError("--type and --name are for a component folder, not a graph")
    images = {}
    for item in args.image or []:
        node, sep, image = item.partition("=")
        if not sep or not node:
            raise PackagingError(f"--image {item!r}: a graph's images are given as NODE=IMAGE")
        _check_image(image)
        images[node] = image
    sdep = graph_deployment(
        path, args.predictor, images, args.transport, args.replicas, args.cpu, args.memory
    )
    target = path.resolve().parent / SELDON_FILE
    if target == path.resolve():
        raise PackagingError(f"{path} would be replaced: use --print and redirect the output")
    return target, render(sdep, f"{path.name} (graph)")


def run(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    try:
        if directory.is_file():
            if args.replicas < 0:
                raise PackagingError("--replicas must be >= 0")
            target, text = _run_graph(args)
            if args.print:
                sys.stdout.write(text)
                return 0
            write_generated(target, text, args.force)
            print(f"wrote {target}; apply it with: kubectl apply -f {target}")
            return 0
        if not directory.is_dir():
            raise PackagingError(f"{directory} is not a directory")
        if args.implementation and args.target != "seldon":
            raise PackagingError("--implementation is for --target seldon (a SeldonDeployment)")
        if not args.image and args.implementation:
            args.image = [""]  # the operator brings the server's image
        if not args.image:
            # A usage mistake, answered as the argument parser answers one (exit 2): the
            # option is required for a folder, not for a graph whose file names images.
            print(
                "unitserve manifest: error: the following arguments are required: --image",
                file=sys.stderr,
            )
            return 2
        if len(args.image) != 1:
            raise PackagingError("give the component's image once: --image IMAGE")
        args.image = args.image[0]
        if args.image or not args.implementation:
            _check_image(args.image)
        if args.replicas < 0:
            raise PackagingError("--replicas must be >= 0")
        name = dns_name(args.name or directory.resolve().name)
        kind = _graph_type(directory, args.service_type)
        source = f"{directory.resolve().name} ({kind})"
        core2_settings = None
        if args.target == manifest_core2.TARGET:
            target, text, core2_settings = manifest_core2.build(args, directory, name, kind)
        elif args.target == "kserve":
            _kserve_checks(name, kind, args.transport)
            objects = kserve_manifests(name, args.image, args.replicas, args.cpu, args.memory)
            target = directory / KSERVE_FILE
            text = render_kserve(objects, source, KSERVE_FILE)
        else:
            sdep = seldon_deployment(
                name,
                args.image,
                kind,
                args.transport or "REST",
                args.replicas,
                args.cpu,
                args.memory,
            )
            if args.implementation:
                sdep = prepackaged.prepackaged_deployment(
                    sdep, args.implementation, args.model_uri, bool(args.image)
                )
            target = directory / SELDON_FILE
            text = render(sdep, source)
        if args.print:
            sys.stdout.write(text)
            return 0
        write_generated(target, text, args.force)
        if core2_settings is not None:
            written = manifest_core2.write_model_settings(directory, core2_settings)
            print(f"wrote {written}, for Core 2's agent to find the model by")
    except (PackagingError, prepackaged.PrepackagedError, OSError) as exc:
        print(f"unitserve manifest: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target}; apply it with: kubectl apply -f {target}")
    return 0
