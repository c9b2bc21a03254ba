"""Cut one version's OpenAPI schema out of a CustomResourceDefinition, for the tests.

The manifest tests validate what `unitserve manifest` writes against the schema the
cluster itself applies (SeldonDeployment, ServingRuntime, InferenceService). The
upstream CRD files are megabytes, mostly field descriptions, so this keeps only
what validation needs: the ``openAPIV3Schema`` of one version, without the
``description`` texts and, with ``--drop-status``, without the ``status`` subtree
(the controller writes it; a manifest never does), and with ``--stub`` a field we never
write keeps its name but loses its contents' schema (where the big repeated parts
of a CRD live: every framework's container spec, the pod spec of a worker). A JSON
Patch (``replace`` operations only) can be applied first, for CRDs that are patched at
install time.

    python scripts/trim_crd_schema.py CRD.yaml --version v1 \\
        --repository owner/name --path path/in/repo.yaml --commit SHA \\
        [--patch patch.yaml --patch-path path/of/patch.yaml] [--drop-status] \\
        [--stub spec.explainer ...] -o OUT.json

The output is JSON whose ``source`` entry names the repository, paths and commit
it came from and what was removed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

# Keywords whose value is one schema, a list of schemas, or a map of name → schema.
_ONE = ("items", "additionalProperties", "not")
_MANY = ("allOf", "anyOf", "oneOf")
_MAP = ("properties",)


def strip_descriptions(schema: Any) -> Any:
    """The schema without ``description`` keywords; a property that happens to be
    called "description" is a name in a ``properties`` map, and stays."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description":
            continue
        if key in _ONE and isinstance(value, dict):
            out[key] = strip_descriptions(value)
        elif key in _MANY:
            out[key] = [strip_descriptions(v) for v in value]
        elif key in _MAP:
            out[key] = {name: strip_descriptions(v) for name, v in value.items()}
        else:
            out[key] = value
    return out


def stub(schema: dict[str, Any], dotted: str) -> None:
    """Replace the schema of the field at `dotted` (``spec.predictor.sklearn``) by
    "any object": the field name stays known, its contents are no longer checked."""
    *parents, last = dotted.split(".")
    node = schema
    for part in parents:
        node = node["properties"][part]
    if last not in node["properties"]:
        raise SystemExit(f"--stub {dotted}: no such field")
    node["properties"][last] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def apply_replace_patch(document: Any, operations: list[dict[str, Any]]) -> None:
    """Apply JSON Patch ``replace`` operations in place (the only kind our sources use)."""
    for op in operations:
        if op.get("op") != "replace":
            raise SystemExit(f"unsupported JSON Patch operation: {op.get('op')!r}")
        *parents, last = (
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")
        )
        node = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = op["value"]
        else:
            if last not in node:
                raise SystemExit(f"JSON Patch replace of a missing member: {op['path']}")
            node[last] = op["value"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("crd", type=Path, help="the CustomResourceDefinition YAML file")
    parser.add_argument("--version", required=True, help="the CRD version to keep, e.g. v1")
    parser.add_argument("--repository", required=True, help="where the CRD comes from")
    parser.add_argument("--path", required=True, help="the CRD's path in that repository")
    parser.add_argument("--commit", required=True, help="the commit it was read at")
    parser.add_argument("--patch", type=Path, help="a JSON Patch (YAML) applied first")
    parser.add_argument("--patch-path", help="that patch's path in the repository")
    parser.add_argument("--drop-status", action="store_true", help="remove the status subtree")
    parser.add_argument(
        "--stub",
        action="append",
        default=[],
        metavar="FIELD",
        help="a dotted field path whose contents are not checked (repeatable)",
    )
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()

    crd = yaml.safe_load(args.crd.read_text(encoding="utf-8"))
    if args.patch:
        apply_replace_patch(crd, yaml.safe_load(args.patch.read_text(encoding="utf-8")))
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == args.version]
    schema = strip_descriptions(version["schema"]["openAPIV3Schema"])
    removed = ["every 'description'"]
    if args.drop_status:
        del schema["properties"]["status"]
        removed.append("the 'status' subtree")
    for field in args.stub:
        stub(schema, field)
    if args.stub:
        removed.append("the contents of " + ", ".join(args.stub) + " (any object)")
    source: dict[str, Any] = {
        "repository": args.repository,
        "path": args.path,
        "commit": args.commit,
    }
    if args.patch:
        source["patch"] = args.patch_path or str(args.patch)
    source["removed"] = removed
    source["by"] = "scripts/trim_crd_schema.py"
    out = {
        "source": source,
        "group": crd["spec"]["group"],
        "version": args.version,
        "kind": crd["spec"]["names"]["kind"],
        "openAPIV3Schema": schema,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
