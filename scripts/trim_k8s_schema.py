"""Cut the Kubernetes object schemas the manifest tests need out of a JSON Schema
rendering of the Kubernetes OpenAPI definitions.

The source is the ``_definitions.json`` of a "local-strict" folder of the Kubernetes
JSON schemas (generated from Kubernetes' own ``api/openapi-spec``; every object has
``additionalProperties: false``, so a misspelt field fails as it does with kubectl's
strict field validation). This keeps the definitions reachable from the kinds named,
without their ``description`` texts, with references made local to the output file.

    python scripts/trim_k8s_schema.py _definitions.json --source "TEXT" \\
        --kind io.k8s.api.apps.v1.Deployment --kind io.k8s.api.core.v1.Service -o OUT.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def reachable(definitions: dict[str, Any], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        stack: list[Any] = [definitions[name]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str):
                    todo.append(ref.rsplit("/", 1)[1])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return seen


def trimmed(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "description" or key.startswith("x-kubernetes-patch"):
                continue
            if key == "$ref" and isinstance(value, str):
                value = "#/$defs/" + value.rsplit("/", 1)[1]
            out[key] = trimmed(value)
        return out
    if isinstance(node, list):
        return [trimmed(v) for v in node]
    return node


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("definitions", type=Path)
    p.add_argument("--kind", action="append", required=True, help="a definition's full name")
    p.add_argument("--source", required=True, help="where the definitions came from")
    p.add_argument("-o", "--output", type=Path, required=True)
    args = p.parse_args()
    definitions = json.loads(args.definitions.read_text())["$defs"]
    keep = reachable(definitions, args.kind)
    document = {
        "source": args.source,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "kinds": args.kind,
        "$defs": {name: trimmed(definitions[name]) for name in sorted(keep)},
    }
    args.output.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


if __name__ == "__main__":
    main()
