"""Every setting of `unitserve serve`, declared once: flag, environment variable,
type, default and help. The CLI, the docs' configuration table and the server
all read this table, so they cannot drift apart.

Precedence, as in Seldon: an explicit flag wins over its environment variable,
which wins over the default. A few Seldon variables override their flag
(``SELDON_LOG_LEVEL`` over ``--log-level``); the table says so in `note`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

SERVICE_TYPES = (
    "MODEL",
    "ROUTER",
    "TRANSFORMER",
    "OUTPUT_TRANSFORMER",
    "COMBINER",
    "OUTLIER_DETECTOR",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

_TRUE = frozenset({"1", "true", "t"})
# The words distutils' strtobool accepts (Seldon parses flag values and BOOL
# parameters with it).
STRTOBOOL_WORDS = {
    "y": True,
    "yes": True,
    "t": True,
    "true": True,
    "on": True,
    "1": True,
    "n": False,
    "no": False,
    "f": False,
    "false": False,
    "off": False,
    "0": False,
}


def env_bool(text: str) -> bool:
    """Seldon's ``getenv_as_bool``: only 1, true and t (any case) are true."""
    return text.strip().lower() in _TRUE


def parse_flag_bool(text: str) -> bool:
    """An explicit value after a boolean flag (``--debug false``): the strtobool words."""
    value = STRTOBOOL_WORDS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def parse_size(text: str) -> int:
    """A byte size: plain bytes or with a K/M/G suffix (powers of 1024)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    number = t[:-1] if scale != 1 else t
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 4194304, 4M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


@dataclass(frozen=True)
class Option:
    """One setting. `flag` is None for environment-only settings."""

    name: str
    flag: str | None
    env: str | None
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    kind: str = "value"  # value | switch (optional boolean value) | optional-int
    choices: tuple[str, ...] | None = None
    env_parse: Callable[[str], Any] | None = None  # how the env text is read, if not `parse`
    origin: str = "seldon"  # seldon: same as seldon-core-microservice; unitserve: ours
    note: str = ""

    def from_env(self, environ: Mapping[str, str]) -> Any:
        if self.env is None or self.env not in environ:
            return self.default
        raw = environ[self.env]
        reader = self.env_parse or self.parse
        try:
            return reader(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise SettingsError(f"environment variable {self.env}={raw!r}: {exc}") from None


class SettingsError(Exception):
    """A bad flag or environment value: reported as one line, exit status 2."""


OPTIONS: tuple[Option, ...] = (
    Option(
        "service_type",
        "--service-type",
        None,
        "MODEL",
        "Graph node type of the component. Recorded in logs and used by `unitserve init` "
        "and `manifest`; every endpoint is served whatever the type, as in Seldon.",
        choices=SERVICE_TYPES,
    ),
    Option(
        "persistence",
        "--persistence",
        None,
        0,
        "Deprecated in Seldon and ignored (accepted for compatibility).",
        parse=int,
        kind="optional-int",
    ),
    Option(
        "parameters",
        "--parameters",
        "PREDICTIVE_UNIT_PARAMETERS",
        "[]",
        "Constructor parameters: a JSON list of {name, value, type}, type INT, FLOAT, "
        "DOUBLE, STRING, BOOL or JSON.",
    ),
    Option(
        "log_level",
        "--log-level",
        "SELDON_LOG_LEVEL",
        "INFO",
        "Log level.",
        choices=LOG_LEVELS,
        env_parse=lambda s: _choice(s.upper(), LOG_LEVELS),
        note="SELDON_LOG_LEVEL overrides the flag, as in Seldon.",
    ),
    Option(
        "debug",
        "--debug",
        "SELDON_DEBUG",
        False,
        "Accepted for compatibility (Seldon's Flask development server); unitserve runs "
        "its normal server. Use --log-level DEBUG for more logs.",
        parse=parse_flag_bool,
        kind="switch",
        env_parse=env_bool,
    ),
    Option(
        "tracing",
        "--tracing",
        "TRACING",
        0,
        "Accepted for compatibility; OpenTracing/Jaeger tracing is not supported "
        "(a warning is logged when set).",
        parse=int,
        kind="optional-int",
    ),
    Option(
        "workers",
        "--workers",
        "GUNICORN_WORKERS",
        1,
        "Worker processes; each serves REST and gRPC with its own copy of the model.",
        parse=_positive_int,
    ),
    Option(
        "threads",
        "--threads",
        "GUNICORN_THREADS",
        1,
        "Synchronous user calls running at once per worker, REST and gRPC together (async "
        "methods run on the event loop).",
        parse=_positive_int,
    ),
    Option(
        "max_requests",
        "--max-requests",
        "GUNICORN_MAX_REQUESTS",
        0,
        "Recycle a worker after it served this many requests (0: never).",
        parse=_positive_int,
    ),
    Option(
        "max_requests_jitter",
        "--max-requests-jitter",
        "GUNICORN_MAX_REQUESTS_JITTER",
        0,
        "Random extra requests (0..N) added per worker to --max-requests.",
        parse=_positive_int,
    ),
    Option(
        "keepalive",
        "--keepalive",
        "GUNICORN_KEEPALIVE",
        2,
        "Seconds an idle HTTP keep-alive connection stays open.",
        parse=_positive_int,
    ),
    Option(
        "single_threaded",
        "--single-threaded",
        "FLASK_SINGLE_THREADED",
        0,
        "Non-zero forces one user-code thread per worker (overrides --threads).",
        parse=int,
    ),
    Option(
        "http_port",
        "--http-port",
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
        9000,
        "REST port.",
        parse=int,
    ),
    Option(
        "grpc_port",
        "--grpc-port",
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
        5000,
        "gRPC port.",
        parse=int,
    ),
    Option(
        "metrics_port",
        "--metrics-port",
        "PREDICTIVE_UNIT_METRICS_SERVICE_PORT",
        6000,
        "Prometheus metrics port.",
        parse=int,
    ),
    Option("pidfile", "--pidfile", None, None, "Write the supervisor's pid to this file."),
    Option(
        "access_log",
        "--access-log",
        "GUNICORN_ACCESS_LOG",
        False,
        "Log one line per request (method, path or RPC, status, duration).",
        parse=parse_flag_bool,
        kind="switch",
        env_parse=env_bool,
    ),
    Option(
        "grpc_threads",
        "--grpc-threads",
        "GRPC_THREADS",
        1,
        "gRPC requests handled at once per worker (user code still runs at most --threads "
        "calls at a time).",
        parse=_positive_int,
    ),
    Option(
        "grpc_workers",
        "--grpc-workers",
        "GRPC_WORKERS",
        1,
        "0 turns the gRPC server off; any other value serves gRPC in every worker.",
        parse=_positive_int,
    ),
    # --- ours -------------------------------------------------------------------------
    Option(
        "host",
        "--host",
        "UNITSERVE_HOST",
        "0.0.0.0",
        "Address to bind the REST, gRPC and metrics ports to (Seldon binds 0.0.0.0).",
        origin="unitserve",
    ),
    Option(
        "grpc_max_message_size",
        "--grpc-max-message-size",
        "UNITSERVE_GRPC_MAX_MESSAGE_SIZE",
        None,
        "Largest gRPC message received or sent, in bytes (suffix K/M/G allowed). "
        "Default: the seldon.io/grpc-max-message-size pod annotation, else 4 MiB "
        "received / unlimited sent.",
        parse=parse_size,
        origin="unitserve",
    ),
    Option(
        "max_body_size",
        "--max-body-size",
        "UNITSERVE_MAX_BODY_SIZE",
        100 << 20,
        "Largest REST request body, in bytes (suffix K/M/G allowed); larger is answered 413.",
        parse=parse_size,
        origin="unitserve",
    ),
    Option(
        "http_timeout",
        "--http-timeout",
        "UNITSERVE_HTTP_TIMEOUT",
        30.0,
        "Seconds a client may take to send a request head, or pause within a request "
        "body, before it is answered 408 and its connection closed.",
        parse=float,
        origin="unitserve",
    ),
    Option(
        "request_timeout",
        "--request-timeout",
        "UNITSERVE_REQUEST_TIMEOUT",
        0.0,
        "Seconds a request may wait for the model before it is answered 504 (0: no limit).",
        parse=float,
        origin="unitserve",
    ),
    Option(
        "graceful_timeout",
        "--graceful-timeout",
        "UNITSERVE_GRACEFUL_TIMEOUT",
        30.0,
        "Seconds in-flight requests get to finish after SIGTERM/SIGINT.",
        parse=float,
        origin="unitserve",
    ),
    Option(
        "preload",
        "--preload",
        "UNITSERVE_PRELOAD",
        False,
        "Construct the model and run load() once in the supervisor, before forking the "
        "workers (they share its memory copy-on-write). Not for frameworks that are not "
        "fork-safe.",
        parse=parse_flag_bool,
        kind="switch",
        env_parse=env_bool,
        origin="unitserve",
    ),
    Option(
        "cors_origins",
        "--cors-origins",
        "UNITSERVE_CORS_ORIGINS",
        "*",
        "Allowed CORS origins: '*' (Seldon's default), a comma-separated list, or '' "
        "to send no CORS headers.",
        origin="unitserve",
    ),
    Option(
        "metrics_endpoint",
        None,
        "PREDICTIVE_UNIT_METRICS_ENDPOINT",
        "/metrics",
        "Path of the Prometheus endpoint on the metrics port (/prometheus also answers).",
    ),
)

# Environment-only settings read by the engine (not flags in Seldon either).
ENV_ONLY: tuple[tuple[str, str, str], ...] = (
    (
        "PREDICTIVE_UNIT_ID",
        "unset",
        'Node name: requestPath key, model_name label, feedback routing key ("0" when unset).',
    ),
    (
        "PREDICTIVE_UNIT_IMAGE",
        "unset",
        "Image name:tag: requestPath value, model_image/"
        "model_version labels, metadata name/versions defaults.",
    ),
    ("PREDICTOR_ID", "NOT_IMPLEMENTED", "predictor_name metric label."),
    ("PREDICTOR_LABELS", "{}", "JSON; its `version` key is the predictor_version label."),
    ("SELDON_DEPLOYMENT_ID", "NOT_IMPLEMENTED", "deployment_name metric label."),
    (
        "SELDON_EXECUTOR_ENABLED",
        "true",
        "false: legacy mode, feedback reward metrics are not recorded.",
    ),
    (
        "INCLUDE_METRICS_IN_CLIENT_RESPONSE",
        "true",
        "Only the word true (any case) puts static "
        "and runtime metrics into responses; they are recorded either way.",
    ),
    (
        "PAYLOAD_PASSTHROUGH",
        "false",
        "true: the predict routes hand the raw body to "
        "predict_raw and send its return value as the body.",
    ),
    ("MODEL_METADATA", "unset", "YAML or JSON metadata overriding init_metadata()."),
    (
        "UNITSERVE_ANNOTATIONS_PATH",
        "/etc/podinfo/annotations",
        "Pod annotations file (Kubernetes downward API) read for seldon.io/grpc-max-message-size.",
    ),
    (
        "MODEL_NAME / SERVICE_TYPE / PERSISTENCE",
        "unset",
        "s2i start: used by `unitserve serve` "
        "when no interface name is given (also read from .s2i/environment).",
    ),
)


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class Settings:
    """The parsed settings of one `unitserve serve` run."""

    interface_name: str
    service_type: str = "MODEL"
    persistence: int = 0
    parameters: str = "[]"
    log_level: str = "INFO"
    debug: bool = False
    tracing: int = 0
    workers: int = 1
    threads: int = 1
    max_requests: int = 0
    max_requests_jitter: int = 0
    keepalive: int = 2
    single_threaded: int = 0
    http_port: int = 9000
    grpc_port: int = 5000
    metrics_port: int = 6000
    pidfile: str | None = None
    access_log: bool = False
    grpc_threads: int = 1
    grpc_workers: int = 1
    host: str = "0.0.0.0"
    grpc_max_message_size: int | None = None
    max_body_size: int = 100 << 20
    http_timeout: float = 30.0
    request_timeout: float = 0.0
    graceful_timeout: float = 30.0
    preload: bool = False
    cors_origins: str = "*"
    metrics_endpoint: str = "/metrics"
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def user_threads(self) -> int:
        return 1 if self.single_threaded else max(1, self.threads)

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
        help="The user class: `Module` (file Module.py, class Module) or `pkg.module.Class`. "
        "Default: MODEL_NAME from the environment or .s2i/environment.",
    )
    for opt in OPTIONS:
        if opt.flag is None:
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
    """Merge parsed flags, environment and defaults into Settings."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        flag_value = getattr(args, opt.name, None) if opt.flag else None
        if opt.name in _ENV_WINS and opt.env in environ:
            values[opt.name] = opt.from_env(environ)
        elif flag_value is not None:
            values[opt.name] = flag_value
        else:
            values[opt.name] = opt.from_env(environ)
    if values["metrics_endpoint"] and not values["metrics_endpoint"].startswith("/"):
        values["metrics_endpoint"] = "/" + values["metrics_endpoint"]
    known = {f.name for f in fields(Settings)}
    return Settings(
        interface_name=interface_name,
        env=dict(environ),
        **{k: v for k, v in values.items() if k in known},
    )


def parse_parameters_json(text: str) -> list[Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"--parameters is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise SettingsError("--parameters must be a JSON list of {name, value, type}")
    return value


def environ() -> dict[str, str]:
    return dict(os.environ)
