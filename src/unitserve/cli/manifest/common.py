"""What every manifest target shares: names, ports, probes, resources, the security
context, and the one-line error type."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitserve.cli.dockerfile import USER_ID
from unitserve.cli.generated import PackagingError

__all__ = [
    "PORTS",
    "PackagingError",
    "Request",
    "Target",
    "dns_name",
    "probe",
    "resources",
    "security_context",
]

# unitserve's REST, gRPC and metrics ports, named as Seldon's operator reads them.
PORTS = {"http": 9000, "grpc": 5000, "metrics": 6000}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def dns_name(text: str) -> str:
    """A Kubernetes DNS-1123 label from a folder or class name (``My_Model`` → ``my-model``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    if not _DNS_LABEL.match(name):
        raise PackagingError(f"cannot make a Kubernetes name from {text!r}: give one with --name")
    return name


def probe(path: str, period: int, failures: int, port: str | int = "http") -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def component_probes() -> dict[str, dict[str, Any]]:
    """unitserve's honest probes on its REST port: startup and liveness on ``/live``,
    readiness on ``/ready`` (503 until load() has finished in a worker)."""
    return {
        # Slow imports and load() are covered by the startup probe (up to 5 minutes),
        # so that liveness can be strict afterwards.
        "startupProbe": probe("/live", period=5, failures=60),
        "livenessProbe": probe("/live", period=10, failures=3),
        # No traffic before the model is loaded.
        "readinessProbe": probe("/ready", period=5, failures=3),
    }


def resources(cpu: str, memory: str) -> dict[str, Any]:
    # Placeholders: size them to the model (memory grows with --workers).
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def security_context() -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": USER_ID, "allowPrivilegeEscalation": False}


def named_ports() -> list[dict[str, Any]]:
    return [
        {"name": port, "containerPort": number, "protocol": "TCP"} for port, number in PORTS.items()
    ]


@dataclass(frozen=True)
class Request:
    """What the command line asks for one component folder."""

    name: str  # a DNS label
    image: str
    kind: str  # the graph node type (SERVICE_TYPE)
    source: str  # for the generated header: "folder (TYPE)"
    transport: str | None
    replicas: int
    cpu: str
    memory: str
    directory: Path  # the component folder
    storage_uri: str | None = None  # --target seldon-core-2: where the agent copies from
    server: str = "unitserve"  # --target seldon-core-2: the Server's name
    implementation: str | None = None  # a prepackaged server (SKLEARN_SERVER, ...)
    model_uri: str | None = None  # its modelUri


@dataclass(frozen=True)
class Target:
    """One kind of manifest: the file it writes, what it says in --help, and how it
    turns a `Request` into the file's text (raising PackagingError for what it cannot
    deploy). `companion`, when given, names a second file the target needs in the folder
    (path and text, or None when the folder has it already)."""

    file: str
    summary: str
    render: Callable[[Request], str]
    companion: Callable[[Request], tuple[Path, str] | None] | None = None
