"""Settings: one table gives every default, flags and variables are read once, and a
value the server cannot use is refused with one line naming where it came from."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import cast

import pytest

from unitserve import settings
from unitserve.settings import OutOfRange, Settings, SettingsError, resolve


def parse(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    settings.add_serve_arguments(parser)
    args = parser.parse_args(["Model", *argv])
    return resolve(args, environ or {}, args.interface_name)


def test_settings_has_one_field_per_option():
    names = [opt.name for opt in (*settings.OPTIONS, *settings.ENV_ONLY)]
    assert len(names) == len(set(names))
    assert [f.name for f in fields(Settings)] == ["interface_name", *names]


def test_defaults_come_from_the_table():
    resolved = parse()
    for opt in (*settings.OPTIONS, *settings.ENV_ONLY):
        assert getattr(resolved, opt.name) == opt.default, opt.name


def test_flag_wins_over_variable_except_log_level():
    resolved = parse(
        "--workers",
        "3",
        "--log-level",
        "DEBUG",
        environ={"GUNICORN_WORKERS": "5", "SELDON_LOG_LEVEL": "error"},
    )
    assert resolved.workers == 3
    assert resolved.log_level == "ERROR"
    assert parse(environ={"GUNICORN_WORKERS": "5"}).workers == 5


def test_environment_only_values_are_read_as_seldon_reads_them():
    resolved = parse(
        environ={
            "PREDICTIVE_UNIT_ID": "",
            "PREDICTIVE_UNIT_IMAGE": "repo/clf:1.2",
            "PREDICTOR_ID": "",
            "PREDICTOR_LABELS": "not json",
            "SELDON_EXECUTOR_ENABLED": "FALSE",
            "INCLUDE_METRICS_IN_CLIENT_RESPONSE": "yes",
            "PAYLOAD_PASSTHROUGH": " T ",
            "UNITSERVE_ANNOTATIONS_PATH": "/tmp/annotations",
        }
    )
    assert resolved.unit_id is None  # empty is unset
    assert resolved.unit_image == "repo/clf:1.2"
    assert resolved.predictor_id == "NOT_IMPLEMENTED"
    assert resolved.predictor_labels == {}  # unreadable JSON is ignored
    assert resolved.record_rewards is False
    assert resolved.include_metrics is False  # only the word "true"
    assert resolved.payload_passthrough is True
    assert resolved.annotations_path == "/tmp/annotations"
    assert parse(environ={"PREDICTOR_LABELS": '{"version": "v7"}'}).predictor_labels == {
        "version": "v7"
    }


def test_metrics_labels_come_from_settings():
    from unitserve.metrics.worker import deployment_labels

    labels = deployment_labels(
        parse(
            environ={
                "PREDICTIVE_UNIT_ID": "clf",
                "PREDICTIVE_UNIT_IMAGE": "reg:5000/img:1.2",
                "PREDICTOR_LABELS": '{"version": "v7"}',
            }
        )
    )
    assert labels["model_name"] == "clf"
    assert (labels["model_image"], labels["model_version"]) == ("reg:5000/img", "1.2")
    assert labels["predictor_version"] == "v7"
    assert labels["predictor_name"] == labels["deployment_name"] == "NOT_IMPLEMENTED"


def test_engine_config_comes_from_settings():
    from unitserve.engine import EngineConfig

    config = EngineConfig.of(parse())
    assert (config.unit_id, config.unit_image) == (None, "NOT_IMPLEMENTED:NOT_IMPLEMENTED")
    assert config.include_metrics and config.record_rewards
    config = EngineConfig.of(
        parse(environ={"PREDICTIVE_UNIT_ID": "clf", "INCLUDE_METRICS_IN_CLIENT_RESPONSE": "no"})
    )
    assert (config.unit_id, config.include_metrics) == ("clf", False)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1, got 0"),
        (["--http-port", "70000"], "--http-port must be at most 65535, got 70000"),
        (["--grpc-port", "65536"], "--grpc-port must be at most 65535, got 65536"),
        (["--metrics-port", "-1"], "--metrics-port must be at least 0, got -1"),
        (["--request-timeout", "-1"], "--request-timeout must be at least 0, got -1"),
        (["--http-timeout", "-0.5"], "--http-timeout must be at least 0, got -0.5"),
        (["--graceful-timeout", "-3"], "--graceful-timeout must be at least 0, got -3"),
        (["--request-timeout", "nan"], "--request-timeout must be a finite number, got nan"),
        (["--threads", "-1"], "--threads must be at least 0, got -1"),
    ],
)
def test_a_flag_out_of_range_names_the_flag(argv, message):
    with pytest.raises(OutOfRange) as raised:
        parse(*argv)
    assert str(raised.value) == message
    assert raised.value.exit_status == 1


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GUNICORN_WORKERS": "0"}, "environment variable GUNICORN_WORKERS must be at least 1"),
        (
            {"PREDICTIVE_UNIT_HTTP_SERVICE_PORT": "70000"},
            "environment variable PREDICTIVE_UNIT_HTTP_SERVICE_PORT must be at most 65535",
        ),
        (
            {"UNITSERVE_REQUEST_TIMEOUT": "-1"},
            "environment variable UNITSERVE_REQUEST_TIMEOUT must be at least 0",
        ),
    ],
)
def test_a_variable_out_of_range_names_the_variable(environ, message):
    with pytest.raises(OutOfRange, match=message):
        parse(environ=environ)


def test_a_flag_wins_over_a_bad_variable_only_when_given():
    assert parse("--workers", "2", environ={"GUNICORN_WORKERS": "0"}).workers == 2


def test_an_unreadable_variable_is_a_usage_error():
    with pytest.raises(SettingsError) as raised:
        parse(environ={"GUNICORN_WORKERS": "many"})
    assert raised.value.exit_status == 2
    assert "GUNICORN_WORKERS='many'" in str(raised.value)


@pytest.mark.parametrize("flag", ["--http-port", "--grpc-port", "--metrics-port"])
def test_port_zero_still_means_any_free_port(flag):
    assert getattr(parse(flag, "0"), flag[2:].replace("-", "_")) == 0


@pytest.mark.parametrize("flag", ["--http-timeout", "--request-timeout", "--graceful-timeout"])
def test_zero_means_no_limit_for_every_timeout(flag):
    opt = next(o for o in settings.OPTIONS if o.flag == flag)
    assert getattr(parse(flag, "0"), opt.name) == 0.0
    assert "(0: no limit)" in opt.help


@pytest.mark.parametrize(("grace", "limited"), [(0.0, False), (2.0, True)])
def test_graceful_timeout_zero_never_kills_the_workers(grace, limited):
    import math
    import socket
    from dataclasses import replace

    from unitserve.runtime.supervisor import Supervisor

    supervisor = Supervisor(replace(settings.defaults("Model"), graceful_timeout=grace))
    supervisor.stopping_at = None
    supervisor.http_socket = socket.socket()
    supervisor._begin_stop("SIGTERM")
    assert math.isfinite(cast(float, supervisor.stopping_at)) == limited
