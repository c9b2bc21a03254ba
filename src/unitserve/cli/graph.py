"""``unitserve graph FILE.yaml``: serve a SeldonDeployment's inference graph locally."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from unitserve.cli import s2i
from unitserve.errors import StartupError
from unitserve.runtime import logs
from unitserve.settings import SettingsError, add_option_arguments, resolve
from unitserve.version import __version__

log = logging.getLogger("unitserve")

# Flags of `serve` that are about one class and have no meaning for a graph (each node's
# parameters come from the graph; its kind from its type).
# Batching is a model server's: a graph's nodes are called once per request it walks.
_NOT_FOR_GRAPHS = (
    "parameters",
    "model_uri",  # each prepackaged node has its own modelUri in the graph
    "service_type",
    "persistence",
    "model_name",
    "model_version",
    "max_batch_size",
    "max_batch_time",
)
_FALSE_WORDS = ("false", "0", "no", "off", "n", "f")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "graph",
        help="serve a SeldonDeployment's inference graph on this machine",
        description="Serve the inference graph of a SeldonDeployment (JSON or YAML) with "
        "the Seldon orchestrator's external API (REST, gRPC, Prometheus metrics). Each "
        "node's class is found in the folder <the file's folder>/<node name>/ (its "
        ".s2i/environment names the class, MODEL_NAME), or with --node; a node with an "
        "endpoint and no folder is called over the network.",
    )
    p.add_argument("file", metavar="FILE", help="the SeldonDeployment (JSON or YAML)")
    p.add_argument(
        "--predictor",
        default=None,
        help="the predictor whose graph to serve (default: the first)",
    )
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="NAME=DIR[:Interface]",
        help="where node NAME's class is: folder DIR (relative to the working folder) "
        "and, unless its .s2i/environment names it, the class (repeatable)",
    )
    add_option_arguments(p, skip=_NOT_FOR_GRAPHS)
    p.set_defaults(func=_cmd_graph)


def _cmd_graph(args: argparse.Namespace) -> int:
    from unitserve.graph import nodes, serving, spec
    from unitserve.runtime import graph_server

    environ = dict(os.environ)
    path = Path(args.file)
    try:
        settings = resolve(args, environ, f"graph {path.name}")
    except SettingsError as exc:
        print(f"unitserve graph: error: {exc}", file=sys.stderr)
        return exc.exit_status
    logs.configure(settings.log_level)
    try:
        graph = spec.load(path, args.predictor)
        overrides = {}
        for text in args.node:
            name, folder, interface = nodes.parse_node_flag(text)
            overrides[name] = (folder, interface)
        sources = nodes.find_sources(graph, overrides, s2i.read_environment_file)
        injection = environ.get("SELDON_ENABLE_ROUTING_INJECTION", "true")
        plan = serving.build_plan(
            graph, sources, routing_injection=injection.strip().lower() not in _FALSE_WORDS
        )
    except (StartupError, SettingsError) as exc:
        print(f"unitserve graph: error: {exc}", file=sys.stderr)
        return 1
    log.info("unitserve %s", __version__)
    for node in graph.root.walk():
        source = sources.get(node.name)
        where = (
            f"{source.interface} with the model at {node.model_uri}"
            if source is not None and node.model_uri
            else f"{source.interface} from {source.folder}"
            if source is not None
            else f"{node.endpoint.kind} {node.endpoint.host}"
            if node.endpoint is not None
            else f"built in ({node.implementation})"
        )
        log.info("node %s (%s): %s", node.name, node.type, where)
    try:
        return graph_server.run(settings, plan)
    except StartupError as exc:
        print(f"unitserve: error: {exc}", file=sys.stderr)
        return 1
