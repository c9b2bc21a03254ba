"""`unitserve build DIR`: write a build context into a component folder (the
Dockerfile, a wheel of unitserve and, with ``--wheelhouse``, every other wheel the image
needs) and, with ``--image``, build the image (`engines`).

What the folder serves is read by `component`, the Dockerfile's text is `dockerfile`'s,
the wheels are `wheels`'; this module holds the command line and writes the files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from unitserve.cli import engines, prepackaged
from unitserve.cli.component import Component
from unitserve.cli.dockerfile import (
    DEFAULT_BASE_IMAGE,
    PORTS,
    SERVER_MODELS_DIR,
    SERVER_PORTS,
    WHEELHOUSE,
    WHEELS_DIR,
    dockerfile,
)
from unitserve.cli.generated import PackagingError, check_replaceable, write_generated
from unitserve.settings import SERVICE_TYPES

# The runtimes a --server image carries by default: every prepackaged server, which is
# what the Server that `unitserve manifest --target seldon-core-2` writes advertises.
RUNTIMES = tuple(prepackaged.EXTRAS.values())
DOCKERIGNORE = ".git\n.venv\n__pycache__\n*.pyc\n.pytest_cache\n"


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
        "build it here. A Dockerfile you wrote or edited is left alone (--force replaces it). "
        "With --server the image is a model repository server instead: `unitserve start`, "
        "with no model inside, on ports 8080, 8081, 8082.",
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
        "installs the prepackaged servers of --runtimes",
    )
    p.add_argument(
        "--runtimes",
        metavar="NAME,...",
        default=None,
        help="with --server: the prepackaged servers the image carries for MLServer's "
        f"runtime names, among {', '.join(RUNTIMES)}, or none for Seldon classes only "
        "(default: all of them)",
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


def _runtimes(args: argparse.Namespace) -> tuple[str, ...]:
    """The extras of the prepackaged servers --runtimes names (all of them by default)."""
    if args.runtimes is None:
        return RUNTIMES
    names = tuple(n.strip() for n in args.runtimes.split(",") if n.strip())
    if names == ("none",):
        return ()
    unknown = [n for n in names if n not in RUNTIMES]
    if unknown or not names:
        raise PackagingError(
            f"--runtimes {args.runtimes!r}: give some of {', '.join(RUNTIMES)}, or none"
        )
    return names


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


def _check_no_class_given(args: argparse.Namespace) -> None:
    """--implementation and --server name no class of DIR's, nor each other."""
    if args.server and (args.implementation or args.model_name):
        raise PackagingError(
            "--server serves the models it is given: no --implementation or --model-name"
        )
    if args.implementation and args.model_name:
        raise PackagingError("--model-name and --implementation: give one of them")


def run_build(args: argparse.Namespace) -> int:
    try:
        _check_no_class_given(args)
        if args.server:
            component = Component.server(args.directory, SERVER_MODELS_DIR)
            extras = tuple(sorted({*_extras(args.extras), *_runtimes(args)}))
        elif args.runtimes is not None:
            raise PackagingError("--runtimes goes with --server (one server: --implementation)")
        elif args.implementation:
            name = prepackaged.check(args.implementation)
            component = Component.prepackaged(args.directory, name)
            extras = (*_extras(args.extras), prepackaged.EXTRAS[name])
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
            port = PORTS[0] if component.command == "serve" else SERVER_PORTS[0]
            print(f"built {args.image}; run it with: {engine} run -p {port}:{port} {args.image}")
        else:
            print(f"build it with: docker build -t IMAGE:TAG {args.directory}")
    except (PackagingError, prepackaged.PrepackagedError, engines.EngineError, OSError) as exc:
        print(f"unitserve build: error: {exc}", file=sys.stderr)
        return 1
    return 0
