"""`unitserve init NAME --type TYPE`: a starter component that `unitserve serve` runs as is;
`unitserve init NAME --graph`: a starter graph that `unitserve graph` runs as is.

The folder holds the class file (module name = class name, as the s2i
convention needs), ``requirements.txt``, ``.s2i/environment`` (so a bare
`unitserve serve`, `unitserve build` and `unitserve manifest` know the class
and its graph node type), a test that calls the class the way unitserve does,
a README and a ``.dockerignore``. A graph's folder holds ``graph.yaml`` (a
SeldonDeployment: output transformer → input transformer → model) and one such
component folder per node, named after the node, as `unitserve graph` finds them.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from unitserve.cli.build import DOCKERIGNORE

INIT_TYPES = ("MODEL", "TRANSFORMER", "OUTPUT_TRANSFORMER", "ROUTER", "COMBINER")

# One method per graph node type: what the class implements and what its test calls.
_METHODS = {
    "MODEL": """
    def load(self):
        # Called once in each worker before it answers /ready: load weights here
        # (from files next to this one), not in __init__.
        self.model = None

    def predict(self, X, features_names, meta=None):
        # X: a numpy array for `data` payloads (str for strData, bytes for binData,
        # dict or list for jsonData). Return an array, a list, str, bytes or dict.
        return X  # replace this echo with your model's answer
""",
    "TRANSFORMER": """
    def transform_input(self, X, features_names, meta=None):
        # Runs before the next node of the graph: return the features it should get.
        return X
""",
    "OUTPUT_TRANSFORMER": """
    def transform_output(self, X, features_names, meta=None):
        # Runs on the answer of the node below this one: return what the caller gets.
        return X
""",
    "ROUTER": """
    def route(self, features, feature_names):
        # Return the index of the child node that should answer this request.
        return 0

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        # `routing` is the child this router chose for the request being rewarded.
        return []
""",
    "COMBINER": """
    def aggregate(self, features_list, feature_names_list):
        # One answer per child node, in order: return their combination.
        return np.mean([np.asarray(x, dtype=float) for x in features_list], axis=0)
""",
}

_TEST_CALLS = {
    "MODEL": '    model.load()\n    out = model.predict(X, ["a", "b"])\n'
    "    assert np.array_equal(out, X)\n",
    "TRANSFORMER": '    out = model.transform_input(X, ["a", "b"])\n'
    "    assert np.array_equal(out, X)\n",
    "OUTPUT_TRANSFORMER": '    out = model.transform_output(X, ["a", "b"])\n'
    "    assert np.array_equal(out, X)\n",
    "ROUTER": '    child = model.route(X, ["a", "b"])\n'
    "    assert isinstance(child, int) and child >= 0\n",
    "COMBINER": '    out = model.aggregate([X, X + 2], [["a", "b"], ["a", "b"]])\n'
    "    assert np.array_equal(out, X + 1)\n",
}

_REQUESTS = {
    "MODEL": ("/api/v1.0/predictions", '{"data": {"ndarray": [[1.0, 2.0]]}}'),
    "TRANSFORMER": ("/transform-input", '{"data": {"ndarray": [[1.0, 2.0]]}}'),
    "OUTPUT_TRANSFORMER": ("/transform-output", '{"data": {"ndarray": [[1.0, 2.0]]}}'),
    "ROUTER": ("/route", '{"data": {"ndarray": [[1.0, 2.0]]}}'),
    "COMBINER": (
        "/aggregate",
        '[{"data": {"ndarray": [[1.0, 2.0]]}}, {"data": {"ndarray": [[3.0, 4.0]]}}]',
    ),
}


class ScaffoldError(Exception):
    """A reason not to write the starter (one line, exit status 1)."""


@dataclass(frozen=True)
class Starter:
    directory: Path
    class_name: str
    service_type: str

    def files(self) -> dict[str, str]:
        name, kind = self.class_name, self.service_type
        path, body = _REQUESTS[kind]
        return {
            f"{name}.py": _class_file(name, kind),
            "requirements.txt": "# The component's own dependencies, one per line (numpy comes "
            "with unitserve,\n# which `unitserve build` installs separately).\n",
            ".s2i/environment": f"MODEL_NAME={name}\nSERVICE_TYPE={kind}\nPERSISTENCE=0\n",
            _test_name(name): _test_file(name, kind),
            "README.md": _readme(name, kind, self.directory.name, path, body),
            ".dockerignore": DOCKERIGNORE,
        }

    def write(self) -> list[Path]:
        if self.directory.exists() and any(self.directory.iterdir()):
            raise ScaffoldError(f"{self.directory} already exists and is not empty")
        written = []
        for relative, text in self.files().items():
            target = self.directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(target)
        return written


# The starter graph: (node name, class name, node type), parents first; each node the
# only child of the one before it.
GRAPH_NODES = (
    ("output", "OutputTransformer", "OUTPUT_TRANSFORMER"),
    ("input", "InputTransformer", "TRANSFORMER"),
    ("model", "Model", "MODEL"),
)
GRAPH_FILE = "graph.yaml"


@dataclass(frozen=True)
class GraphStarter:
    directory: Path

    def graph_yaml(self) -> str:
        name = re.sub(r"[^a-z0-9-]+", "-", self.directory.resolve().name.lower()).strip("-")
        graph: dict[str, Any] = {}
        below = graph
        for i, (node, _, kind) in enumerate(GRAPH_NODES):
            below.update({"name": node, "type": kind})
            if i < len(GRAPH_NODES) - 1:
                child: dict[str, Any] = {}
                below["children"] = [child]
                below = child
        sdep = {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": name or "graph"},
            "spec": {"predictors": [{"name": "default", "graph": graph}]},
        }
        header = (
            "# A SeldonDeployment whose graph `unitserve graph graph.yaml` serves on this\n"
            "# machine; each node's class is in the folder of the node's name. A request goes\n"
            "# down through the output transformer to the input transformer, whose answer the\n"
            "# model gets; the model's answer comes back through the output transformer.\n"
            "# The same file deploys to Seldon Core: `unitserve manifest graph.yaml\n"
            "# --image NODE=IMAGE ...` adds the containers.\n"
        )
        return header + yaml.safe_dump(sdep, sort_keys=False)

    def readme(self) -> str:
        folder = self.directory.name
        images = " ".join(f"--image {n}={folder.lower()}-{n}:0.1" for n, _, _ in GRAPH_NODES)
        tests = " && ".join(f"python {n}/{_test_name(c)}" for n, c, _ in GRAPH_NODES)
        return f"""# {folder}

A unitserve inference graph: output transformer → input transformer → model, each node a
component in the folder of its name (`unitserve init` starters: replace their echoes).

```console
$ cd {folder}
$ unitserve graph graph.yaml   # REST 9000, gRPC 5000, metrics 6000
$ curl -s localhost:9000/api/v1.0/predictions -H 'Content-Type: application/json' \\
       -d '{{"data": {{"ndarray": [[1.0, 2.0]]}}}}'
$ {tests}   # each class on its own
$ for n in output input model; do unitserve build $n; done   # a Dockerfile per node
$ unitserve manifest graph.yaml {images}
```
"""

    def write(self) -> list[Path]:
        if self.directory.exists() and any(self.directory.iterdir()):
            raise ScaffoldError(f"{self.directory} already exists and is not empty")
        written = []
        for node, class_name, kind in GRAPH_NODES:
            written += Starter(self.directory / node, class_name, kind).write()
        for relative, text in ((GRAPH_FILE, self.graph_yaml()), ("README.md", self.readme())):
            target = self.directory / relative
            target.write_text(text, encoding="utf-8")
            written.append(target)
        return written


def class_name_for(name: str) -> str:
    """``my-model`` / ``my_model`` → ``MyModel``; an existing CamelCase name is kept."""
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", name) if p]
    camel = "".join(p[:1].upper() + p[1:] for p in parts)
    if not camel.isidentifier() or keyword.iskeyword(camel):
        raise ScaffoldError(
            f"cannot make a Python class name from {name!r}: start it with a letter "
            "(or give one with --class-name)"
        )
    return camel


def _class_file(name: str, kind: str) -> str:
    numpy = "import numpy as np\n\n\n" if kind == "COMBINER" else "\n"
    return (
        f'"""{name}: a unitserve component of type {kind}.\n\n'
        "In this folder, `unitserve serve` serves it on REST port 9000, gRPC port 5000\n"
        'and Prometheus metrics port 6000."""\n\n'
        f"{numpy}"
        f"class {name}:\n"
        "    def __init__(self):\n"
        "        # Constructor arguments come from --parameters (PREDICTIVE_UNIT_PARAMETERS).\n"
        "        pass\n"
        f"{_METHODS[kind]}"
    )


def _test_name(name: str) -> str:
    return f"test_{name.lower()}.py"


def _test_file(name: str, kind: str) -> str:
    return (
        f'"""Calls {name} the way unitserve does. Run: python {_test_name(name)}\n'
        '(or python -m pytest, where pytest is installed)."""\n\n'
        "import numpy as np\n"
        f"from {name} import {name}\n\n\n"
        f"def test_{kind.lower()}_answers():\n"
        f"    model = {name}()\n"
        "    X = np.array([[1.0, 2.0]])\n"
        f"{_TEST_CALLS[kind]}\n\n"
        'if __name__ == "__main__":\n'
        f"    test_{kind.lower()}_answers()\n"
        '    print("ok")\n'
    )


def _readme(name: str, kind: str, folder: str, path: str, body: str) -> str:
    return f"""# {name}

A unitserve {kind} component.

```console
$ cd {folder}
$ unitserve serve              # reads MODEL_NAME and SERVICE_TYPE from .s2i/environment
$ curl -s localhost:9000{path} -H 'Content-Type: application/json' \\
       -d '{body}'
$ python {_test_name(name)}       # the class on its own (or: python -m pytest)
$ unitserve build . --wheelhouse --image {folder.lower()}:0.1   # Dockerfile, wheels, image
$ unitserve manifest . --image {folder.lower()}:0.1   # writes a SeldonDeployment
```
"""


# ----------------------------------------------------------------------------- CLI


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init",
        help="write a starter component folder",
        description="Write a starter component in a new folder NAME: the class file, "
        "requirements.txt, .s2i/environment, a test and a README. `unitserve serve` "
        "in that folder serves it as is.",
    )
    p.add_argument("name", metavar="NAME", help="folder to create; the class name comes from it")
    p.add_argument(
        "--type",
        dest="service_type",
        metavar="TYPE",
        default="MODEL",
        type=str.upper,
        choices=INIT_TYPES,
        help=f"graph node type of the component: {', '.join(INIT_TYPES)} (default: %(default)s)",
    )
    p.add_argument(
        "--graph",
        action="store_true",
        help="write a starter graph instead: NAME/graph.yaml (output transformer → input "
        "transformer → model) and a component folder per node; `unitserve graph "
        "graph.yaml` in NAME serves it as is",
    )
    p.add_argument(
        "--class-name",
        metavar="CLASS",
        default=None,
        help="Python class (and module) name (default: NAME in CamelCase, my-model → MyModel)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    directory = Path(args.name)
    if args.graph:
        return _run_graph(args, directory)
    try:
        class_name = args.class_name or class_name_for(directory.resolve().name)
        if not class_name.isidentifier() or keyword.iskeyword(class_name):
            raise ScaffoldError(f"--class-name {class_name!r} is not a Python identifier")
        written = Starter(directory, class_name, args.service_type).write()
    except (ScaffoldError, OSError) as exc:
        print(f"unitserve init: error: {exc}", file=sys.stderr)
        return 1
    print(f"created {args.service_type} component {class_name} in {directory}/:")
    for path in written:
        print(f"  {path.relative_to(directory)}")
    print(f"next: cd {directory} && unitserve serve")
    return 0


def _run_graph(args: argparse.Namespace, directory: Path) -> int:
    try:
        if args.class_name or args.service_type != "MODEL":
            raise ScaffoldError("--type and --class-name are for one component, not --graph")
        written = GraphStarter(directory).write()
    except (ScaffoldError, OSError) as exc:
        print(f"unitserve init: error: {exc}", file=sys.stderr)
        return 1
    print(f"created a graph in {directory}/:")
    for path in written:
        print(f"  {path.relative_to(directory)}")
    print(f"next: cd {directory} && unitserve graph {GRAPH_FILE}")
    return 0
