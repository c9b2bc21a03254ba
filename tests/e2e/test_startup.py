"""Start-up: importing the class, parameters, and one clear line for user mistakes."""

from __future__ import annotations

import json

import pytest

from ..conftest import run_cli


def params(*items):
    return json.dumps([{"name": n, "value": v, "type": t} for n, v, t in items])


def test_typed_parameters(fresh_server):
    server = fresh_server(
        "Params",
        "--parameters",
        params(
            ("count", "3", "INT"),
            ("ratio", "0.5", "FLOAT"),
            ("name", "x", "STRING"),
            ("flag", "false", "BOOL"),
            ("config", '{"k": [1]}', "JSON"),
        ),
        grpc=False,
    )
    assert server.post("/predict", json={"strData": ""}).json()["jsonData"] == {
        "count": {"value": 3, "type": "int"},
        "ratio": {"value": 0.5, "type": "float"},
        "name": {"value": "x", "type": "str"},
        "flag": {"value": False, "type": "bool"},
        "config": {"value": {"k": [1]}, "type": "dict"},
    }


def test_parameters_from_environment(fresh_server):
    server = fresh_server(
        "Params", env={"PREDICTIVE_UNIT_PARAMETERS": params(("count", "7", "INT"))}, grpc=False
    )
    assert server.post("/predict", json={"strData": ""}).json()["jsonData"] == {
        "count": {"value": 7, "type": "int"}
    }


def test_pkg_module_class(fresh_server):
    server = fresh_server("pkg.sub.models.Nested", grpc=False)
    assert server.post("/predict", json={"strData": ""}).json()["jsonData"] == {"nested": True}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NoSuchModel"], "cannot import the model module 'NoSuchModel'"),
        (["pkg.sub.models.Missing"], "module 'pkg.sub.models' has no class 'Missing'"),
        (
            ["Params", "--parameters", params(("count", "1.5", "INT"))],
            "Bad model parameter: count with value '1.5' can't be parsed as a INT",
        ),
        (
            ["Params", "--parameters", params(("flag", "maybe", "BOOL"))],
            "can't be parsed as a BOOL",
        ),
        (
            ["Params", "--parameters", params(("count", "1", "DATE"))],
            "Bad model parameter type: DATE",
        ),
        (
            ["Params", "--parameters", params(("nope", "1", "INT"))],
            "unexpected keyword argument 'nope'",
        ),
        (["Params", "--parameters", "not json"], "--parameters is not valid JSON"),
        (
            ["Broken", "--parameters", params(("fail", "yes", "STRING"))],
            "Broken() constructor raised RuntimeError: cannot open weights.bin",
        ),
    ],
)
def test_user_mistakes_exit_nonzero_with_one_line(args, message):
    result = run_cli("serve", *args, "--http-port", "0", "--grpc-workers", "0", timeout=60)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("unitserve ")


def test_help_names_env_vars_and_defaults():
    out = run_cli("serve", "--help").stdout
    for text in (
        "--http-port",
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT",
        "default: 9000",
        "--workers",
        "GUNICORN_WORKERS",
        "--grpc-workers",
        "--host",
    ):
        assert text in out


def test_port_in_use_is_one_clear_line(fresh_server):
    server = fresh_server("Identity", grpc=False)
    result = run_cli(
        "serve",
        "Identity",
        "--host",
        "127.0.0.1",
        "--http-port",
        str(server.http_port),
        "--grpc-workers",
        "0",
    )
    assert result.returncode != 0
    assert f"REST port {server.http_port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_flag_value_is_one_readable_line():
    result = run_cli("serve", "Identity", "--workers", "x")
    assert result.returncode == 2
    assert "expected a whole number, got 'x'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "0"], {}, "--workers must be at least 1, got 0"),
        (["--http-port", "70000"], {}, "--http-port must be at most 65535, got 70000"),
        (["--metrics-port", "-1"], {}, "--metrics-port must be at least 0, got -1"),
        (["--request-timeout", "-1"], {}, "--request-timeout must be at least 0, got -1"),
        (
            [],
            {"PREDICTIVE_UNIT_GRPC_SERVICE_PORT": "65536"},
            "environment variable PREDICTIVE_UNIT_GRPC_SERVICE_PORT must be at most 65535, "
            "got 65536",
        ),
    ],
)
def test_a_value_out_of_range_exits_1_with_one_line(args, env, message):
    result = run_cli("serve", "Identity", "--host", "127.0.0.1", *args, env=env, timeout=30)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [f"unitserve serve: error: {message}"]
