"""Seldon's Jaeger client variables (``JAEGER_*``) read as the OpenTelemetry SDK's
(``OTEL_*``): a deployment written for Seldon's tracing keeps working unchanged."""

from __future__ import annotations

from collections.abc import Mapping


def jaeger_environment(env: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The ``OTEL_*`` settings Seldon's ``JAEGER_*`` variables stand for (never over a
    ``OTEL_*`` variable that is set), and one warning per variable without an
    OpenTelemetry meaning."""
    out: dict[str, str] = {}
    warnings: list[str] = []

    def put(name: str, value: str) -> None:
        if name not in env:
            out[name] = value

    if "JAEGER_SERVICE_NAME" in env:
        put("OTEL_SERVICE_NAME", env["JAEGER_SERVICE_NAME"])
    if "JAEGER_TAGS" in env:  # the same "key=value,key=value" form
        put("OTEL_RESOURCE_ATTRIBUTES", env["JAEGER_TAGS"])
    if "JAEGER_AGENT_HOST" in env and "JAEGER_ENDPOINT" not in env:
        # Jaeger's agent took spans over UDP; a Jaeger of today takes OTLP on the same
        # host, on port 4318 (HTTP) or 4317 (gRPC).
        grpc_protocol = otlp_protocol(env) == "grpc"
        put(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            f"http://{env['JAEGER_AGENT_HOST']}:{4317 if grpc_protocol else 4318}",
        )
        if "JAEGER_AGENT_PORT" in env:
            warnings.append(
                "JAEGER_AGENT_PORT is ignored: spans go to the agent's host over OTLP "
                "(set OTEL_EXPORTER_OTLP_ENDPOINT to choose the port)"
            )
    if "JAEGER_ENDPOINT" in env:
        warnings.append(
            "JAEGER_ENDPOINT is ignored: it names Jaeger's Thrift endpoint; set "
            "OTEL_EXPORTER_OTLP_ENDPOINT to the collector's OTLP endpoint"
        )
    sampler = env.get("JAEGER_SAMPLER_TYPE")
    if sampler is not None:
        param = env.get("JAEGER_SAMPLER_PARAM", "1")
        if sampler == "const":
            put("OTEL_TRACES_SAMPLER", "parentbased_always_on" if param != "0" else "always_off")
        elif sampler == "probabilistic":
            put("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
            put("OTEL_TRACES_SAMPLER_ARG", param)
        else:
            warnings.append(
                f"JAEGER_SAMPLER_TYPE={sampler} has no OpenTelemetry equivalent and is "
                "ignored (set OTEL_TRACES_SAMPLER)"
            )
    for name in ("JAEGER_USER", "JAEGER_PASSWORD", "JAEGER_REPORTER_LOG_SPANS"):
        if name in env:
            warnings.append(f"{name} is ignored (see the OTEL_EXPORTER_OTLP_* variables)")
    return out, warnings


def otlp_protocol(env: Mapping[str, str]) -> str:
    return env.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
