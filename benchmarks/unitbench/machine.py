"""What the numbers were measured on: the machine, the tools and the packages of every server."""

import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from unitbench.servers import Ports, ServerSpec

PACKAGES = (
    "unitserve",
    "seldon-core",
    "mlserver",
    "flask",
    "werkzeug",
    "gunicorn",
    "fastapi",
    "uvicorn",
    "uvloop",
    "httptools",
    "orjson",
    "numpy",
    "grpcio",
    "protobuf",
    "prometheus-client",
)
VERSIONS_SCRIPT = """
import importlib.metadata as md, json, sys
out = {"python": sys.version.split()[0]}
for name in sys.argv[1:]:
    try:
        out[name] = md.version(name)
    except md.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _lscpu() -> dict[str, str]:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in text.splitlines())}


def _os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return platform.platform()
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)', text, re.M)
    return match.group(1) if match else platform.platform()


def _mem_total() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "?"


def describe() -> dict[str, str]:
    cpu = _lscpu()
    model = cpu.get("Model name", platform.processor())
    detail = ", ".join(
        f"{label} {cpu[key]}"
        for key, label in (
            ("CPU family", "family"),
            ("Model", "model"),
            ("Hypervisor vendor", "hypervisor"),
        )
        if key in cpu
    )
    return {
        "cpu": f"{model} ({detail})" if detail else model,
        "cores": f"{os.cpu_count()} online ({cpu.get('Thread(s) per core', '?')} thread/core)",
        "memory": _mem_total(),
        "kernel": platform.release(),
        "os": _os_name(),
        "harness python": sys.version.split()[0],
        "wrk": _first_line(["wrk", "-v"]).split(" Copyright")[0],
        "h2load": _first_line(["h2load", "--version"]),
    }


def package_versions(servers: list[ServerSpec]) -> dict[str, dict[str, str]]:
    """{server: {"python": ..., package: version}} for the interpreter each server runs on."""
    out: dict[str, dict[str, str]] = {}
    for spec in servers:
        python = spec.fill(spec.venv_python, Ports(0, 0, 0)) if spec.venv_python else ""
        if not python or not Path(python).exists():
            continue
        try:
            res = subprocess.run(
                [python, "-c", VERSIONS_SCRIPT, *PACKAGES],
                capture_output=True,
                text=True,
                timeout=60,
            )
            out[spec.name] = json.loads(res.stdout)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            continue
    return out
