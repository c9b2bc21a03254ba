"""`unitserve manifest DIR --image IMAGE [--target TARGET]`: Kubernetes objects that
run one component; `unitserve manifest GRAPH.yaml [--image NODE=IMAGE]...`: the
SeldonDeployment of a graph that `unitserve graph GRAPH.yaml` serves.

One module per target (`seldon`, `kserve`, `deployment`, `core2`), and one row per target in
`TARGETS`: a new target is a module and a row. This module is the command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unitserve.cli import prepackaged, s2i
from unitserve.cli.generated import write_generated
from unitserve.cli.manifest import core2, deployment, kserve, seldon
from unitserve.cli.manifest.common import PORTS, PackagingError, Request, Target, dns_name
from unitserve.cli.manifest.kserve import OIP_TYPES, kserve_manifests
from unitserve.cli.manifest.seldon import (
    API_VERSION,
    GRAPH_TYPES,
    SELDON_FILE,
    graph_deployment,
    seldon_deployment,
)
from unitserve.settings import SettingsError

__all__ = [
    "API_VERSION",
    "GRAPH_TYPES",
    "OIP_TYPES",
    "PORTS",
    "SELDON_FILE",
    "TARGETS",
    "Request",
    "Target",
    "dns_name",
    "graph_deployment",
    "kserve_manifests",
    "seldon_deployment",
]


def _seldon(r: Request) -> str:
    sdep = seldon_deployment(
        r.name, r.image, r.kind, r.transport or "REST", r.replicas, r.cpu, r.memory
    )
    if r.implementation:
        sdep = prepackaged.prepackaged_deployment(
            sdep, r.implementation, r.model_uri, bool(r.image)
        )
    return seldon.render(sdep, r.source)


def _kserve(r: Request) -> str:
    kserve.check(r.name, r.kind, r.transport)
    objects = kserve_manifests(r.name, r.image, r.replicas, r.cpu, r.memory)
    return kserve.render_kserve(objects, r.source, kserve.KSERVE_FILE)


def _deployment(r: Request) -> str:
    if r.transport is not None:
        raise PackagingError("--transport is for --target seldon")
    objects = deployment.deployment_manifests(r.name, r.image, r.replicas, r.cpu, r.memory)
    return deployment.render_deployment(objects, r.source)


TARGETS: dict[str, Target] = {
    "seldon": Target(
        SELDON_FILE,
        f"a SeldonDeployment ({API_VERSION}) with a one-node graph, for Seldon Core 1.x",
        _seldon,
    ),
    "kserve": Target(
        kserve.KSERVE_FILE,
        f"a KServe ServingRuntime ({kserve.SERVING_RUNTIME_API}) and an InferenceService "
        f"({kserve.INFERENCE_SERVICE_API}) served over the Open Inference Protocol (v2), the "
        "model named after the InferenceService",
        _kserve,
    ),
    "deployment": Target(
        deployment.DEPLOYMENT_FILE,
        "a plain Deployment (apps/v1) and Service (v1), for any cluster",
        _deployment,
    ),
    core2.TARGET: Target(
        core2.CORE2_FILE,
        f"a Seldon Core 2 Server ({core2.API_VERSION}: MLServer's ServerConfig with "
        "unitserve's image) and a Model for the folder (needs --storage-uri; writes a "
        "model-settings.json when the folder has none)",
        core2.render_request,
        core2.companion,
    ),
}


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
    targets = " ".join(
        f"--target {n} writes DIR/{t.file}: {t.summary}." for n, t in TARGETS.items()
    )
    p = sub.add_parser(
        "manifest",
        help="write Kubernetes manifests (Seldon Core, KServe or a plain Deployment) for a "
        "component folder",
        description="Write the Kubernetes objects that run IMAGE (built from `unitserve "
        f"build DIR`), with probes and resource placeholders. {targets} The default is "
        "--target seldon.",
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
        choices=tuple(TARGETS),
        default="seldon",
        help="what to write (default: %(default)s)",
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
        "operator runs its own server image (--target seldon)",
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
        "--force",
        action="store_true",
        help="replace a file that unitserve did not write, or that was edited since",
    )
    core2.add_arguments(p)
    p.set_defaults(func=run)


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
    for note in prepackaged.local_model_uris(sdep):
        print(f"unitserve manifest: note: {note}", file=sys.stderr)
    target = path.resolve().parent / SELDON_FILE
    if target == path.resolve():
        raise PackagingError(f"{path} would be replaced: use --print and redirect the output")
    return target, seldon.render(sdep, f"{path.name} (graph)")


def _run_component(args: argparse.Namespace) -> tuple[Path, str, Target, Request] | int:
    directory: Path = args.directory
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
    image = args.image[0]
    if image or not args.implementation:
        _check_image(image)
    if args.replicas < 0:
        raise PackagingError("--replicas must be >= 0")
    name = dns_name(args.name or directory.resolve().name)
    kind = _graph_type(directory, args.service_type)
    target = TARGETS[args.target]
    request = Request(
        name,
        image,
        kind,
        f"{directory.resolve().name} ({kind})",
        args.transport,
        args.replicas,
        args.cpu,
        args.memory,
        directory,
        args.storage_uri,
        args.server,
        args.implementation,
        args.model_uri,
    )
    return directory / target.file, target.render(request), target, request


def run(args: argparse.Namespace) -> int:
    try:
        if args.directory.is_file():
            if args.replicas < 0:
                raise PackagingError("--replicas must be >= 0")
            made: tuple[Path, str, Target | None, Request | None] | int = (
                *_run_graph(args),
                None,
                None,
            )
        else:
            made = _run_component(args)
        if isinstance(made, int):
            return made
        target, text, kind, request = made
        if args.print:
            sys.stdout.write(text)
            return 0
        write_generated(target, text, args.force)
        extra = kind.companion(request) if kind and kind.companion and request else None
        if extra is not None:
            extra[0].write_text(extra[1], encoding="utf-8")
            print(f"wrote {extra[0]}, for the model to be found by")
    except (PackagingError, prepackaged.PrepackagedError, OSError) as exc:
        print(f"unitserve manifest: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target}; apply it with: kubectl apply -f {target}")
    return 0
