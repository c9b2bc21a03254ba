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
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
LOG_FORMATS = ("text", "json")

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


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _text_or_none(text: str) -> str | None:
    """An empty value counts as unset: the option's default applies."""
    return text or None


def _predictor_labels(text: str) -> dict[str, Any]:
    # An unreadable value is ignored rather than refused: it only feeds a metric label.
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _is_word_true(text: str) -> bool:
    """Only the word ``true`` (any case) turns INCLUDE_METRICS_IN_CLIENT_RESPONSE on."""
    return text.lower() == "true"


def _is_not_word_false(text: str) -> bool:
    """Only the word ``false`` (any case) turns SELDON_EXECUTOR_ENABLED off."""
    return text.lower() != "false"


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
    """One setting. `flag` is None for environment-only settings; `default` is the
    value `Settings` gets when neither the flag nor the variable is set (a reader
    that returns None also means "unset"). `low`/`high` bound a number."""

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
    low: float | None = None
    high: float | None = None
    negatable: bool = False  # a switch that also has a --no-<name> flag

    def from_env(self, environ: Mapping[str, str]) -> Any:
        if self.env is None or self.env not in environ:
            return self.default
        raw = environ[self.env]
        reader = self.env_parse or self.parse
        try:
            value = reader(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise SettingsError(f"environment variable {self.env}={raw!r}: {exc}") from None
        return self.default if value is None else value

    def check(self, value: Any, where: str) -> None:
        """Refuse a number outside [low, high]; `where` names the flag or variable it
        came from, so the message points at what the user wrote."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise OutOfRange(f"{where} must be a finite number, got {value}")
        if self.low is not None and value < self.low:
            raise OutOfRange(f"{where} must be at least {_number(self.low)}, got {_number(value)}")
        if self.high is not None and value > self.high:
            raise OutOfRange(f"{where} must be at most {_number(self.high)}, got {_number(value)}")


def _number(value: float) -> str:
    """A bound or value as the user would write it (1000000, not 1e+06)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


class SettingsError(Exception):
    """A flag or environment value that cannot be read: one line, exit status 2."""

    exit_status = 2


class OutOfRange(SettingsError):
    """A value that reads fine but that the server cannot use: one line, exit status 1."""

    exit_status = 1


# Port 0 is the system's choice of a free port (tests and local runs use it).
LOWEST_PORT, HIGHEST_PORT = 0, 65535
# Every timeout follows one rule: 0 means no limit, a negative value is a mistake.
NO_LIMIT = 0.0

OPTIONS: tuple[Option, ...] = (
    Option(
        "service_type",
        "--service-type",
        None,
        "MODEL",
        "Graph node type of the component. Recorded in logs and used by `unitserve init` "
        "and `manifest`; every endpoint is served whatever the type, as in Seldon. "
        "Open Inference Protocol inference calls the type's method (MODEL: predict, "
        "TRANSFORMER: transform_input, OUTPUT_TRANSFORMER: transform_output).",
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
        "model_uri",
        "--model-uri",
        None,
        None,
        "Where the model files are (a folder, a file or a storage URI): sets the "
        "constructor parameter model_uri, as Seldon's operator does for a prepackaged "
        "server (SKLEARN_SERVER, ...).",
        parse=_text_or_none,
        origin="unitserve",
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
        "log_format",
        "--log-format",
        "UNITSERVE_LOG_FORMAT",
        "text",
        "Log line format: text (Seldon's) or json (one JSON object a line: time, level, "
        "message, logger; access lines add method, path, status, duration_ms, puid and "
        "trace_id).",
        choices=LOG_FORMATS,
        env_parse=lambda s: _choice(s.lower(), LOG_FORMATS),
        origin="unitserve",
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
        "OpenTelemetry tracing (1: on): a span per request, user method, decode and "
        "encode, sent over OTLP as the OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT, "
        "OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_TRACES_SAMPLER; the service name defaults to "
        "the model's); Seldon's JAEGER_* variables are mapped where they have a meaning. "
        "Needs the tracing extra: pip install -e '.[tracing]' in a clone (pip install "
        "'unitserve[tracing]' from a package index). See docs/observability.md.",
        parse=int,
        kind="optional-int",
    ),
    Option(
        "docs",
        "--docs",
        "UNITSERVE_DOCS",
        True,
        "Serve the interactive API docs page at GET /docs (Swagger UI over /seldon.json, "
        "from files in the package: no other host is contacted); --no-docs turns it off.",
        parse=parse_flag_bool,
        kind="switch",
        env_parse=env_bool,
        origin="unitserve",
        negatable=True,
    ),
    Option(
        "workers",
        "--workers",
        "GUNICORN_WORKERS",
        1,
        "Worker processes; each serves REST and gRPC with its own copy of the model.",
        parse=_whole_number,
        low=1,
    ),
    Option(
        "threads",
        "--threads",
        "GUNICORN_THREADS",
        1,
        "Synchronous user calls running at once per worker, REST and gRPC together (async "
        "methods run on the event loop).",
        parse=_whole_number,
        low=0,
    ),
    Option(
        "max_requests",
        "--max-requests",
        "GUNICORN_MAX_REQUESTS",
        0,
        "Recycle a worker after it served this many requests (0: never).",
        parse=_whole_number,
        low=0,
    ),
    Option(
        "max_requests_jitter",
        "--max-requests-jitter",
        "GUNICORN_MAX_REQUESTS_JITTER",
        0,
        "Random extra requests (0..N) added per worker to --max-requests.",
        parse=_whole_number,
        low=0,
    ),
    Option(
        "keepalive",
        "--keepalive",
        "GUNICORN_KEEPALIVE",
        2,
        "Seconds an idle HTTP keep-alive connection stays open (0: no keep-alive, as in gunicorn).",
        parse=_whole_number,
        low=0,
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
        "REST port (0: any free port).",
        parse=int,
        low=LOWEST_PORT,
        high=HIGHEST_PORT,
    ),
    Option(
        "grpc_port",
        "--grpc-port",
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
        5000,
        "gRPC port (0: any free port).",
        parse=int,
        low=LOWEST_PORT,
        high=HIGHEST_PORT,
    ),
    Option(
        "metrics_port",
        "--metrics-port",
        "PREDICTIVE_UNIT_METRICS_SERVICE_PORT",
        6000,
        "Prometheus metrics port (0: any free port).",
        parse=int,
        low=LOWEST_PORT,
        high=HIGHEST_PORT,
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
        parse=_whole_number,
        low=0,
    ),
    Option(
        "grpc_workers",
        "--grpc-workers",
        "GRPC_WORKERS",
        1,
        "0 turns the gRPC server off; any other value serves gRPC in every worker.",
        parse=_whole_number,
        low=0,
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
        "body, before it is answered 408 and its connection closed (0: no limit).",
        parse=float,
        low=NO_LIMIT,
        origin="unitserve",
    ),
    Option(
        "request_timeout",
        "--request-timeout",
        "UNITSERVE_REQUEST_TIMEOUT",
        0.0,
        "Seconds a request may wait for the model before it is answered 504 (0: no limit).",
        parse=float,
        low=NO_LIMIT,
        origin="unitserve",
    ),
    Option(
        "max_batch_size",
        "--max-batch-size",
        "UNITSERVE_MAX_BATCH_SIZE",
        0,
        "Adaptive batching: stack the rows of concurrent predict / transform / inference "
        "requests into one user call of at most this many rows (0 or 1: off). The model "
        "must then answer one row per input row; see docs/batching.md.",
        parse=_whole_number,
        low=0,
        high=1 << 20,
        origin="unitserve",
    ),
    Option(
        "max_batch_time",
        "--max-batch-time",
        "UNITSERVE_MAX_BATCH_TIME",
        10.0,
        "Adaptive batching: milliseconds the oldest request of a batch may wait for more "
        "requests before the batch is sent anyway (used with --max-batch-size). A request "
        "with no other in flight in the worker does not wait.",
        parse=float,
        low=0,
        high=60000,
        origin="unitserve",
    ),
    Option(
        "graceful_timeout",
        "--graceful-timeout",
        "UNITSERVE_GRACEFUL_TIMEOUT",
        30.0,
        "Seconds in-flight requests get to finish after SIGTERM/SIGINT (0: no limit).",
        parse=float,
        low=NO_LIMIT,
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
    Option(
        "model_name",
        "--model-name",
        "UNITSERVE_MODEL_NAME",
        None,
        "Name of the model on the Open Inference Protocol (/v2/models/NAME/..., gRPC "
        "model_name); requests for another name are answered 404. Default: the class name.",
        parse=_text_or_none,
        origin="unitserve",
    ),
    Option(
        "model_version",
        "--model-version",
        "UNITSERVE_MODEL_VERSION",
        None,
        "Version of the model on the Open Inference Protocol: accepted in "
        "/v2/models/NAME/versions/VERSION/... and reported in metadata and answers. "
        "Default: none (any version in a path is answered 404).",
        parse=_text_or_none,
        origin="unitserve",
    ),
)

# Settings with no flag, in Seldon either: the operator sets them on the pod.
ENV_ONLY: tuple[Option, ...] = (
    Option(
        "unit_id",
        None,
        "PREDICTIVE_UNIT_ID",
        None,
        'Node name: requestPath key, model_name label, feedback routing key ("0" when unset).',
        parse=_text_or_none,
    ),
    Option(
        "unit_image",
        None,
        "PREDICTIVE_UNIT_IMAGE",
        None,
        "Image name:tag: requestPath value, model_image/"
        "model_version labels, metadata name/versions defaults.",
        parse=_text_or_none,
    ),
    Option(
        "predictor_id",
        None,
        "PREDICTOR_ID",
        "NOT_IMPLEMENTED",
        "predictor_name metric label.",
        parse=_text_or_none,
    ),
    Option(
        "predictor_labels",
        None,
        "PREDICTOR_LABELS",
        {},
        "JSON; its `version` key is the predictor_version label.",
        parse=_predictor_labels,
    ),
    Option(
        "deployment_id",
        None,
        "SELDON_DEPLOYMENT_ID",
        "NOT_IMPLEMENTED",
        "deployment_name metric label.",
        parse=_text_or_none,
    ),
    Option(
        "record_rewards",
        None,
        "SELDON_EXECUTOR_ENABLED",
        True,
        "false: legacy mode, feedback reward metrics are not recorded.",
        parse=_is_not_word_false,
    ),
    Option(
        "include_metrics",
        None,
        "INCLUDE_METRICS_IN_CLIENT_RESPONSE",
        True,
        "Only the word true (any case) puts static "
        "and runtime metrics into responses; they are recorded either way.",
        parse=_is_word_true,
    ),
    Option(
        "payload_passthrough",
        None,
        "PAYLOAD_PASSTHROUGH",
        False,
        "true: the predict routes hand the raw body to "
        "predict_raw and send its return value as the body.",
        parse=env_bool,
    ),
    Option(
        "model_metadata",
        None,
        "MODEL_METADATA",
        None,
        "YAML or JSON metadata overriding init_metadata().",
    ),
    Option(
        "annotations_path",
        None,
        "UNITSERVE_ANNOTATIONS_PATH",
        "/etc/podinfo/annotations",
        "Pod annotations file (Kubernetes downward API) read for seldon.io/grpc-max-message-size.",
        origin="unitserve",
    ),
)


def _choice(value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


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
        help="The user class: `Module` (file Module.py, class Module) or `pkg.module.Class`. "
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
