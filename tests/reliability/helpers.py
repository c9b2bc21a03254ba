"""Small helpers shared by the fault tests: polling, the metrics endpoint, /proc."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ..conftest import wait_until
from ..e2e.metrics_text import samples


def params(**values: str) -> str:
    """A --parameters JSON list of STRING parameters."""
    return json.dumps([{"name": k, "value": v, "type": "STRING"} for k, v in values.items()])


def scrape(server: Any) -> str:
    r = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    return r.text


def worker_pids(server: Any) -> dict[str, int]:
    """{worker_id: pid} of the live workers, from unitserve_worker_info."""
    return {
        labels["worker_id"]: int(labels["pid"])
        for name, labels, _ in samples(scrape(server))
        if name == "unitserve_worker_info"
    }


def wait_for_workers(server: Any, count: int, timeout: float = 60.0) -> dict[str, int]:
    """{worker_id: pid} once exactly `count` workers run."""

    def check() -> dict[str, int] | None:
        pids = worker_pids(server)
        return pids if len(pids) == count else None

    return wait_until(check, timeout)


def wait_workers_ready(server: Any, count: int, timeout: float = 60.0) -> set[int]:
    """Pids of the workers that logged "ready" (load() done, gRPC listening), once
    `count` have: REST answers from the first ready worker, but gRPC clients that
    connect before every worker listens all stick to the first."""

    def check() -> set[int] | None:
        pids = set(re.findall(r"worker \d+ ready \(pid (\d+)\)", server.log()))
        return {int(p) for p in pids} if len(pids) >= count else None

    return wait_until(check, timeout)


def session_pids(sid: int) -> list[int]:
    """Processes of session `sid` still alive (the test servers start a session of their
    own, so this is the supervisor and every worker it forked), zombies excluded."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp session ...; comm may contain spaces and parentheses
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def refuses(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


def grpc_health(target: str, timeout: float = 5.0) -> str:
    """The standard health service's answer for the whole server, or the error code."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as exc:
            return exc.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def error_status(body: bytes) -> dict[str, Any]:
    """The ``status`` object of a Seldon JSON error body (fails if the body is not one)."""
    value = json.loads(body)
    assert isinstance(value, dict) and isinstance(value.get("status"), dict), body[:300]
    return value["status"]


def grpc_predict_json(target: str, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Model/Predict with a SeldonMessage given as its JSON form; the answer as JSON."""
    from google.protobuf import json_format

    from unitserve.proto import prediction_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        predict = channel.unary_unary(
            "/seldon.protos.Model/Predict",
            request_serializer=pb.SeldonMessage.SerializeToString,
            response_deserializer=pb.SeldonMessage.FromString,
        )
        answer = predict(json_format.ParseDict(body, pb.SeldonMessage()), timeout=timeout)
    return json_format.MessageToDict(answer)
