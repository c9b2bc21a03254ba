"""Where a graph's local nodes come from: ``--node NAME=DIR[:Interface]`` first, else the
folder ``<YAML's folder>/<node name>/``, whose ``.s2i/environment`` names the class
(``MODEL_NAME``) as the s2i image built from that folder would; and each node's user
object, built from its folder with the node's parameters. A node naming one of Seldon's
prepackaged servers (``implementation: SKLEARN_SERVER``) needs no folder: its
``modelUri`` is fetched to a local cache first (a relative local path is read from the
file's folder, as node folders are).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitserve import component, storage
from unitserve.errors import StartupError
from unitserve.graph.spec import GraphError, GraphSpec, NodeSpec
from unitserve.servers import IMPLEMENTATIONS, not_served


@dataclass(frozen=True)
class LocalSource:
    folder: Path
    interface: str


def parse_node_flag(text: str) -> tuple[str, Path, str | None]:
    """``NAME=DIR[:Interface]`` → (name, folder, interface or None)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise GraphError(f"--node {text!r}: expected NAME=DIR or NAME=DIR:Interface")
    folder, _, interface = rest.partition(":")
    return name, Path(folder), interface or None


# Where a node folder names its class, as for an s2i image built from it.
ENV_FILE = Path(".s2i") / "environment"


def find_sources(
    graph: GraphSpec,
    overrides: dict[str, tuple[Path, str | None]],
    read_environment: Callable[[Path], dict[str, str]],
) -> dict[str, LocalSource | None]:
    """Each node's class (None: remote or built in); a GraphError for a node that has
    neither a class nor an endpoint, or whose folder does not say which class.
    `read_environment` reads an ``.s2i/environment`` file as `unitserve serve` does."""
    names = {n.name for n in graph.root.walk()}
    for name in overrides:
        if name not in names:
            raise GraphError(f"--node {name}=...: the graph has no node named {name!r}")
    found: dict[str, LocalSource | None] = {}
    for node in graph.root.walk():
        if node.name in overrides:
            folder, interface = overrides[node.name]
            folder = folder.resolve()
            if not folder.is_dir():
                raise GraphError(f"node {node.name!r}: folder {folder} (--node) does not exist")
        elif node.implementation in IMPLEMENTATIONS:
            if not node.model_uri and not _has_model_uri_parameter(node):
                raise GraphError(
                    f"node {node.name!r}: implementation {node.implementation} needs a "
                    "modelUri: where the model is (a folder, s3://, gs://, https://...)"
                )
            found[node.name] = LocalSource(graph.folder, node.implementation)
            continue
        else:
            folder, interface = graph.folder / node.name, None
            if not folder.is_dir():
                if node.endpoint is not None or node.builtin:
                    found[node.name] = None
                    continue
                other_server = not_served(node.implementation or "")
                if other_server is not None:
                    raise GraphError(
                        f"node {node.name!r}: {other_server} (give it an endpoint with "
                        "service_host to call one running elsewhere)"
                    )
                raise GraphError(
                    f"node {node.name!r}: no class and no endpoint: no folder {folder} "
                    f"(or give --node {node.name}=DIR[:Interface], or an endpoint with "
                    "service_host)"
                )
        if interface is None:
            try:
                interface = read_environment(folder / ENV_FILE).get("MODEL_NAME")
            except Exception as exc:  # SettingsError: an unreadable or malformed file
                raise GraphError(f"node {node.name!r}: {exc}") from None
            if not interface:
                raise GraphError(
                    f"node {node.name!r}: {folder / ENV_FILE} does not name the class "
                    f"(MODEL_NAME=...); or give --node {node.name}=DIR:Interface"
                )
        found[node.name] = LocalSource(folder, interface)
    return found


def load_user(node: NodeSpec, source: LocalSource) -> Any:
    """The node's user object, built from its folder with the node's parameters.

    Node folders often hold modules of the same name (``Model.py`` in each): a module
    imported from another folder is forgotten first so that each node gets its own."""
    module = source.interface.rpartition(".")[0] or source.interface
    top = module.split(".")[0]
    loaded = sys.modules.get(top)
    if loaded is not None and not _inside(loaded, source.folder):
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]
    folder = str(source.folder)
    sys.path.insert(0, folder)
    try:
        importlib.invalidate_caches()
        user_class = component.import_user_class(source.interface, folder)
        kwargs = component.parse_parameters(json.dumps(node.parameters))
        if node.model_uri and source.interface in IMPLEMENTATIONS:
            kwargs["model_uri"] = _fetch_model(node, source.folder)
        return component.construct(user_class, kwargs)
    except StartupError as exc:
        raise GraphError(f"node {node.name!r}: {exc}") from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)


def _fetch_model(node: NodeSpec, graph_folder: Path) -> str:
    """A prepackaged server node's ``modelUri`` as a local path (downloaded once). A
    relative local path is read from the graph file's folder, as node folders are, so
    that the graph runs the same from any working folder."""
    assert node.model_uri is not None
    uri = node.model_uri
    if "://" not in uri and not Path(uri).expanduser().is_absolute():
        uri = str(graph_folder / uri)
    try:
        return storage.download(uri)
    except Exception as exc:  # load_user names the node
        raise GraphError(f"cannot fetch modelUri {node.model_uri}: {exc}") from None


def _has_model_uri_parameter(node: NodeSpec) -> bool:
    return any(isinstance(p, dict) and p.get("name") == "model_uri" for p in node.parameters)


def _inside(module: Any, folder: Path) -> bool:
    where = getattr(module, "__file__", None) or ""
    return bool(where) and Path(where).resolve().is_relative_to(folder.resolve())
