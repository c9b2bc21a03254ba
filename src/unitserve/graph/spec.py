"""Reading a SeldonDeployment: the predictor's graph as a tree of `NodeSpec`.

Accepted: ``machinelearning.seldon.io/v1``, ``v1alpha2`` and ``v1alpha3``, as JSON or
YAML (JSON is YAML). The operator's defaults are applied here, as the operator applies
them before the orchestrator sees the graph: a node without a type is a MODEL (a
built-in router or combiner implementation gives its own type), endpoints default to
REST. Every mistake is a `GraphError` naming the node and the problem, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from unitserve.errors import StartupError

API_VERSIONS = (
    "machinelearning.seldon.io/v1",
    "machinelearning.seldon.io/v1alpha2",
    "machinelearning.seldon.io/v1alpha3",
)
NODE_TYPES = ("MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER", "ROUTER", "COMBINER", "UNKNOWN_TYPE")
METHODS = ("TRANSFORM_INPUT", "TRANSFORM_OUTPUT", "ROUTE", "AGGREGATE", "SEND_FEEDBACK")
# Implementations the orchestrator answers without any user code.
BUILTIN = {
    "RANDOM_ABTEST": "ROUTER",
    "AVERAGE_COMBINER": "COMBINER",
    "SIMPLE_ROUTER": "ROUTER",
    "SIMPLE_MODEL": "MODEL",
    "UNKNOWN_IMPLEMENTATION": None,
}
DEFAULT_IMAGE = "NOT_IMPLEMENTED:NOT_IMPLEMENTED"


class GraphError(StartupError):
    """A mistake in the graph or in how its nodes are found: one line, exit 1."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    http_port: int | None
    grpc_port: int | None
    kind: str  # REST or GRPC


@dataclass
class NodeSpec:
    name: str
    type: str
    implementation: str | None = None
    methods: tuple[str, ...] = ()
    parameters: list[dict[str, Any]] = field(default_factory=list)
    endpoint: Endpoint | None = None
    image: str = DEFAULT_IMAGE
    # The node container's MODEL_METADATA environment variable, as Kubernetes would set
    # it: a graph written for Seldon keeps its nodes' metadata with no other file.
    model_metadata: str | None = None
    # A prepackaged server's model (``modelUri``): fetched to a local cache before serving.
    model_uri: str | None = None
    children: list[NodeSpec] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        """True if the orchestrator itself plays this node (no class, no endpoint)."""
        return self.implementation in BUILTIN and self.implementation != "UNKNOWN_IMPLEMENTATION"

    def walk(self) -> list[NodeSpec]:
        """This node and every node below it, parents first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass
class GraphSpec:
    name: str  # the predictor's name
    deployment: str
    root: NodeSpec
    folder: Path  # where the file is: node folders are looked up here


def load(path: Path, predictor: str | None = None) -> GraphSpec:
    """The graph of `predictor` (default: the first) in the SeldonDeployment at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise GraphError(f"{path}{where}: not valid YAML or JSON: {problem}") from None
    deployments = [
        d for d in documents if isinstance(d, dict) and d.get("kind") == "SeldonDeployment"
    ]
    if not deployments:
        raise GraphError(f"{path}: no SeldonDeployment in the file (kind: SeldonDeployment)")
    doc = deployments[0]
    version = doc.get("apiVersion")
    if version not in API_VERSIONS:
        raise GraphError(f"{path}: apiVersion {version!r} is not one of {', '.join(API_VERSIONS)}")
    spec = doc.get("spec")
    predictors = spec.get("predictors") if isinstance(spec, dict) else None
    if not isinstance(predictors, list) or not predictors:
        raise GraphError(f"{path}: spec.predictors is missing or empty")
    protocol = spec.get("protocol") if isinstance(spec, dict) else None
    if protocol not in (None, "", "seldon"):
        # Served anyway, its clients would meet 404s where the deployment promised them
        # another protocol's paths.
        raise GraphError(
            f"{path}: spec.protocol {protocol!r}: unitserve graph serves Seldon's protocol "
            "(protocol: seldon, the default); one model, prepackaged servers included, "
            "answers the Open Inference Protocol too with `unitserve serve`"
        )
    names = [p.get("name") if isinstance(p, dict) else None for p in predictors]
    if predictor is None:
        chosen = predictors[0]
    elif predictor in names:
        chosen = predictors[names.index(predictor)]
    else:
        raise GraphError(
            f"{path}: no predictor named {predictor!r} (there are: "
            f"{', '.join(str(n) for n in names)})"
        )
    if not isinstance(chosen, dict) or not isinstance(chosen.get("graph"), dict):
        raise GraphError(f"{path}: predictor {chosen.get('name')!r} has no graph")
    images, environments = _containers(chosen)
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    assert isinstance(spec, dict) and isinstance(meta, dict)
    root = _node(chosen["graph"], images, "spec.predictors[].graph", ())
    for node in root.walk():
        node.model_metadata = environments.get(node.name, {}).get("MODEL_METADATA")
    _check_names(root)
    return GraphSpec(
        name=str(chosen.get("name") or "default"),
        deployment=str(meta.get("name") or spec.get("name") or ""),
        root=root,
        folder=path.resolve().parent,
    )


def _containers(predictor: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Container name → image (recorded in meta.requestPath) and container name → its
    plain ``env`` values, from the predictor's componentSpecs (v1) or componentSpec
    (v1alpha2)."""
    specs = predictor.get("componentSpecs") or []
    if isinstance(predictor.get("componentSpec"), dict):
        specs = [predictor["componentSpec"], *specs]
    images: dict[str, str] = {}
    environments: dict[str, dict[str, str]] = {}
    for component in specs if isinstance(specs, list) else []:
        pod = component.get("spec") if isinstance(component, dict) else None
        containers = pod.get("containers") if isinstance(pod, dict) else None
        for container in containers if isinstance(containers, list) else []:
            if not isinstance(container, dict) or not container.get("name"):
                continue
            name = str(container["name"])
            if container.get("image"):
                images[name] = str(container["image"])
            env = container.get("env")
            # Only literal values: a valueFrom names a Secret or a field of a pod there is
            # none of on this machine.
            environments[name] = {
                str(item["name"]): str(item["value"])
                for item in (env if isinstance(env, list) else [])
                if isinstance(item, dict) and "name" in item and "value" in item
            }
    return images, environments


def _node(raw: Any, images: dict[str, str], where: str, above: tuple[int, ...]) -> NodeSpec:
    if id(raw) in above:  # a YAML alias naming one of the node's own ancestors
        raise GraphError(f"{where}: the graph has a cycle (a node is its own descendant)")
    if not isinstance(raw, dict):
        raise GraphError(f"{where}: a graph node must be a mapping, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise GraphError(f"{where}: a graph node has no name")
    implementation = raw.get("implementation")
    if implementation is not None:
        implementation = str(implementation)
    kind = raw.get("type")
    if kind is None:  # the operator's default
        kind = BUILTIN.get(implementation or "") or "MODEL"
    kind = str(kind)
    if kind not in NODE_TYPES:
        raise GraphError(f"node {name!r}: unknown type {kind!r} (one of {', '.join(NODE_TYPES)})")
    methods = raw.get("methods") or []
    if not isinstance(methods, list) or any(m not in METHODS for m in methods):
        raise GraphError(f"node {name!r}: methods must be a list of {', '.join(METHODS)}")
    parameters = raw.get("parameters") or []
    if not isinstance(parameters, list):
        raise GraphError(f"node {name!r}: parameters must be a list of name/value/type")
    children_raw = raw.get("children") or []
    if not isinstance(children_raw, list):
        raise GraphError(f"node {name!r}: children must be a list")
    node = NodeSpec(
        name=name,
        type=kind,
        implementation=implementation,
        methods=tuple(methods),
        parameters=parameters,
        endpoint=_endpoint(name, raw.get("endpoint")),
        image=images.get(name, DEFAULT_IMAGE),
        model_uri=str(raw["modelUri"]) if raw.get("modelUri") else None,
        children=[_node(c, images, f"node {name!r}", (*above, id(raw))) for c in children_raw],
    )
    if kind == "ROUTER" and not node.children:
        raise GraphError(f"node {name!r}: a ROUTER needs at least one child")
    if implementation == "RANDOM_ABTEST" and len(node.children) != 2:
        raise GraphError(f"node {name!r}: RANDOM_ABTEST needs exactly two children")
    return node


def _endpoint(name: str, raw: Any) -> Endpoint | None:
    """A remote node's address; None unless it names a host (the operator fills
    ports in for pods it creates, which a local run does not have)."""
    if not isinstance(raw, dict) or not raw.get("service_host"):
        return None
    kind = str(raw.get("type") or "REST").upper()
    if kind not in ("REST", "GRPC"):
        raise GraphError(f"node {name!r}: endpoint type {kind!r} must be REST or GRPC")

    def port(key: str) -> int | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            raise GraphError(f"node {name!r}: endpoint {key} {value!r} is not a port number")
        return value

    http_port = port("httpPort")
    grpc_port = port("grpcPort")
    legacy = port("service_port")  # v1alpha2: one port, of the endpoint's type
    if kind == "REST":
        http_port = http_port or legacy
        if http_port is None:
            raise GraphError(f"node {name!r}: a REST endpoint needs httpPort")
    else:
        grpc_port = grpc_port or legacy
        if grpc_port is None:
            raise GraphError(f"node {name!r}: a GRPC endpoint needs grpcPort")
    return Endpoint(str(raw["service_host"]), http_port, grpc_port, kind)


def _check_names(root: NodeSpec) -> None:
    """Names are the keys of meta.routing and meta.requestPath: each must be unique
    (a repeated name is also how a cycle would show in a tree written as YAML)."""
    seen: set[str] = set()
    for node in root.walk():
        if node.name in seen:
            raise GraphError(
                f"node {node.name!r}: the name is used twice in the graph (names must be "
                "unique; a node cannot be its own descendant)"
            )
        seen.add(node.name)


def ratio_a(node: NodeSpec) -> float:
    """RANDOM_ABTEST's probability of child 0: its parameter ``ratioA`` (default 0.5)."""
    for item in node.parameters:
        if isinstance(item, dict) and item.get("name") == "ratioA":
            try:
                value = float(item.get("value"))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise GraphError(f"node {node.name!r}: ratioA must be a number") from None
            if not 0.0 <= value <= 1.0:
                raise GraphError(f"node {node.name!r}: ratioA {value} is not between 0 and 1")
            return value
    return 0.5
