"""`unitserve build DIR`: a Dockerfile, and the wheels it installs, that package a
component folder as an image; with ``--image`` the image itself (`engines`).

The image follows Seldon's s2i layout (code in ``/microservice``, the
``.s2i/environment`` variables in the image's environment, ports 9000/5000/6000)
so that a SeldonDeployment written for an s2i image works unchanged, and
starts with a bare ``unitserve serve``, which reads those variables.

unitserve is on no package index: the build context gets a wheel of the running
unitserve (``.unitserve/``), and with ``--wheelhouse`` every other wheel the image
needs, so that it builds with no network at all. The Dockerfile installs into a
virtual environment, which works on ``python:3.x-slim`` and on Debian's own python3
(whose system interpreter refuses ``pip install``), in a stage of its own: the image
gets the environment, not the wheels nor pip. A second stage takes the code without
the wheels. In the image, layers go from the least to the most often changed — the
environment, then the code — so that editing the model rebuilds only the last layer.
The container runs as a numeric non-root user, which Kubernetes' ``runAsNonRoot`` can
verify (it cannot check a user name); the code stays owned by root.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from unitserve.cli import engines, prepackaged, s2i
from unitserve.cli.generated import MARKER, PackagingError, check_replaceable, write_generated
from unitserve.settings import SERVICE_TYPES, SettingsError
from unitserve.version import __version__

__all__ = ["MARKER", "PackagingError", "write_generated"]  # also used by `manifest`

DEFAULT_BASE_IMAGE = "python:3.11-slim"
APP_DIR = "/microservice"
VENV_DIR = "/opt/unitserve"
USER_ID = 1000
PORTS = (9000, 5000, 6000)  # REST, gRPC, metrics: unitserve's and Seldon's defaults
# `unitserve start`'s: MLServer's ports, the models where Core 2 mounts them, and the
# prepackaged servers for MLServer's runtime names.
SERVER_PORTS = (8080, 8081, 8082)
SERVER_MODELS_DIR = "/mnt/models"
SERVER_EXTRAS = ("lightgbm", "sklearn", "xgboost")
WHEELS_DIR = ".unitserve"  # in the context: unitserve's wheel, and the wheelhouse folder
WHEELHOUSE = "wheelhouse"
DOCKERIGNORE = ".git\n.venv\n__pycache__\n*.pyc\n.pytest_cache\n"


@dataclass(frozen=True)
class Component:
    """What a component folder says about itself, mostly from ``.s2i/environment``."""

    directory: Path
    model_name: str
    service_type: str
    environment: dict[str, str] = field(default_factory=dict)  # every variable, in file order
    has_requirements: bool = False
    command: str = "serve"  # `unitserve serve`, or `start` for a repository server

    @classmethod
    def read(
        cls, directory: Path, model_name: str | None = None, service_type: str | None = None
    ) -> Component:
        if not directory.is_dir():
            raise PackagingError(f"{directory} is not a directory")
        try:
            env = s2i.read_environment_file(directory / s2i.ENV_FILE)
            name = model_name or env.get("MODEL_NAME")
            kind = s2i.check_service_type(
                service_type or env.get("SERVICE_TYPE") or "MODEL",
                "--type" if service_type else str(s2i.ENV_FILE),
            )
            if "PERSISTENCE" in env:
                s2i.check_persistence(env["PERSISTENCE"], str(s2i.ENV_FILE))
        except SettingsError as exc:
            raise PackagingError(str(exc)) from None
        if not name:
            raise PackagingError(
                f"no MODEL_NAME in {directory / s2i.ENV_FILE}: run `unitserve init` or give "
                "--model-name"
            )
        check_class(directory, name)
        env = {"MODEL_NAME": name, "SERVICE_TYPE": kind, "PERSISTENCE": "0"} | {
            k: v for k, v in env.items() if k not in ("MODEL_NAME", "SERVICE_TYPE")
        }
        return cls(directory, name, kind, env, (directory / "requirements.txt").is_file())


def _names_bound(tree: ast.Module) -> set[str] | None:
    """The names a module binds at its top level; None if it cannot be told without
    running it (``from x import *``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def check_class(directory: Path, name: str) -> None:
    """Refuse a MODEL_NAME whose module file is missing or does not define the class,
    read without importing it (its imports may not be installed here)."""
    module, _, class_name = name.rpartition(".")
    if not module:
        module = class_name = name
    path = directory / f"{module.replace('.', '/')}.py"
    if not path.is_file():
        path = directory / module.replace(".", "/") / "__init__.py"
    if not path.is_file():
        raise PackagingError(f"model class {name}: no {module.replace('.', '/')}.py in {directory}")
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except SyntaxError as exc:
        raise PackagingError(f"model class {name}: {path} line {exc.lineno}: {exc.msg}") from None
    bound = _names_bound(tree)
    if bound is not None and class_name not in bound:
        raise PackagingError(f"model class {name}: {path} defines no {class_name}")


def _quote(value: str) -> str:
    """A Dockerfile ENV value: double-quoted, with the characters Docker would
    interpret (``\\``, ``"``, ``$``) escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _pip_install(what: str, wheelhouse: bool) -> str:
    """The pip command of the install stage: only the context's wheels with
    ``--wheelhouse`` (no network needed), else the index for what they lack."""
    where = f"--find-links /tmp/wheels --find-links /tmp/wheels/{WHEELHOUSE}"
    index = " --no-index" if wheelhouse else ""
    pip = f"{VENV_DIR}/bin/pip install --no-cache-dir --disable-pip-version-check{index}"
    return f"RUN {pip} \\\n    {where} {what}"


def dockerfile(
    component: Component,
    base_image: str = DEFAULT_BASE_IMAGE,
    extras: tuple[str, ...] = (),
    wheelhouse: bool = False,
) -> str:
    """The Dockerfile text for `component` (without the hash `write_generated` adds)."""
    unitserve = f"unitserve[{','.join(extras)}]" if extras else "unitserve"
    lines = [
        f"{MARKER}build` {__version__} for {component.model_name} ({component.service_type})",
        "# Build: docker build -t IMAGE:TAG .    Run: docker run -p 9000:9000 IMAGE:TAG",
        "# Edit it as you like: `unitserve build` then leaves it alone (unless --force).",
        "",
        "# 1. A virtual environment with unitserve and the model's requirements, from the",
        f"#    wheels in {WHEELS_DIR}/. Only the environment goes into the image (no wheels,",
        "#    no pip).",
        f"FROM {base_image} AS install",
        f"RUN python3 -m venv {VENV_DIR}",
        f"COPY {WHEELS_DIR}/ /tmp/wheels/",
        _pip_install(_quote(f"{unitserve}=={__version__}"), wheelhouse),
    ]
    if component.has_requirements:
        lines += [
            "COPY requirements.txt /tmp/",
            _pip_install("-r /tmp/requirements.txt", wheelhouse),
        ]
    lines += [
        f"RUN {VENV_DIR}/bin/python -m pip uninstall --yes --quiet pip",
        "",
        "# 2. The code without the wheels, readable by every user.",
        f"FROM {base_image} AS code",
        f"COPY . {APP_DIR}/",
        f"RUN rm -rf {APP_DIR}/{WHEELS_DIR} && chmod -R a+rX,go-w {APP_DIR}",
        "",
        "# 3. The image: least often changed first, the code last.",
        f"FROM {base_image}",
        "ENV PYTHONUNBUFFERED=1 \\",
        "    PYTHONDONTWRITEBYTECODE=1 \\",
        f"    VIRTUAL_ENV={VENV_DIR} \\",
        f'    PATH="{VENV_DIR}/bin:$PATH"',
        "# A numeric user, so that Kubernetes' runAsNonRoot can verify it is not root.",
        f"RUN useradd --uid {USER_ID} --user-group --create-home --shell /usr/sbin/nologin "
        "unitserve",
        f"COPY --from=install {VENV_DIR} {VENV_DIR}",
        f"WORKDIR {APP_DIR}",
        "# The s2i variables: `unitserve serve` reads MODEL_NAME, SERVICE_TYPE, PERSISTENCE."
        if component.command == "serve"
        else "# MLServer's variables: `unitserve start` reads MLSERVER_MODELS_DIR and the rest.",
    ]
    pairs = [f"{key}={_quote(value)}" for key, value in component.environment.items()]
    lines.append("ENV " + " \\\n    ".join(pairs))
    lines += [
        f"USER {USER_ID}",
        "# REST, gRPC and Prometheus metrics.",
        "EXPOSE "
        + " ".join(str(p) for p in (PORTS if component.command == "serve" else SERVER_PORTS)),
        "# Exec form: unitserve is PID 1 and gets SIGTERM to drain in-flight requests.",
        f'CMD ["unitserve", "{component.command}"]',
        "# The code, last, so that changing it rebuilds only this layer. It stays owned by",
        "# root (COPY does not follow USER): the server only reads it.",
        f"COPY --from=code {APP_DIR}/ ./",
    ]
    return "\n".join(lines) + "\n"


def _component_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", metavar="DIR", type=Path, help="the component folder")
    p.add_argument(
        "--model-name",
        metavar="CLASS",
        default=None,
        help="the class to serve (default: MODEL_NAME from DIR/.s2i/environment)",
    )
    p.add_argument(
        "--type",
        dest="service_type",
        metavar="TYPE",
        default=None,
        type=str.upper,
        choices=SERVICE_TYPES,
        help=f"graph node type: {', '.join(SERVICE_TYPES)} (default: SERVICE_TYPE from "
        "DIR/.s2i/environment, else MODEL)",
    )
    p.add_argument("--print", action="store_true", help="print to standard output, write nothing")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a file that unitserve did not write, or that was edited since",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "build",
        help="write a Dockerfile for a component folder, and build its image",
        description="Write DIR/Dockerfile (and DIR/.dockerignore if missing) and put a "
        f"wheel of this unitserve in DIR/{WHEELS_DIR}/; the Dockerfile installs it and "
        "DIR/requirements.txt into a virtual environment, copies DIR and starts `unitserve "
        "serve` as the non-root user 1000, with the .s2i/environment variables and ports "
        "9000, 5000, 6000. Build it with `docker build -t IMAGE DIR`, or give --image to "
        "build it here. A Dockerfile you wrote or edited is left alone (--force replaces it).",
    )
    _component_arguments(p)
    p.add_argument(
        "--base-image",
        metavar="IMAGE",
        default=DEFAULT_BASE_IMAGE,
        help="the image to build on, with Python 3.11+ and its venv module (python3 -m "
        "venv), e.g. python:3.12-slim or a Debian image with python3-venv (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--implementation",
        metavar="NAME",
        default=None,
        help="a prepackaged server (SKLEARN_SERVER, XGBOOST_SERVER, LIGHTGBM_SERVER, "
        "MLFLOW_SERVER) instead of a class in DIR: the image installs unitserve with the "
        "server's extra and serves it; the model comes at run time from the model_uri "
        "parameter (the operator's modelUri)",
    )
    p.add_argument(
        "--server",
        action="store_true",
        help="a model repository server instead of a class in DIR: the image runs "
        "`unitserve start` on MLServer's ports 8080, 8081, 8082 with the models of "
        f"MLSERVER_MODELS_DIR (default {SERVER_MODELS_DIR}), as a Seldon Core 2 Server; it "
        "installs the prepackaged servers' extras",
    )
    p.add_argument(
        "--extras",
        metavar="NAME,...",
        default="",
        help="unitserve extras to install in the image, e.g. tracing",
    )
    p.add_argument(
        "--wheelhouse",
        action="store_true",
        help=f"also put every wheel the image needs in DIR/{WHEELS_DIR}/{WHEELHOUSE}/ "
        "(unitserve's dependencies, the extras', requirements.txt's), so that the image "
        "builds with no network at all",
    )
    p.add_argument(
        "--python-version",
        metavar="X.Y",
        default=None,
        help="the image's Python, for --wheelhouse (default: from a python:X.Y base image "
        "tag, else this interpreter's)",
    )
    p.add_argument(
        "--image",
        metavar="NAME:TAG",
        default=None,
        help="also build the image, with the first of "
        f"{', '.join(engines.ENGINES)} found (or --engine)",
    )
    p.add_argument(
        "--engine",
        choices=engines.ENGINES,
        default=None,
        help="the container engine that builds --image (default: the first found)",
    )
    p.add_argument(
        "--network",
        metavar="MODE",
        default=None,
        help="the engine's network for the build, e.g. none (with --wheelhouse) or host",
    )
    p.set_defaults(func=run_build)


def _extras(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise PackagingError(f"--extras: {name!r} is not an extra's name")
    return names


def _write_context(
    args: argparse.Namespace, component: Component, text: str, extras: tuple[str, ...]
) -> Path:
    """The wheels, then the Dockerfile and .dockerignore, into DIR; a requirement with
    no wheel stops this before anything is written."""
    # Imported here: `unitserve serve` loads this module, and needs none of it.
    from unitserve.cli import wheels

    directory: Path = args.directory
    target = directory / "Dockerfile"
    wheel_dir = directory / WHEELS_DIR
    with_wheelhouse = args.wheelhouse
    check_replaceable(target, args.force)  # before minutes of downloads, not after
    if with_wheelhouse:
        version = wheels.python_version(args.python_version, args.base_image)
        staging = directory / f"{WHEELS_DIR}.new"
        try:
            built = wheels.own_wheel(staging)
            requirements = directory / "requirements.txt" if component.has_requirements else None
            found = wheels.download_wheelhouse(
                staging / WHEELHOUSE, built, list(extras), requirements, version
            )
        except BaseException:
            _remove(staging)
            raise
        print(f"{len(found)} wheels for Python {version} in {wheel_dir / WHEELHOUSE}")
    if with_wheelhouse:
        _remove(wheel_dir)
        staging.replace(wheel_dir)
    else:
        wheels.own_wheel(wheel_dir)
        _remove(wheel_dir / WHEELHOUSE)
    wheels.fix_times(wheel_dir)
    write_generated(target, text, args.force)
    ignore = directory / ".dockerignore"
    if not ignore.exists():
        ignore.write_text(DOCKERIGNORE, encoding="utf-8")
    return target


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)


def _prepackaged_component(args: argparse.Namespace) -> Component:
    """A prepackaged server's image: DIR holds no class, only what else the image needs
    (a requirements.txt, say); `unitserve serve NAME` serves the server."""
    name = prepackaged.check(args.implementation)
    if args.model_name:
        raise PackagingError("--model-name and --implementation: give one of them")
    if not args.directory.is_dir():
        raise PackagingError(f"{args.directory} is not a directory")
    env = {"MODEL_NAME": name, "SERVICE_TYPE": "MODEL", "PERSISTENCE": "0"}
    has_requirements = (args.directory / "requirements.txt").is_file()
    return Component(args.directory, name, "MODEL", env, has_requirements)


def _server_component(args: argparse.Namespace) -> Component:
    """A repository server's image (`unitserve start`): no model inside, the models come
    at run time in MLSERVER_MODELS_DIR; DIR holds what else the image needs."""
    if args.implementation or args.model_name:
        raise PackagingError(
            "--server serves the models it is given: no --implementation or --model-name"
        )
    if not args.directory.is_dir():
        raise PackagingError(f"{args.directory} is not a directory")
    env = {"MLSERVER_MODELS_DIR": SERVER_MODELS_DIR}
    has_requirements = (args.directory / "requirements.txt").is_file()
    return Component(args.directory, "a model repository", "MODEL", env, has_requirements, "start")


def run_build(args: argparse.Namespace) -> int:
    try:
        if args.server:
            component = _server_component(args)
            extras = tuple(sorted({*_extras(args.extras), *SERVER_EXTRAS}))
        elif args.implementation:
            component = _prepackaged_component(args)
            extras = (*_extras(args.extras), prepackaged.EXTRAS[component.model_name])
        else:
            component = Component.read(args.directory, args.model_name, args.service_type)
            extras = _extras(args.extras)
        text = dockerfile(component, args.base_image, extras, args.wheelhouse)
        if args.print:
            sys.stdout.write(text)
            return 0
        if args.image:
            engines.check_image_name(args.image)
            engine = engines.find(args.engine)
        target = _write_context(args, component, text, extras)
        print(f"wrote {target}")
        if args.image:
            engines.build(engine, args.directory, args.image, args.network)
            print(f"built {args.image}; run it with: {engine} run -p 9000:9000 {args.image}")
        else:
            print(f"build it with: docker build -t IMAGE:TAG {args.directory}")
    except (PackagingError, prepackaged.PrepackagedError, engines.EngineError, OSError) as exc:
        print(f"unitserve build: error: {exc}", file=sys.stderr)
        return 1
    return 0
