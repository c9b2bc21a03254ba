"""``unitserve`` command line: ``serve`` (the seldon-core-microservice replacement)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from unitserve.cli import batch, build, graph, init, manifest, s2i, tester
from unitserve.errors import StartupError
from unitserve.runtime import logs
from unitserve.settings import SettingsError, add_serve_arguments, resolve
from unitserve.version import __version__

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
    interface, s2i_origin = args.interface_name, ""
    try:
        if not interface:  # s2i-style start: MODEL_NAME etc. from env or .s2i/environment
            interface, s2i_origin = s2i.apply_start(args, environ, Path.cwd())
        if not interface:
            raise SettingsError(
                "no model class given (the INTERFACE argument, or MODEL_NAME in the "
                "environment or in .s2i/environment)"
            )
        settings = resolve(args, environ, interface)
    except SettingsError as exc:
        print(f"unitserve serve: error: {exc}", file=sys.stderr)
        return exc.exit_status
    logs.configure(settings.log_level, settings.log_format)
    log.info("unitserve %s", __version__)
    if s2i_origin:
        log.info("s2i start: %s", s2i_origin)
    from unitserve.runtime import supervisor

    try:
        return supervisor.run(settings)
    except StartupError as exc:
        print(f"unitserve: error: {exc}", file=sys.stderr)
        return 1


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line: the full usage is one `--help` away. Sub-command
    parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="unitserve",
        description="Turn a plain Python class into a production model microservice "
        "(a drop-in replacement for the Seldon Core 1.x Python wrapper).",
    )
    parser.add_argument("--version", action="version", version=f"unitserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _serve_parser(sub)
    for module in (graph, init, build, manifest, tester, batch):
        module.add_parser(sub)
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
