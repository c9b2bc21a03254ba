#!/usr/bin/env python3
"""Generate unitserve's protobuf and gRPC modules from the .proto files.

Runs grpcio-tools' protoc on every ``src/unitserve/proto/**/*.proto`` (import
root ``src``, so modules import as ``unitserve.proto...``), writing
``*_pb2.py`` and ``*_pb2.pyi`` next to each .proto and ``*_pb2_grpc.py`` next to
each .proto that declares a service. The output is then post-processed,
deterministically, so that the committed modules:

* build their descriptors in unitserve's private pool
  (``unitserve.proto._pool.POOL``), never in protobuf's default pool, so that
  seldon-core or TensorFlow may be imported beside unitserve;
* take the well-known types (any, empty, struct) from that pool too;
* carry no protobuf runtime-version check and no grpcio version check, and use
  the two newer grpcio features through ``unitserve.proto._compat``, so they
  import with every protobuf >= 5.26 and grpcio >= 1.62;
* look the same whatever grpcio-tools generated them, within the versions
  this script knows (cosmetic differences are normalised).

Every rewrite asserts how often it applies: a protoc whose output no longer
matches fails loudly here instead of producing modules that use the default
pool.

Usage::

    python scripts/gen_proto.py            # regenerate in place
    python scripts/gen_proto.py --check    # exit 1 if the committed modules are stale
    python scripts/gen_proto.py --out DIR  # write the tree under DIR instead of src/
"""

from __future__ import annotations

import argparse
import ast
import difflib
import filecmp
import importlib.metadata
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

#: The grpcio-tools release the committed modules were generated with. Keep in
#: step with the test extra in pyproject.toml and with proto.mk.
GRPCIO_TOOLS_VERSION = "1.85.1"
#: The oldest grpcio-tools whose output this script normalises to the same
#: modules (1.66 to 1.85 were checked; older ones lack the version checks and
#: registered-method calls that the post-processing expects).
MIN_GRPCIO_TOOLS = (1, 66)

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
PACKAGE = "unitserve/proto"  # relative to the import root

#: Well-known-type modules the private pool provides (see unitserve/proto/_pool.py).
WELL_KNOWN = ("any_pb2", "empty_pb2", "struct_pb2")

GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


# --------------------------------------------------------------------------
# protoc
# --------------------------------------------------------------------------


def proto_files(src: Path = SRC) -> list[Path]:
    """All .proto files of the package, relative to the import root, sorted."""
    return sorted(p.relative_to(src) for p in (src / PACKAGE).rglob("*.proto"))


def has_service(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return re.search(r"^\s*service\s+\w+\s*\{", text, re.MULTILINE) is not None


def grpc_tools_version() -> str | None:
    try:
        return importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        return None


def grpc_tools_problem() -> str | None:
    """Why the installed grpcio-tools cannot generate the modules, or None if it can."""
    version = grpc_tools_version()
    if version is None:
        return f"grpcio-tools is not installed: pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}"
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None or (int(match.group(1)), int(match.group(2))) < MIN_GRPCIO_TOOLS:
        return (
            f"grpcio-tools {version} is too old for scripts/gen_proto.py: "
            f"pip install grpcio-tools=={GRPCIO_TOOLS_VERSION}"
        )
    return None


def run_protoc(src: Path, out: Path) -> None:
    """Run protoc into ``out`` (raw, not yet post-processed)."""
    problem = grpc_tools_problem()
    if problem is not None:
        raise SystemExit(problem)
    files = [str(p) for p in proto_files(src)]
    if not files:
        raise SystemExit(f"no .proto files under {src / PACKAGE}")
    base = [sys.executable, "-m", "grpc_tools.protoc", f"-I{src}"]
    _run([*base, f"--python_out={out}", f"--pyi_out={out}", *files], cwd=src)
    services = [f for f in files if has_service(src / f)]
    if services:
        _run([*base, f"--grpc_python_out={out}", *services], cwd=src)


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(
            f"protoc failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}{result.stderr}"
        )


# --------------------------------------------------------------------------
# post-processing
# --------------------------------------------------------------------------


class PostProcessError(RuntimeError):
    """protoc's output did not have the expected shape."""


def _sub(
    pattern: str,
    repl: str | Callable[[re.Match[str]], str],
    text: str,
    *,
    count: int | None = 1,
    what: str,
    flags: int = re.MULTILINE,
) -> str:
    """re.subn that insists on ``count`` matches (None: at least one)."""
    new, n = re.subn(pattern, repl, text, flags=flags)
    if (count is None and n == 0) or (count is not None and n != count):
        expected = "at least 1" if count is None else str(count)
        raise PostProcessError(f"{what}: expected {expected} match(es) of {pattern!r}, got {n}")
    return new


def _header(source: str) -> str:
    return (
        "# Generated by protoc (grpcio-tools), post-processed by scripts/gen_proto.py\n"
        "# (private descriptor pool, no protobuf/grpcio version checks).\n"
        f"# source: {source}\n"
        "# DO NOT EDIT: change the .proto file and run `make proto`.\n"
        "# ruff: noqa\n"
        "# fmt: off\n"
    )


def _well_known_import(match: re.Match[str]) -> str:
    module, alias = match.group(1), match.group(2)
    if module not in WELL_KNOWN:
        raise PostProcessError(
            f"google.protobuf.{module} is not in the private pool; "
            "add it to unitserve/proto/_pool.py and WELL_KNOWN in scripts/gen_proto.py"
        )
    return f"from unitserve.proto import _pool as {alias}"


def _rewrite_well_known_imports(text: str) -> str:
    """``from google.protobuf import X_pb2 as alias`` → the private pool module."""
    text = re.sub(
        r"^from google\.protobuf import (\w+_pb2) as (\w+)$",
        _well_known_import,
        text,
        flags=re.MULTILINE,
    )
    if re.search(r"^from google\.protobuf import \w+_pb2\b", text, re.MULTILINE):
        raise PostProcessError("an unexpected google.protobuf *_pb2 import is left")
    return text


def postprocess_pb2(text: str, source: str) -> str:
    """Rewrite a ``*_pb2.py`` module to use the private pool."""
    # Header: protoc's banner (incl. the version and "NO CHECKED-IN" lines) → ours.
    text = _sub(r"\A(?:#[^\n]*\n)+", _header(source), text, what="pb2 header", flags=0)
    # The runtime version check and its import.
    text = _sub(
        r"^from google\.protobuf import runtime_version as _runtime_version\n",
        "",
        text,
        what="pb2 runtime_version import",
    )
    text = _sub(
        r"^_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:[^\n]*\n)*?\)\n",
        "",
        text,
        what="pb2 runtime version check",
    )
    # The pool, and class building that keeps out of the default symbol database.
    text = _sub(
        r"^from google\.protobuf import descriptor_pool as _descriptor_pool\n",
        "from unitserve.proto import _pool\n",
        text,
        what="pb2 descriptor_pool import",
    )
    text = _sub(
        r"^from google\.protobuf import symbol_database as _symbol_database\n",
        "",
        text,
        what="pb2 symbol_database import",
    )
    text = _sub(r"^_sym_db = _symbol_database\.Default\(\)\n", "", text, what="pb2 _sym_db")
    text = _sub(
        r"^DESCRIPTOR = _descriptor_pool\.Default\(\)\.AddSerializedFile\(",
        "DESCRIPTOR = _pool.POOL.AddSerializedFile(",
        text,
        what="pb2 AddSerializedFile",
    )
    text = _sub(
        r"^_builder\.BuildTopDescriptorsAndMessages\(",
        "_pool.build_top_descriptors_and_messages(",
        text,
        what="pb2 BuildTopDescriptorsAndMessages",
    )
    # Well-known imports: their files are in the private pool already.
    text = _rewrite_well_known_imports(text)
    if any(word in text for word in ("_descriptor_pool", "_runtime_version", "_sym_db")):
        raise PostProcessError(f"{source}: default pool or version check left in the pb2 module")
    return text


def postprocess_pyi(text: str, source: str) -> str:
    """Prefix a ``*_pb2.pyi`` stub with our header; the types stay protobuf's."""
    return _header(source) + text


def postprocess_grpc(text: str, source: str) -> str:
    """Rewrite a ``*_pb2_grpc.py`` module: no version check, private pool, _compat."""
    text = _sub(r"\A(?:#[^\n]*\n)+", _header(source), text, what="grpc header", flags=0)
    text = _sub(
        r"^import grpc\n",
        "import grpc\n\nfrom unitserve.proto import _compat\n",
        text,
        what="grpc import",
    )
    text = _sub(r"^import warnings\n", "", text, count=None, what="grpc warnings import")
    # The GRPC_GENERATED_VERSION block runs up to the first top-level class.
    text = _sub(
        r"^GRPC_GENERATED_VERSION = .*?(?=^class )",
        "",
        text,
        what="grpc version check",
        flags=re.MULTILINE | re.DOTALL,
    )
    text = _rewrite_well_known_imports(text)
    text = _sub(
        r"_registered_method=True\)",
        "**_compat.REGISTERED_METHOD)",
        text,
        count=None,
        what="grpc _registered_method",
    )
    text = _sub(
        r"^(\s+)server\.add_registered_method_handlers\(",
        r"\1_compat.add_registered_method_handlers(server, ",
        text,
        count=None,
        what="grpc add_registered_method_handlers",
    )
    # Cosmetics that differ between grpcio-tools releases.
    text = re.sub(r"^class (\w+)\(object\):$", r"class \1:", text, flags=re.MULTILINE)
    if "GRPC_GENERATED_VERSION" in text or "_registered_method=True" in text:
        raise PostProcessError(f"{source}: version check left in the grpc module")
    return text


def postprocess(path: Path, source: str) -> str:
    text = path.read_text(encoding="utf-8")
    if path.name.endswith("_pb2_grpc.py"):
        return postprocess_grpc(text, source)
    if path.name.endswith("_pb2.pyi"):
        return postprocess_pyi(text, source)
    if path.name.endswith("_pb2.py"):
        return postprocess_pb2(text, source)
    raise PostProcessError(f"unexpected protoc output {path}")


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------


def generate(out_root: Path, src: Path = SRC) -> list[Path]:
    """Generate the post-processed modules under ``out_root`` (mirroring ``src``).

    Stale generated modules under ``out_root/unitserve/proto`` (for a .proto
    that no longer exists) are removed. Returns the written files, relative to
    ``out_root``, sorted.
    """
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="unitserve-proto-") as tmp:
        raw = Path(tmp)
        run_protoc(src, raw)
        for path in sorted(raw.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(raw)
            source = re.sub(r"_pb2(_grpc)?\.pyi?$", ".proto", rel.as_posix())
            target = out_root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(postprocess(path, source), encoding="utf-8", newline="\n")
            written.append(rel)
    keep = set(written)
    for path in sorted((out_root / PACKAGE).rglob("*")):
        rel = path.relative_to(out_root)
        if path.name.endswith(GENERATED_SUFFIXES) and rel not in keep:
            path.unlink()
    return sorted(written)


def generated_files(root: Path) -> list[Path]:
    """The generated modules currently under ``root/unitserve/proto``, relative to root."""
    return sorted(
        p.relative_to(root)
        for p in (root / PACKAGE).rglob("*")
        if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)
    )


def _serialized_descriptor(path: Path) -> bytes:
    match = re.search(r"AddSerializedFile\((b'.*?')\)\n", path.read_text(encoding="utf-8"))
    if match is None:
        raise PostProcessError(f"no serialized descriptor in {path}")
    return ast.literal_eval(match.group(1))


def _rpc_paths(path: Path) -> list[str]:
    return re.findall(r"'(/[\w.]+/\w+)'", path.read_text(encoding="utf-8"))


def diff_trees(expected_root: Path, actual_root: Path, *, exact: bool = True) -> list[str]:
    """Differences between two generated trees (empty: they match).

    ``exact``: compare the files byte for byte. Otherwise (output of another
    grpcio-tools release) compare what matters on the wire: the set of files,
    each module's serialized FileDescriptorProto and each gRPC module's RPC paths.
    """
    problems: list[str] = []
    expected, actual = set(generated_files(expected_root)), set(generated_files(actual_root))
    for rel in sorted(expected - actual):
        problems.append(f"missing: {rel}")
    for rel in sorted(actual - expected):
        problems.append(f"not generated from any .proto: {rel}")
    for rel in sorted(expected & actual):
        a, b = expected_root / rel, actual_root / rel
        if not exact:
            if rel.name.endswith("_pb2.py") and _serialized_descriptor(a) != _serialized_descriptor(
                b
            ):
                problems.append(f"differs: {rel} (descriptor)")
            elif rel.name.endswith("_pb2_grpc.py") and _rpc_paths(a) != _rpc_paths(b):
                problems.append(f"differs: {rel} (RPC paths)")
            continue
        if filecmp.cmp(a, b, shallow=False):
            continue
        diff = difflib.unified_diff(
            b.read_text(encoding="utf-8").splitlines(),
            a.read_text(encoding="utf-8").splitlines(),
            f"committed/{rel}",
            f"regenerated/{rel}",
            lineterm="",
            n=1,
        )
        lines = list(diff)
        shown = "\n".join(line[:200] for line in lines[:40])
        more = f"\n... ({len(lines) - 40} more diff lines)" if len(lines) > 40 else ""
        problems.append(f"differs: {rel}\n{shown}{more}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--check", action="store_true", help="fail if the committed modules are stale"
    )
    group.add_argument("--out", type=Path, help="write the generated tree under this directory")
    args = parser.parse_args(argv)

    problem = grpc_tools_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    version = grpc_tools_version()
    exact = version == GRPCIO_TOOLS_VERSION
    if not exact:
        print(
            f"warning: grpcio-tools {version} is installed, the committed modules come from "
            f"{GRPCIO_TOOLS_VERSION}: the .py modules should come out the same, the .pyi stubs "
            "may differ slightly; --check compares descriptors and RPC paths only.",
            file=sys.stderr,
        )

    if args.check:
        with tempfile.TemporaryDirectory(prefix="unitserve-proto-check-") as tmp:
            generate(Path(tmp))
            problems = diff_trees(Path(tmp), SRC, exact=exact)
        for problem in problems:
            print(problem)
        if problems:
            print("generated modules are stale: run `make proto`")
            return 1
        print("generated modules are up to date")
        return 0

    out = args.out if args.out is not None else SRC
    for rel in generate(out):
        print(out / rel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
