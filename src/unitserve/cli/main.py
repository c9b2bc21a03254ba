"""``unitserve`` command line: ``serve`` (the seldon-core-microservice replacement)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from unitserve.version import __version__

log = logging.getLogger("unitserve")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    from unitserve.settings import add_serve_arguments

    p = sub.add_parser(
        "serve",
        help=_COMMANDS["serve"][1],
        description="Serve a Python class as a Seldon-protocol microservice (REST, gRPC, "
        "Prometheus metrics). Flags and environment variables are those of "
        "seldon-core-microservice, plus a few of ours.",
    )
    add_serve_arguments(p)
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    from unitserve.cli import s2i
    from unitserve.errors import StartupError
    from unitserve.runtime import logs
    from unitserve.settings import SettingsError, resolve

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


# Every command, in the order `unitserve --help` lists them, with the module that declares
# its flags (None: serve, declared here) and its one-line help. A command's module is
# imported only when that command runs (or its own --help is asked for), so that
# `unitserve fetch` does not load gRPC, YAML and the packaging tools before its first
# byte, nor `unitserve serve` the HTTP client the tools use, in every process it starts.
_COMMANDS: dict[str, tuple[str | None, str]] = {
    "serve": (None, "serve a model class over REST and gRPC"),
    "graph": (
        "unitserve.cli.graph",
        "serve a SeldonDeployment's inference graph on this machine",
    ),
    "start": (
        "unitserve.cli.start",
        "serve every model of a model repository (MLServer's format) by name",
    ),
    "init": ("unitserve.cli.init", "write a starter component folder"),
    "build": (
        "unitserve.cli.build",
        "write a Dockerfile for a component folder, and build its image",
    ),
    "manifest": (
        "unitserve.cli.manifest",
        "write Kubernetes manifests (Seldon Core, KServe or a plain Deployment) for a "
        "component folder",
    ),
    "test": (
        "unitserve.cli.tester",
        "send random requests shaped by a contract and check the answers",
    ),
    "batch": (
        "unitserve.cli.batch",
        "send every line of a file to a model and write the answers in order",
    ),
    "fetch": (
        "unitserve.cli.fetch",
        "download a model URI (s3://, gs://, Azure blob, http(s)://) and print its path",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; a command's own flags are declared when `command` names it (None:
    every command's, as the generated docs need)."""
    parser = _Parser(
        prog="unitserve",
        description="Turn a plain Python class into a production model microservice "
        "(a drop-in replacement for the Seldon Core 1.x Python wrapper).",
    )
    parser.add_argument("--version", action="version", version=f"unitserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, summary) in _COMMANDS.items():
        if command is not None and command != name:
            sub.add_parser(name, help=summary, add_help=False)
        elif module_name is None:
            _serve_parser(sub)
        else:
            importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
