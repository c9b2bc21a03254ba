"""The table of every setting of `unitserve serve`: OPTIONS (a flag, most with an
environment variable) and ENV_ONLY (set by the operator on the pod). The CLI, the
docs' configuration table and `resolve` all read it."""

from __future__ import annotations

from unitserve.settings.options import (
    HIGHEST_PORT,
    LOG_FORMATS,
    LOG_LEVELS,
    LOWEST_PORT,
    NO_LIMIT,
    SERVICE_TYPES,
    Option,
    choice,
    env_bool,
    is_not_word_false,
    is_word_true,
    parse_flag_bool,
    parse_size,
    predictor_labels,
    text_or_none,
    whole_number,
)

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
        parse=text_or_none,
        origin="unitserve",
    ),
    Option(
        "log_level",
        "--log-level",
        "SELDON_LOG_LEVEL",
        "INFO",
        "Log level.",
        choices=LOG_LEVELS,
        env_parse=lambda s: choice(s.upper(), LOG_LEVELS),
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
        env_parse=lambda s: choice(s.lower(), LOG_FORMATS),
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
        parse=whole_number,
        low=1,
    ),
    Option(
        "threads",
        "--threads",
        "GUNICORN_THREADS",
        1,
        "Synchronous user calls running at once per worker, REST and gRPC together (async "
        "methods run on the event loop).",
        parse=whole_number,
        low=0,
    ),
    Option(
        "max_requests",
        "--max-requests",
        "GUNICORN_MAX_REQUESTS",
        0,
        "Recycle a worker after it served this many requests (0: never).",
        parse=whole_number,
        low=0,
    ),
    Option(
        "max_requests_jitter",
        "--max-requests-jitter",
        "GUNICORN_MAX_REQUESTS_JITTER",
        0,
        "Random extra requests (0..N) added per worker to --max-requests.",
        parse=whole_number,
        low=0,
    ),
    Option(
        "keepalive",
        "--keepalive",
        "GUNICORN_KEEPALIVE",
        2,
        "Seconds an idle HTTP keep-alive connection stays open (0: no keep-alive, as in gunicorn).",
        parse=whole_number,
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
        parse=whole_number,
        low=0,
    ),
    Option(
        "grpc_workers",
        "--grpc-workers",
        "GRPC_WORKERS",
        1,
        "0 turns the gRPC server off; any other value serves gRPC in every worker.",
        parse=whole_number,
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
        parse=whole_number,
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
        parse=text_or_none,
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
        parse=text_or_none,
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
        parse=text_or_none,
    ),
    Option(
        "unit_image",
        None,
        "PREDICTIVE_UNIT_IMAGE",
        None,
        "Image name:tag: requestPath value, model_image/"
        "model_version labels, metadata name/versions defaults.",
        parse=text_or_none,
    ),
    Option(
        "predictor_id",
        None,
        "PREDICTOR_ID",
        "NOT_IMPLEMENTED",
        "predictor_name metric label.",
        parse=text_or_none,
    ),
    Option(
        "predictor_labels",
        None,
        "PREDICTOR_LABELS",
        {},
        "JSON; its `version` key is the predictor_version label.",
        parse=predictor_labels,
    ),
    Option(
        "deployment_id",
        None,
        "SELDON_DEPLOYMENT_ID",
        "NOT_IMPLEMENTED",
        "deployment_name metric label.",
        parse=text_or_none,
    ),
    Option(
        "record_rewards",
        None,
        "SELDON_EXECUTOR_ENABLED",
        True,
        "false: legacy mode, feedback reward metrics are not recorded.",
        parse=is_not_word_false,
    ),
    Option(
        "include_metrics",
        None,
        "INCLUDE_METRICS_IN_CLIENT_RESPONSE",
        True,
        "Only the word true (any case) puts static "
        "and runtime metrics into responses; they are recorded either way.",
        parse=is_word_true,
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
