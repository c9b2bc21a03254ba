"""Imports follow the one-way flow of a request.

The package is layered, top to bottom: ``cli`` → ``runtime`` → ``transport`` and
``graph`` (side by side) → ``models`` (served models, their registry and the Open
Inference data plane) → ``protocol`` and ``metrics`` (side by side) → the core (the
engine, the user-facing API, settings, errors, the protobuf classes) → ``tracing`` (the
spans every layer puts around its work, which knows none of them). The transports and
the graph never see each other: a graph is one served model in the registry, which the
transports serve as they serve any model. A module may import modules of its own
layer and of the layers below it, never one above: the engine knows nothing of the
wire, a codec nothing of HTTP or gRPC. And no modules import each other in a circle,
directly or through others, in the package or in the soak harness.

Imports are read from the source with `ast`, wherever they are: at the top of a module,
inside a function (a lazy import is still a dependency), under ``if TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"

# The layer of each top-level name under unitserve/, from the top (highest rank) down.
# Layers that share a rank are separate layers: neither may import the other (transport
# and graph; protocol and metrics).
RANKS = {
    "cli": 7,
    "runtime": 5,
    "transport": 4,
    "graph": 4,
    "models": 3,
    "protocol": 2,
    "metrics": 2,
    "core": 1,
    "tracing": 0,
}
LAYER_OF = {
    "__main__": "cli",  # `python -m unitserve` is the command line
    "cli": "cli",
    "graph": "graph",  # a SeldonDeployment's graph as one served model, its nodes as models
    "runtime": "runtime",
    # a model repository on disk (MLServer's format), read for the runtime to serve
    "repository": "runtime",
    "transport": "transport",
    "client": "transport",  # knows HTTP and gRPC, uses the codecs; the CLI's tools use it
    "models": "models",  # served models, the registry, the data plane the transports call
    "protocol": "protocol",
    "metrics": "metrics",
    # the core: what the user imports, the component contract, and what it needs
    "": "core",  # unitserve/__init__.py: the public API, re-exported from the core
    "engine": "core",
    "replies": "core",  # the payload kind and meta of an engine's answer
    "wire_methods": "core",  # Seldon's precedence of deprecated and raw methods
    "calls": "core",
    "drivers": "core",  # runs an operation's user calls: for calls and batching alike
    "storage": "core",  # a URI to a local folder: a leaf the servers and users' load() call
    "batching": "core",  # adaptive batching: groups requests for the invoker
    "message": "core",  # the engine's view of a request and an answer
    "operations": "core",
    "component": "core",
    "settings": "core",
    "errors": "core",
    "metadata": "core",
    "user_metrics": "core",
    "user_model": "core",
    "proto": "core",
    "version": "core",
    # spans around what every layer does (the engine's calls too, so it sits below the
    # core): it is handed what it wraps and imports nothing of the package's own
    "tracing": "tracing",
    "servers": "core",  # the prepackaged servers: user classes, importing only the core
}

# Upward imports that are known and accepted: none. An entry must still occur, so that
# the list can only shrink.
KNOWN_UPWARD: set[tuple[str, str]] = set()

# The package never imports these: they use it, not the other way round.
TOOLING = ("tests", "benchmarks", "soak", "scripts")


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int


def modules(root: Path, package: str) -> dict[str, Path]:
    """{dotted name: file} of every module of `package` under `root`."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[Import]:
    """Every import in `path` of a module in `known` (others are third-party or the
    standard library), resolved to the module it loads."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: up from this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import name`: the submodule pkg.name if there is one, else pkg
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:  # `import a.b.C` → a.b
                target = target.rpartition(".")[0]
            if target in known and target != name:
                yield Import(name, target, node.lineno)


def import_graph(root: Path, package: str, also: dict[str, Path] | None = None) -> list[Import]:
    """The imports between modules of `package` (and into `also`), each once per line."""
    known = modules(root, package)
    edges = (
        edge
        for name, path in known.items()
        for edge in imports(name, path, {**known, **(also or {})})
    )
    return list(dict.fromkeys(edges))


def layer(module: str) -> str | None:
    """The layer of a unitserve module; None for others and for names not in LAYER_OF."""
    parts = module.split(".")
    if parts[0] != "unitserve":
        return None
    return LAYER_OF.get(parts[1] if len(parts) > 1 else "")


def upward(edges: list[Import]) -> list[Import]:
    """Each import that goes from a layer up to a higher one, or across to a sibling."""
    found = []
    for edge in edges:
        mine, theirs = layer(edge.importer), layer(edge.target)
        if mine is None or theirs is None or mine == theirs:
            continue
        if RANKS[theirs] >= RANKS[mine]:
            found.append(edge)
    return found


def shown(edge: Import) -> str:
    return (
        f"{edge.importer} ({layer(edge.importer)}) line {edge.line} imports "
        f"{edge.target} ({layer(edge.target)})"
    )


def cycles(edges: list[Import]) -> list[list[str]]:
    """The import circles: each strongly connected group of two or more modules
    (Tarjan's algorithm), with the edges inside it."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [
        [
            f"{e.importer} line {e.line} → {e.target}"
            for e in edges
            if {e.importer, e.target} <= set(g)
        ]
        for g in groups
    ]


# ----------------------------------------------------------------------------- the repo


@pytest.fixture(scope="module")
def package_edges() -> list[Import]:
    return import_graph(SRC, "unitserve")


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(name for name in modules(SRC, "unitserve") if layer(name) is None)
    assert not unplaced, f"put these in LAYER_OF (which layer are they?): {unplaced}"


def test_no_import_goes_up_a_layer(package_edges: list[Import]) -> None:
    found = upward(package_edges)
    unknown = [shown(e) for e in found if (e.importer, e.target) not in KNOWN_UPWARD]
    assert not unknown, "imports against the layer order:\n" + "\n".join(unknown)
    gone = KNOWN_UPWARD - {(e.importer, e.target) for e in found}
    assert not gone, f"fixed, so remove them from KNOWN_UPWARD: {sorted(gone)}"


def test_the_package_never_imports_the_tooling() -> None:
    tooling = {name: path for top in TOOLING for name, path in modules(ROOT, top).items()}
    into = [e for e in import_graph(SRC, "unitserve", also=tooling) if e.target in tooling]
    assert not into, into


@pytest.mark.parametrize("package", ["unitserve", "soak"])
def test_no_import_cycles(package: str) -> None:
    root = SRC if package == "unitserve" else ROOT
    found = cycles(import_graph(root, package))
    assert not found, "import circles:\n" + "\n\n".join("\n".join(c) for c in found)


# ----------------------------------------------------------------------------- the checker


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_a_circle_closed_inside_a_function(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "soak/__init__.py": "",
            "soak/runner.py": "from . import report\n",
            "soak/report.py": "def write():\n    from .runner import MIB\n",
            "soak/procs.py": "import soak.report\n",
        },
    )
    (found,) = cycles(import_graph(tmp_path, "soak"))
    assert found == ["soak.report line 2 → soak.runner", "soak.runner line 1 → soak.report"]


def test_checker_finds_upward_and_sideways_imports(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "unitserve/__init__.py": "from unitserve.errors import Oops\n",
            "unitserve/errors.py": "class Oops(Exception): ...\n",
            "unitserve/engine.py": (
                "from unitserve import errors\n"
                "def go():\n"
                "    from unitserve.transport.rest import app\n"
            ),
            "unitserve/metrics/worker.py": "from unitserve.engine import go\n",
            "unitserve/protocol/codec.py": "from ..metrics import worker\n",
            "unitserve/transport/rest/app.py": "from unitserve.protocol import codec\n",
        },
    )
    assert [shown(e) for e in upward(import_graph(tmp_path, "unitserve"))] == [
        "unitserve.engine (core) line 3 imports unitserve.transport.rest.app (transport)",
        "unitserve.protocol.codec (protocol) line 1 imports unitserve.metrics.worker (metrics)",
    ]
