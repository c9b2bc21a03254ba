"""Tracing when off costs nothing (not even an import), and the pieces of its set-up
that need no collector: Seldon's JAEGER_* variables, the route templates."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from unitserve import tracing

ROOT = Path(__file__).resolve().parents[2]

_OFF = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {root!r})
    from tests.unit.engine_harness import fixture_model, serving
    with serving(fixture_model("Identity")) as h:
        rest = h.post("/api/v1.0/predictions", json={{"data": {{"ndarray": [[1, 2]]}}}})
        v2 = h.post(
            "/v2/models/Identity/infer",
            json={{"inputs": [{{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}}]}},
        )
        rpc = h.call_json("Model/Predict", {{"data": {{"ndarray": [[1, 2]]}}}})
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
    print(json.dumps([rest.status_code, v2.status_code, bool(rpc), loaded]))
    """
)


def test_tracing_off_imports_no_opentelemetry_module():
    # In a process of its own: this one may have imported OpenTelemetry for other tests.
    script = _OFF.format(root=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    rest, v2, rpc, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert (rest, v2, rpc) == (200, 200, True)
    assert loaded == []
    assert tracing.ACTIVE is None


def test_jaeger_variables_map_onto_otlp_or_warn_once_each():
    env = {
        "JAEGER_SERVICE_NAME": "svc",
        "JAEGER_AGENT_HOST": "jaeger",
        "JAEGER_AGENT_PORT": "6831",
        "JAEGER_SAMPLER_TYPE": "probabilistic",
        "JAEGER_SAMPLER_PARAM": "0.25",
        "JAEGER_TAGS": "team=ml,env=prod",
    }
    mapped, warnings = tracing.jaeger_environment(env)
    assert mapped == {
        "OTEL_SERVICE_NAME": "svc",
        "OTEL_RESOURCE_ATTRIBUTES": "team=ml,env=prod",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    assert len(warnings) == 1 and "JAEGER_AGENT_PORT" in warnings[0]


def test_otel_variables_win_over_jaeger_ones():
    env = {
        "JAEGER_SERVICE_NAME": "old",
        "OTEL_SERVICE_NAME": "new",
        "JAEGER_AGENT_HOST": "jaeger",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "JAEGER_SAMPLER_TYPE": "const",
        "JAEGER_SAMPLER_PARAM": "0",
    }
    mapped, warnings = tracing.jaeger_environment(env)
    assert mapped == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317",
        "OTEL_TRACES_SAMPLER": "always_off",
    }
    assert warnings == []


def test_jaeger_settings_without_a_meaning_warn():
    _, warnings = tracing.jaeger_environment(
        {"JAEGER_ENDPOINT": "http://c:14268/api/traces", "JAEGER_SAMPLER_TYPE": "remote"}
    )
    assert len(warnings) == 2
    assert "JAEGER_ENDPOINT" in warnings[0] and "remote" in warnings[1]


def test_http_route_templates_keep_names_out_of_span_names():
    assert tracing.http_route("/api/v1.0/predictions") == "/api/v1.0/predictions"
    assert tracing.http_route("/v2/models/iris/infer") == "/v2/models/{model}/infer"
    assert (
        tracing.http_route("/v2/models/iris/versions/3/infer")
        == "/v2/models/{model}/versions/{version}/infer"
    )
    assert tracing.http_route("/v2/repository/models/iris/load") == (
        "/v2/repository/models/{model}/load"
    )
    assert tracing.http_route("/v2/health/ready") == "/v2/health/ready"


def test_the_current_trace_id_is_there_for_log_lines(monkeypatch):
    # Spans go nowhere: nothing listens on port 9 of loopback, and none is ever ended.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    assert tracing.current_trace_id() is None
    active = tracing.start("M")
    try:
        assert tracing.current_trace_id() is None  # no request being answered
        span = active.tracer.start_span("request")
        token = active.otel_context.attach(active.otel_trace.set_span_in_context(span))
        try:
            found = tracing.current_trace_id()
            assert found == format(span.get_span_context().trace_id, "032x")
        finally:
            active.otel_context.detach(token)
    finally:
        tracing.stop()
    assert tracing.current_trace_id() is None
