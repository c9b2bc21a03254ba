"""--log-format json: every line the server writes is one JSON object, access lines
with their request fields; the text format stays Seldon's line."""

from __future__ import annotations

import json
import re

import grpc
import httpx

from unitserve.proto import prediction_pb2 as pb

from ..conftest import run_cli, wait_until

ONE = {"data": {"ndarray": [[1.0]]}}
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - [\w.]+:\w+:\d+ - (DEBUG|INFO|WARNING|ERROR):  "
)
ACCESS_FIELDS = {"method", "path", "status", "duration_ms", "puid", "trace_id"}


def _lines(server) -> list[dict]:
    """Every line of the server's output, each parsed as JSON (fails on any other)."""
    out = []
    for line in server.log().splitlines():
        parsed = json.loads(line)
        assert isinstance(parsed, dict), line
        out.append(parsed)
    return out


def test_json_lines_with_access_fields(fresh_server):
    server = fresh_server("Failing", "--access-log", env={"UNITSERVE_LOG_FORMAT": "json"})
    assert httpx.post(f"{server.url}/predict", json=ONE).status_code == 500  # logs a traceback
    assert httpx.get(f"{server.url}/nowhere").status_code == 404
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            "/seldon.protos.Model/Predict",
            request_serializer=pb.SeldonMessage.SerializeToString,
            response_deserializer=pb.SeldonMessage.FromString,
        )
        try:
            call(pb.SeldonMessage(), timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() != grpc.StatusCode.OK

    def access_lines() -> list[dict]:
        found = [line for line in _lines(server) if line["logger"] == "unitserve.access"]
        return found if len(found) >= 3 else []

    lines = wait_until(access_lines, timeout=10)
    every = _lines(server)
    for line in every:
        assert {"time", "level", "message", "logger"} <= line.keys(), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]), line
        assert line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    assert any(line.get("exception") for line in every), "the 500's traceback"
    by_path = {line["path"]: line for line in lines}
    rest = by_path["/predict"]
    assert rest.keys() >= ACCESS_FIELDS
    assert (rest["method"], rest["status"], rest["trace_id"]) == ("POST", 500, None)
    assert isinstance(rest["duration_ms"], float) and rest["duration_ms"] >= 0
    assert "POST /predict 500" in rest["message"]  # the text line's words, kept
    assert (by_path["/nowhere"]["method"], by_path["/nowhere"]["status"]) == ("GET", 404)
    rpc = by_path["/seldon.protos.Model/Predict"]
    assert rpc["method"] == "POST" and isinstance(rpc["status"], str) and rpc["status"] != "OK"
    assert rpc["protocol"] == "grpc"


def test_access_lines_carry_the_answer_puid(fresh_server):
    server = fresh_server("Identity", "--access-log", "--log-format", "json")
    answer = httpx.post(f"{server.url}/predict", json={**ONE, "meta": {"puid": "rest-puid"}})
    assert answer.json()["meta"]["puid"] == "rest-puid"
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(
            "/seldon.protos.Model/Predict",
            request_serializer=pb.SeldonMessage.SerializeToString,
            response_deserializer=pb.SeldonMessage.FromString,
        )
        message = pb.SeldonMessage()
        message.data.ndarray.values.add().list_value.values.add().number_value = 1.0
        message.meta.puid = "grpc-puid"
        assert call(message, timeout=10).meta.puid == "grpc-puid"

    def by_path() -> dict[str, dict]:
        found = {
            line["path"]: line for line in _lines(server) if line["logger"] == "unitserve.access"
        }
        return found if {"/predict", "/seldon.protos.Model/Predict"} <= found.keys() else {}

    lines = wait_until(by_path, timeout=10)
    assert lines["/predict"]["puid"] == "rest-puid"
    assert lines["/seldon.protos.Model/Predict"]["puid"] == "grpc-puid"


def test_text_lines_unchanged(fresh_server):
    server = fresh_server("Identity", "--access-log", "--log-format", "text", grpc=False)
    assert httpx.post(f"{server.url}/predict", json=ONE).status_code == 200
    wait_until(lambda: "POST /predict 200" in server.log(), timeout=10)
    lines = [line for line in server.log().splitlines() if TEXT_LINE.match(line)]
    assert lines
    access = [line for line in lines if "unitserve.access" in line and "/predict" in line]
    assert re.search(r"INFO:  127\.0\.0\.1 POST /predict 200 \d+\.\d\dms$", access[0])
    assert not any(line.lstrip().startswith("{") for line in server.log().splitlines())


def test_an_unknown_format_is_refused_with_one_line():
    flag = run_cli("serve", "Identity", "--log-format", "xml")
    assert flag.returncode == 2 and "--log-format" in flag.stderr, flag.stderr
    env = run_cli("serve", "Identity", env={"UNITSERVE_LOG_FORMAT": "xml"})
    assert env.returncode == 2 and "UNITSERVE_LOG_FORMAT" in env.stderr, env.stderr
