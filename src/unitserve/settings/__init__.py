"""Every setting of `unitserve serve`, declared once: flag, environment variable,
type, default and help. The CLI, the docs' configuration table and the server
all read this table, so they cannot drift apart.

Precedence, as in Seldon: an explicit flag wins over its environment variable,
which wins over the default. A few Seldon variables override their flag
(``SELDON_LOG_LEVEL`` over ``--log-level``); the table says so in `note`.

The CLI hands the environment to `resolve` once; nothing else in the server reads
it. `resolve` turns flags and variables into one frozen `Settings`, checks every
range, and the rest of the package takes its values from there.

Two kinds of mistake, two exit statuses: a value that cannot be read at all (a
word where a number belongs, an unknown choice) is a usage error, status 2, as
argparse reports it; a value that reads fine but is out of range (``--workers 0``,
a port above 65535, a negative timeout) is refused by `resolve` with status 1.
Either way the message is one line naming the flag, or the variable when the
value came from the environment.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from unitserve.settings.options import (
    SERVICE_TYPES,
    STRTOBOOL_WORDS,
    Option,
    OutOfRange,
    SettingsError,
    env_bool,
    parse_flag_bool,
    parse_size,
)
from unitserve.settings.table import ENV_ONLY, OPTIONS

__all__ = [
    "ENV_ONLY",
    "OPTIONS",
    "SERVICE_TYPES",
    "STRTOBOOL_WORDS",
    "Option",
    "OutOfRange",
    "Settings",
    "SettingsError",
    "add_option_arguments",
    "add_serve_arguments",
    "defaults",
    "env_bool",
    "parse_flag_bool",
    "parse_size",
    "resolve",
    "with_model_uri",
]


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one `unitserve serve` run: one field per option of
    OPTIONS and ENV_ONLY, same name. The defaults live in those tables only, so
    every field is required here; `resolve` fills them all."""

    interface_name: str
    # flags (OPTIONS)
    service_type: str
    persistence: int
    parameters: str
    model_uri: str | None
    log_level: str
    log_format: str
    debug: bool
    tracing: int
    docs: bool
    workers: int
    threads: int
    max_requests: int
    max_requests_jitter: int
    keepalive: int
    single_threaded: int
    http_port: int
    grpc_port: int
    metrics_port: int
    pidfile: str | None
    access_log: bool
    grpc_threads: int
    grpc_workers: int
    host: str
    grpc_max_message_size: int | None
    max_body_size: int
    http_timeout: float
    request_timeout: float
    max_batch_size: int
    max_batch_time: float
    graceful_timeout: float
    preload: bool
    cors_origins: str
    metrics_endpoint: str
    model_name: str | None
    model_version: str | None
    # environment only (ENV_ONLY)
    unit_id: str | None
    unit_image: str | None
    predictor_id: str
    predictor_labels: Mapping[str, Any]
    deployment_id: str
    record_rewards: bool
    include_metrics: bool
    payload_passthrough: bool
    model_metadata: str | None
    annotations_path: str

    @property
    def user_threads(self) -> int:
        return 1 if self.single_threaded else max(1, self.threads)

    @property
    def served_model_name(self) -> str:
        """The model's name on the Open Inference Protocol: --model-name, or the class."""
        return self.model_name or self.interface_name.rpartition(".")[2]

    @property
    def grpc_enabled(self) -> bool:
        return self.grpc_workers > 0


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare every flag of OPTIONS on `parser`, defaults left unset (None) so that
    an absent flag falls back to its environment variable."""
    parser.add_argument(
        "interface_name",
        nargs="?",
        default=None,
        help="The user class: `Module` (file Module.py, class Module) or `pkg.module.Class`; "
        "or a prepackaged server, SKLEARN_SERVER, XGBOOST_SERVER, LIGHTGBM_SERVER or "
        "MLFLOW_SERVER, with --model-uri. "
        "Default: MODEL_NAME from the environment or .s2i/environment.",
    )
    add_option_arguments(parser)


def add_option_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """Declare the flags of OPTIONS (but those named in `skip`) on `parser`."""
    for opt in OPTIONS:
        if opt.flag is None or opt.name in skip:
            continue
        where = f" [env {opt.env}]" if opt.env else ""
        default = "unset" if opt.default is None else opt.default
        text = f"{opt.help}{where} (default: {default})"
        if opt.kind == "switch":
            parser.add_argument(
                opt.flag,
                nargs="?",
                const=True,
                default=None,
                type=opt.parse,
                metavar="BOOL",
                help=text,
            )
            if opt.negatable:
                parser.add_argument(
                    "--no-" + opt.flag[2:],
                    dest=opt.flag[2:].replace("-", "_"),
                    action="store_const",
                    const=False,
                    help=f"The opposite of {opt.flag}.",
                )
        elif opt.kind == "optional-int":
            parser.add_argument(
                opt.flag, nargs="?", const=1, default=None, type=opt.parse, help=text
            )
        else:
            parser.add_argument(
                opt.flag, default=None, type=opt.parse, choices=opt.choices, help=text
            )


# Seldon variables that override their flag rather than the other way round.
_ENV_WINS = {"log_level"}


def resolve(args: argparse.Namespace, environ: Mapping[str, str], interface_name: str) -> Settings:
    """Merge parsed flags, environment and defaults into Settings, and check every
    range against what the user wrote (the flag, or the variable)."""
    values: dict[str, Any] = {}
    for opt in (*OPTIONS, *ENV_ONLY):
        flag_value = getattr(args, opt.name, None) if opt.flag else None
        if flag_value is not None and not (opt.name in _ENV_WINS and opt.env in environ):
            values[opt.name] = flag_value
            opt.check(flag_value, str(opt.flag))
        else:
            values[opt.name] = opt.from_env(environ)
            if opt.env in environ:
                opt.check(values[opt.name], f"environment variable {opt.env}")
    if values["model_uri"]:
        values["parameters"] = with_model_uri(values["parameters"], values["model_uri"])
    if values["metrics_endpoint"] and not values["metrics_endpoint"].startswith("/"):
        values["metrics_endpoint"] = "/" + values["metrics_endpoint"]
    return Settings(interface_name=interface_name, **values)


def with_model_uri(parameters: str, model_uri: str) -> str:
    """`parameters` (the JSON list) with model_uri set to `model_uri`, replacing any."""
    try:
        items = json.loads(parameters)
    except ValueError:
        return parameters  # the component loader reports the bad JSON
    if not isinstance(items, list):
        return parameters
    kept = [i for i in items if not (isinstance(i, dict) and i.get("name") == "model_uri")]
    kept.append({"name": "model_uri", "value": model_uri, "type": "STRING"})
    return json.dumps(kept)


def defaults(interface_name: str) -> Settings:
    """The settings of a run with no flag and an empty environment."""
    return resolve(argparse.Namespace(), {}, interface_name)
