"""``unitserve start [DIR]``: serve a model repository as MLServer does (``mlserver start``)."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from unitserve.errors import StartupError
from unitserve.runtime import logs
from unitserve.version import __version__

log = logging.getLogger("unitserve")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "start",
        help="serve every model of a model repository (MLServer's format) by name",
        description="Serve the models of a models folder in MLServer's format (each "
        "folder with a model-settings.json) over the Open Inference Protocol, REST and "
        "gRPC, with the repository extension to load and unload them by name while "
        "serving. The server's settings are MLServer's: DIR/settings.json, else the "
        "MLSERVER_* environment variables (MLSERVER_HTTP_PORT, MLSERVER_GRPC_PORT, "
        "MLSERVER_METRICS_PORT, MLSERVER_PARALLEL_WORKERS, "
        "MLSERVER_LOAD_MODELS_AT_STARTUP, MLSERVER_GRPC_MAX_MESSAGE_LENGTH, "
        "MLSERVER_DEBUG, ...), as Seldon Core 2 sets them.",
    )
    p.add_argument(
        "folder",
        nargs="?",
        metavar="DIR",
        help="the models folder (default: MLSERVER_MODELS_DIR, else the working directory)",
    )
    p.set_defaults(func=_cmd_start)


def _cmd_start(args: argparse.Namespace) -> int:
    from unitserve.repository import SettingsError, read_server_settings

    environ = dict(os.environ)
    try:
        server = read_server_settings(args.folder, environ)
    except SettingsError as exc:
        print(f"unitserve start: error: {exc}", file=sys.stderr)
        return 2
    logs.configure("DEBUG" if server.debug else "INFO", "text")
    log.info("unitserve %s", __version__)
    if server.ignored:
        log.info("settings.json: not used by unitserve: %s", ", ".join(server.ignored))
    from unitserve.runtime import repository_server

    try:
        return repository_server.run(server, environ)
    except StartupError as exc:
        print(f"unitserve: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(f"unitserve: error: {exc}", file=sys.stderr)
            return 1
        raise
