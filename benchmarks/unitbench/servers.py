"""The server table: every server under test is one entry, started by a command template.

Placeholders in `argv` and `env`: {http} {grpc} {metrics} (ports), {bench} (benchmarks/),
{project} (the repository), {venvs} (benchmarks/.venvs), {python} (the harness' interpreter,
i.e. the project's .venv, whose uvicorn/uvloop/httptools/orjson/numpy/grpcio the ceilings use).
"""

import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from unitbench.paths import BENCH_DIR, MODELS_DIR, PROJECT_DIR, SCRATCH_DIR, VENVS_DIR
from unitbench.payloads import SELDON_PAYLOADS, V2_ONLY, Body, body

ALL = SELDON_PAYLOADS  # the Seldon-protocol rows; the V2 rows are asked for by name
REST, GRPC = ("rest",), ("grpc",)
# unitserve from the interpreter running the harness (make: the project's .venv), unless overridden
UNITSERVE_BIN = os.environ.get("UNITSERVE_BIN", str(Path(sys.executable).parent / "unitserve"))


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int


@dataclass(frozen=True)
class ServerSpec:
    name: str
    role: str  # "unitserve", "reference" or "ceiling"
    title: str  # one line for the report
    argv: tuple[str, ...]
    protos: tuple[str, ...] = ("rest", "grpc")
    payloads: tuple[str, ...] = ALL
    skip: tuple[str, ...] = ()  # "proto:payload" cells left out (to keep `make bench` short)
    family: str = "seldon"  # wire form of the bodies: "seldon" or "v2"
    check: str = "seldon"  # see checks.py
    cwd: Path = BENCH_DIR
    env: dict[str, str] = field(default_factory=dict)
    requires: str = ""  # a file that must exist for the server to be runnable
    venv_python: str = ""  # interpreter whose package versions the report lists
    rest_path: str = ""  # another URL path for the same bodies (a graph's external API)
    grpc_path: str = ""  # another /package.Service/Method for the same bodies

    def request(self, payload: str, proto: str) -> Body | None:
        """The body this server gets for a payload, at the path it serves it on."""
        req = body(payload, proto, self.family)
        path = self.grpc_path if proto == "grpc" else self.rest_path
        return dataclasses.replace(req, path=path) if req and path else req

    def fill(self, text: str, ports: Ports) -> str:
        return text.format(
            http=ports.http,
            grpc=ports.grpc,
            metrics=ports.metrics,
            bench=BENCH_DIR,
            project=PROJECT_DIR,
            venvs=VENVS_DIR,
            python=sys.executable,
        )

    def command(self, ports: Ports) -> list[str]:
        return [self.fill(a, ports) for a in self.argv]

    def environment(self, ports: Ports) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env.update({k: self.fill(v, ports) for k, v in self.env.items()})
        return env

    def missing(self) -> str:
        """Why this server cannot run here ("" if it can)."""
        path = self.fill(self.requires, Ports(0, 0, 0)) if self.requires else ""
        return f"{path} not found" if path and not Path(path).exists() else ""

    def runs(self, proto: str, payload: str) -> bool:
        return (
            proto in self.protos
            and payload in self.payloads
            and f"{proto}:{payload}" not in self.skip
        )


SELDON_MODEL = MODELS_DIR / "seldon"
MLSERVER_ENV = {
    "MLSERVER_HOST": "127.0.0.1",
    "MLSERVER_METRICS_DIR": str(SCRATCH_DIR / "mlserver-metrics"),
    "MLSERVER_HTTP_PORT": "{http}",
    "MLSERVER_GRPC_PORT": "{grpc}",
    "MLSERVER_METRICS_PORT": "{metrics}",
}

# The prepackaged servers' rows (make bench-servers): iris models from
# models/servers/prepare.py, answered with a plain "status" check (the answer is the
# model's, not the request's numbers).
SERVER_MODELS = SCRATCH_DIR / "servers"
STAND_INS = PROJECT_DIR / "tests" / "fixtures" / "seldon_servers"
_SERVE_FLAGS = ("--http-port", "{http}", "--grpc-port", "{grpc}", "--metrics-port", "{metrics}")
# 64 connections with adaptive batching in both: unitserve's and MLServer's (32, 10 ms).
_BATCH_FLAGS = ("--max-batch-size", "32", "--max-batch-time", "10")


def _unitserve_server(name: str, library: str, v2: bool, batch: bool = False) -> "ServerSpec":
    file_name = {"sklearn": "model.joblib", "xgboost": "model.json"}[library]
    implementation = f"{library.upper()}_SERVER"
    argv: tuple[str, ...] = (
        UNITSERVE_BIN,
        "serve",
        implementation,
        "--model-uri",
        str(SERVER_MODELS / library),
    )
    argv += ("--model-name", "identity") if v2 else ()
    argv += _BATCH_FLAGS if batch else ()
    return ServerSpec(
        name,
        "unitserve",
        f"unitserve serve {implementation}{' --max-batch-size 32' if batch else ''}, "
        f"iris {library} model{', Open Inference Protocol' if v2 else ''}",
        (*argv, *_SERVE_FLAGS),
        protos=REST,
        payloads=("v2-small",) if v2 else ("small",),
        family="v2" if v2 else "seldon",
        check="status",
        cwd=SCRATCH_DIR,
        requires=str(SERVER_MODELS / library / file_name),
        venv_python=str(Path(UNITSERVE_BIN).parent / "python"),
    )


def _mlserver_server(name: str, library: str, batch: bool = False) -> "ServerSpec":
    folder = SERVER_MODELS / f"mlserver-{library}{'-batch' if batch else ''}"
    return ServerSpec(
        name,
        "reference",
        f"MLServer 1.7 mlserver-{library} runtime, iris model"
        f"{', adaptive batching 32 / 10 ms' if batch else ''} (parallel_workers=0)",
        ("{venvs}/mlserver-runtimes/bin/mlserver", "start", str(folder)),
        protos=REST,
        payloads=("v2-small",),
        family="v2",
        check="status",
        cwd=SCRATCH_DIR,
        env={**MLSERVER_ENV, "MLSERVER_PARALLEL_WORKERS": "0", "MLSERVER_DEBUG": "false"},
        requires=str(folder / "identity" / "model-settings.json"),
        venv_python="{venvs}/mlserver-runtimes/bin/python",
    )


def _library_ceiling(name: str, library: str, v2: bool) -> "ServerSpec":
    file_name = {"sklearn": "model.joblib", "xgboost": "model.json"}[library]
    model = SERVER_MODELS / library / file_name
    mode = f"{'v2' if v2 else 'seldon'}-{library}"
    what = "predict (loaded as MLServer loads it)" if v2 else "predict_proba"
    return ServerSpec(
        name,
        "ceiling",
        f"uvloop + httptools + the least a server must do: orjson.loads -> numpy -> the iris "
        f"{library} model's {what} -> orjson.dumps, in the answer's form",
        (
            "{python}",
            "-m",
            "ceilings.raw_http",
            "--mode",
            mode,
            "--model",
            str(model),
            "--port",
            "{http}",
        ),
        protos=REST,
        payloads=("v2-small",) if v2 else ("small",),
        family="v2" if v2 else "seldon",
        check="status",
        requires=str(model),
        venv_python="{python}",
    )


PREPACKAGED_SERVERS = (
    _library_ceiling("ceiling-sklearn", "sklearn", v2=False),
    _library_ceiling("ceiling-sklearn-v2", "sklearn", v2=True),
    _library_ceiling("ceiling-xgboost-v2", "xgboost", v2=True),
    _unitserve_server("unitserve-sklearn", "sklearn", v2=False),
    ServerSpec(
        "seldon-sklearn",
        "reference",
        "seldon-core-microservice running the stand-in SKLearnServer (tests/fixtures/"
        "seldon_servers), iris model, predict_proba (defaults)",
        (
            "{venvs}/seldon-core-servers/bin/seldon-core-microservice",
            "SKLearnServer",
            *_SERVE_FLAGS,
            "--parameters",
            # Arguments are templates ({http}, ...): the JSON's own braces are doubled.
            json.dumps(
                [{"name": "model_uri", "value": str(SERVER_MODELS / "sklearn"), "type": "STRING"}]
            )
            .replace("{", "{{")
            .replace("}", "}}"),
        ),
        protos=REST,
        payloads=("small",),
        check="status",
        cwd=STAND_INS,
        requires=str(SERVER_MODELS / "sklearn" / "model.joblib"),
        venv_python="{venvs}/seldon-core-servers/bin/python",
    ),
    _unitserve_server("unitserve-sklearn-v2", "sklearn", v2=True),
    _mlserver_server("mlserver-sklearn", "sklearn"),
    _unitserve_server("unitserve-xgboost-v2", "xgboost", v2=True),
    _mlserver_server("mlserver-xgboost", "xgboost"),
    _unitserve_server("unitserve-sklearn-v2-batch", "sklearn", v2=True, batch=True),
    _mlserver_server("mlserver-sklearn-batch", "sklearn", batch=True),
)

SERVERS: dict[str, ServerSpec] = {
    s.name: s
    for s in (
        ServerSpec(
            "unitserve",
            "unitserve",
            "unitserve serve IdentityModel (defaults)",
            (
                UNITSERVE_BIN,
                "serve",
                "IdentityModel",
                "--http-port",
                "{http}",
                "--grpc-port",
                "{grpc}",
                "--metrics-port",
                "{metrics}",
            ),
            cwd=SELDON_MODEL,
            requires=UNITSERVE_BIN,
            venv_python=str(Path(UNITSERVE_BIN).parent / "python"),
        ),
        ServerSpec(
            "unitserve-v2",
            "unitserve",
            "unitserve serve IdentityModel --model-name identity, Open Inference Protocol rows"
            " (defaults otherwise)",
            (
                UNITSERVE_BIN,
                "serve",
                "IdentityModel",
                "--model-name",
                "identity",
                "--http-port",
                "{http}",
                "--grpc-port",
                "{grpc}",
                "--metrics-port",
                "{metrics}",
            ),
            payloads=V2_ONLY,
            family="v2",
            check="v2",
            cwd=SELDON_MODEL,
            requires=UNITSERVE_BIN,
            venv_python=str(Path(UNITSERVE_BIN).parent / "python"),
        ),
        ServerSpec(
            "unitserve-graph",
            "unitserve",
            "unitserve graph: a three-node identity chain (transformer -> model -> output"
            " transformer) in one process, through the orchestrator's external API (defaults)",
            (
                UNITSERVE_BIN,
                "graph",
                str(MODELS_DIR / "graph" / "chain.yaml"),
                "--http-port",
                "{http}",
                "--grpc-port",
                "{grpc}",
                "--metrics-port",
                "{metrics}",
            ),
            payloads=("small",),
            cwd=MODELS_DIR / "graph",
            requires=UNITSERVE_BIN,
            venv_python=str(Path(UNITSERVE_BIN).parent / "python"),
            rest_path="/api/v1.0/predictions",
            grpc_path="/seldon.protos.Seldon/Predict",
        ),
        ServerSpec(
            "seldon",
            "reference",
            "seldon-core-microservice IdentityModel (defaults: gunicorn 1 sync worker,"
            " gRPC 1 process x 1 thread)",
            (
                "{venvs}/seldon/bin/seldon-core-microservice",
                "IdentityModel",
                "--http-port",
                "{http}",
                "--grpc-port",
                "{grpc}",
                "--metrics-port",
                "{metrics}",
            ),
            cwd=SELDON_MODEL,
            requires="{venvs}/seldon/bin/seldon-core-microservice",
            venv_python="{venvs}/seldon/bin/python",
        ),
        ServerSpec(
            "seldon-graph",
            "reference",
            "the same chain served the Seldon way: each node a seldon-core-microservice"
            " (defaults), called in turn over REST by an orchestrating client"
            " (models/graph/seldon_way.py, standing in for the Go executor)",
            (
                "{venvs}/seldon/bin/python",
                str(MODELS_DIR / "graph" / "seldon_way.py"),
                "--http-port",
                "{http}",
            ),
            protos=REST,  # the orchestrator speaks REST only, as the executor does to nodes
            payloads=("small",),
            cwd=MODELS_DIR / "graph",
            requires="{venvs}/seldon/bin/seldon-core-microservice",
            venv_python="{venvs}/seldon/bin/python",
            rest_path="/api/v1.0/predictions",
        ),
        ServerSpec(
            "mlserver",
            "reference",
            "mlserver start, custom identity runtime, V2 protocol (defaults: 1 parallel worker)",
            ("{venvs}/mlserver/bin/mlserver", "start", str(MODELS_DIR / "mlserver")),
            payloads=("small", "medium", "large", "v2-small", "v2-large"),
            family="v2",
            check="v2",
            env=MLSERVER_ENV,
            cwd=SCRATCH_DIR,
            requires="{venvs}/mlserver/bin/mlserver",
            venv_python="{venvs}/mlserver/bin/python",
        ),
        ServerSpec(
            "mlserver-pw0",
            "reference",
            "MLServer's fastest configuration: parallel_workers=0 (inference in the HTTP/gRPC"
            " process), debug=false",
            ("{venvs}/mlserver/bin/mlserver", "start", str(MODELS_DIR / "mlserver")),
            payloads=("small", "medium", "v2-small", "v2-large"),
            skip=("grpc:medium",),
            family="v2",
            check="v2",
            cwd=SCRATCH_DIR,
            env={**MLSERVER_ENV, "MLSERVER_PARALLEL_WORKERS": "0", "MLSERVER_DEBUG": "false"},
            requires="{venvs}/mlserver/bin/mlserver",
            venv_python="{venvs}/mlserver/bin/python",
        ),
        ServerSpec(
            "kserve",
            "reference",
            "KServe ModelServer (kserve 0.21), identity Model, Open Inference Protocol"
            " (defaults: 1 worker, latency logging on)",
            (
                "{venvs}/kserve/bin/python",
                str(MODELS_DIR / "kserve" / "identity_server.py"),
                "--http_port",
                "{http}",
                "--grpc_port",
                "{grpc}",
            ),
            payloads=V2_ONLY,
            family="v2",
            check="v2",
            cwd=SCRATCH_DIR,
            requires="{venvs}/kserve/bin/python",
            venv_python="{venvs}/kserve/bin/python",
        ),
        ServerSpec(
            "asgi-echo",
            "ceiling",
            "bare ASGI app on uvicorn (httptools, uvloop) echoing the body",
            ("{python}", "-m", "ceilings.asgi_echo", "--port", "{http}"),
            protos=REST,
            check="echo",
            venv_python="{python}",
        ),
        ServerSpec(
            "raw-fixed",
            "ceiling",
            "uvloop + httptools protocol: parse the request, fixed reply",
            ("{python}", "-m", "ceilings.raw_http", "--mode", "fixed", "--port", "{http}"),
            protos=REST,
            payloads=("small",),
            check="status",
            venv_python="{python}",
        ),
        ServerSpec(
            "raw-codec",
            "ceiling",
            "uvloop + httptools + codec round trip: orjson.loads -> numpy -> orjson.dumps",
            ("{python}", "-m", "ceilings.raw_http", "--mode", "codec", "--port", "{http}"),
            protos=REST,
            venv_python="{python}",
        ),
        ServerSpec(
            "grpc-aio-echo",
            "ceiling",
            "grpc.aio server echoing the request bytes (no protobuf)",
            (
                "{python}",
                "-m",
                "ceilings.grpc_echo",
                "--server",
                "aio",
                "--work",
                "raw",
                "--port",
                "{grpc}",
            ),
            protos=GRPC,
            check="echo",
            venv_python="{python}",
        ),
        ServerSpec(
            "grpc-aio-proto",
            "ceiling",
            "grpc.aio server: parse the SeldonMessage, serialise it back",
            (
                "{python}",
                "-m",
                "ceilings.grpc_echo",
                "--server",
                "aio",
                "--work",
                "proto",
                "--port",
                "{grpc}",
            ),
            protos=GRPC,
            payloads=("small", "medium", "medium-tensor"),
            venv_python="{python}",
        ),
        ServerSpec(
            "grpc-sync-proto",
            "ceiling",
            "sync grpc.server, 1-thread pool: parse the SeldonMessage, serialise it back",
            (
                "{python}",
                "-m",
                "ceilings.grpc_echo",
                "--server",
                "sync",
                "--work",
                "proto",
                "--port",
                "{grpc}",
            ),
            protos=GRPC,
            payloads=("small", "medium-tensor"),
            venv_python="{python}",
        ),
        *PREPACKAGED_SERVERS,
    )
}

GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(SERVERS),
    "references": ("seldon", "seldon-graph", "mlserver", "mlserver-pw0", "kserve"),
    # a local graph against one node served alone and against the graph served the Seldon way
    "graph": ("unitserve", "unitserve-graph", "seldon-graph"),
    # the Open Inference Protocol rows: unitserve vs MLServer (both settings) and KServe
    "v2": ("unitserve-v2", "mlserver", "mlserver-pw0", "kserve"),
    "ceilings": tuple(n for n, s in SERVERS.items() if s.role == "ceiling"),
    "quick": ("unitserve", "seldon"),
    "none": (),  # e.g. `make bench-tools`: the tools rows alone
}


def select(names: str) -> list[ServerSpec]:
    """Comma-separated server names and/or group names (all, references, ceilings, quick, v2)."""
    chosen: list[str] = []
    for name in filter(None, (n.strip() for n in names.split(","))):
        for member in GROUPS.get(name, (name,)):
            if member not in SERVERS:
                known = ", ".join([*SERVERS, *GROUPS])
                raise SystemExit(f"unknown server {member!r}; known: {known}")
            if member not in chosen:
                chosen.append(member)
    return [SERVERS[n] for n in chosen]
