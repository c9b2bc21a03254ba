"""The Dockerfile that `unitserve build` writes: its text, from a `Component` and the
build's choices (base image, extras, wheelhouse).

The image follows Seldon's s2i layout (code in ``/microservice``, the
``.s2i/environment`` variables in the image's environment, ports 9000/5000/6000)
so that a SeldonDeployment written for an s2i image works unchanged, and
starts with a bare ``unitserve serve``, which reads those variables. A repository
server's image (``--server``) runs ``unitserve start`` on MLServer's ports instead.

unitserve is on no package index: the build context holds a wheel of the running
unitserve (``.unitserve/``), and with ``--wheelhouse`` every other wheel the image
needs, so that it builds with no network at all. The Dockerfile installs into a
virtual environment, which works on ``python:3.x-slim`` and on Debian's own python3
(whose system interpreter refuses ``pip install``), in a stage of its own: the image
gets the environment, not the wheels nor pip. A second stage takes the code without
the wheels. In the image, layers go from the least to the most often changed — the
environment, then the code — so that editing the model rebuilds only the last layer.
The container runs as a numeric non-root user, which Kubernetes' ``runAsNonRoot`` can
verify (it cannot check a user name); the code stays owned by root.
"""

from __future__ import annotations

from unitserve.cli.component import Component
from unitserve.cli.generated import MARKER
from unitserve.version import __version__

DEFAULT_BASE_IMAGE = "python:3.11-slim"
APP_DIR = "/microservice"
VENV_DIR = "/opt/unitserve"
USER_ID = 1000
PORTS = (9000, 5000, 6000)  # REST, gRPC, metrics: unitserve's and Seldon's defaults
# `unitserve start`'s: MLServer's ports, and the models where MLServer's image has them.
SERVER_PORTS = (8080, 8081, 8082)
SERVER_MODELS_DIR = "/mnt/models"
WHEELS_DIR = ".unitserve"  # in the context: unitserve's wheel, and the wheelhouse folder
WHEELHOUSE = "wheelhouse"


def _quote(value: str) -> str:
    """A Dockerfile ENV value: double-quoted, with the characters Docker would
    interpret (``\\``, ``"``, ``$``) escaped."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _pip_install(what: str, wheelhouse: bool) -> str:
    """The pip command of the install stage: only the context's wheels with
    ``--wheelhouse`` (no network needed), else the index for what they lack."""
    where = f"--find-links /tmp/wheels --find-links /tmp/wheels/{WHEELHOUSE}"
    index = " --no-index" if wheelhouse else ""
    pip = f"{VENV_DIR}/bin/pip install --no-cache-dir --disable-pip-version-check{index}"
    return f"RUN {pip} \\\n    {where} {what}"


def dockerfile(
    component: Component,
    base_image: str = DEFAULT_BASE_IMAGE,
    extras: tuple[str, ...] = (),
    wheelhouse: bool = False,
) -> str:
    """The Dockerfile text for `component` (without the hash `write_generated` adds)."""
    unitserve = f"unitserve[{','.join(extras)}]" if extras else "unitserve"
    ports = PORTS if component.command == "serve" else SERVER_PORTS
    port = ports[0]
    what = (
        f"{component.model_name} ({component.service_type})"
        if component.command == "serve"
        else "a model repository server (`unitserve start`)"
    )
    lines = [
        f"{MARKER}build` {__version__} for {what}",
        f"# Build: docker build -t IMAGE:TAG .    Run: docker run -p {port}:{port} IMAGE:TAG",
        "# Edit it as you like: `unitserve build` then leaves it alone (unless --force).",
        "",
        "# 1. A virtual environment with unitserve and the model's requirements, from the",
        f"#    wheels in {WHEELS_DIR}/. Only the environment goes into the image (no wheels,",
        "#    no pip).",
        f"FROM {base_image} AS install",
        f"RUN python3 -m venv {VENV_DIR}",
        f"COPY {WHEELS_DIR}/ /tmp/wheels/",
        _pip_install(_quote(f"{unitserve}=={__version__}"), wheelhouse),
    ]
    if component.has_requirements:
        lines += [
            "COPY requirements.txt /tmp/",
            _pip_install("-r /tmp/requirements.txt", wheelhouse),
        ]
    lines += [
        f"RUN {VENV_DIR}/bin/python -m pip uninstall --yes --quiet pip",
        "",
        "# 2. The code without the wheels, readable by every user.",
        f"FROM {base_image} AS code",
        f"COPY . {APP_DIR}/",
        f"RUN rm -rf {APP_DIR}/{WHEELS_DIR} && chmod -R a+rX,go-w {APP_DIR}",
        "",
        "# 3. The image: least often changed first, the code last.",
        f"FROM {base_image}",
        "ENV PYTHONUNBUFFERED=1 \\",
        "    PYTHONDONTWRITEBYTECODE=1 \\",
        f"    VIRTUAL_ENV={VENV_DIR} \\",
        f'    PATH="{VENV_DIR}/bin:$PATH"',
        "# A numeric user, so that Kubernetes' runAsNonRoot can verify it is not root.",
        f"RUN useradd --uid {USER_ID} --user-group --create-home --shell /usr/sbin/nologin "
        "unitserve",
    ]
    if "lightgbm" in extras:
        lines += [
            "# LightGBM's library loads the system's OpenMP runtime (libgomp.so.1), which",
            "# slim images lack: installed from the base image's packages when it is missing",
            "# (which needs the network, or a base image that has it).",
            "RUN ldconfig -p | grep -qF 'libgomp.so.1 ' || (apt-get update \\",
            "    && apt-get install -y --no-install-recommends libgomp1 \\",
            "    && rm -rf /var/lib/apt/lists/*)",
        ]
    lines += [
        f"COPY --from=install {VENV_DIR} {VENV_DIR}",
        f"WORKDIR {APP_DIR}",
        "# The s2i variables: `unitserve serve` reads MODEL_NAME, SERVICE_TYPE, PERSISTENCE."
        if component.command == "serve"
        else "# MLServer's variables: `unitserve start` reads MLSERVER_MODELS_DIR and the rest.",
    ]
    pairs = [f"{key}={_quote(value)}" for key, value in component.environment.items()]
    lines.append("ENV " + " \\\n    ".join(pairs))
    lines += [
        f"USER {USER_ID}",
        "# REST, gRPC and Prometheus metrics.",
        "EXPOSE " + " ".join(str(p) for p in ports),
        "# Exec form: unitserve is PID 1 and gets SIGTERM to drain in-flight requests.",
        f'CMD ["unitserve", "{component.command}"]',
        "# The code, last, so that changing it rebuilds only this layer. It stays owned by",
        "# root (COPY does not follow USER): the server only reads it.",
        f"COPY --from=code {APP_DIR}/ ./",
    ]
    return "\n".join(lines) + "\n"
