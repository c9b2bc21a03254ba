"""``unitserve`` command line: ``serve`` (the seldon-core-microservice replacement)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from . import logs
from .errors import StartupError
from .settings import SettingsError, add_serve_arguments, resolve
from .version import __version__

log = logging.getLogger("unitserve")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model class over REST and gRPC",
        description="Serve a Python class as a Seldon-protocol microservice (REST, gRPC, "
        "Prometheus metrics). Flags and environment variables are those of "
        "seldon-core-microservice, plus a few of ours.",
    )
    add_serve_arguments(p)
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    interface = args.interface_name or environ.get("MODEL_NAME")
    if not interface:
        print(
            "unitserve serve: error: no model class given (the INTERFACE argument, or "
            "MODEL_NAME in the environment)",
            file=sys.stderr,
        )
        return 2
    try:
        settings = resolve(args, environ, interface)
    except SettingsError as exc:
        print(f"unitserve serve: error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    log.info("unitserve %s", __version__)
    from . import supervisor

    try:
        return supervisor.run(settings)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        print(f"unitserve: error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unitserve",
        description="Turn a plain Python class into a production model microservice "
        "(a drop-in replacement for the Seldon Core 1.x Python wrapper).",
    )
    parser.add_argument("--version", action="version", version=f"unitserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
