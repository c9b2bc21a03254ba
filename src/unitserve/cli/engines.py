"""Building an image with the container engine the machine has: docker, podman or
buildah, the first found unless one is chosen.

The engine's output is passed through line by line as it builds (a build takes
minutes, and its progress is what the user watches); its last lines are kept so that
a failed build ends with one line saying so and the lines that say why.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

ENGINES = ("docker", "podman", "buildah")
_LAST_LINES = 15
# A container image reference: [registry[:port]/]path[:tag][@digest], lower-case path.
_IMAGE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


class EngineError(Exception):
    """A reason the image was not built (one line, then perhaps the engine's last lines)."""


def check_image_name(image: str) -> None:
    if not _IMAGE.match(image):
        raise EngineError(f"--image {image!r} is not an image name (NAME:TAG, lower case)")


def _daemon_answers(docker: str) -> bool:
    """docker is only a client: it builds nothing without a daemon to talk to."""
    try:
        done = subprocess.run(
            [docker, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def find(chosen: str | None = None) -> str:
    """The engine's command: `chosen` if it is installed, else the first found that
    can build (a docker client with no daemon cannot)."""
    if chosen:
        if shutil.which(chosen) is None:
            raise EngineError(f"--engine {chosen}: no {chosen} command on this machine")
        return chosen
    skipped = []
    for name in ENGINES:
        if shutil.which(name) is None:
            continue
        if name == "docker" and not _daemon_answers(name):
            skipped.append("docker (no daemon answers)")
            continue
        return name
    found = f"; found {', '.join(skipped)}" if skipped else ""
    raise EngineError(
        f"no container engine found ({', '.join(ENGINES)}{found}): install one, or "
        "build the Dockerfile elsewhere"
    )


def command(engine: str, context: Path, image: str, network: str | None = None) -> list[str]:
    """The build command line (each engine takes the same options for these)."""
    verb = ["bud"] if Path(engine).name == "buildah" else ["build"]
    line = [engine, *verb, "--tag", image, "--file", str(context / "Dockerfile")]
    if network:
        line += ["--network", network]
    return [*line, str(context)]


def build(engine: str, context: Path, image: str, network: str | None = None) -> None:
    """Build `image` from `context`, streaming the engine's output to standard output."""
    line = command(engine, context, image, network)
    print("$ " + " ".join(line), flush=True)
    last: collections.deque[str] = collections.deque(maxlen=_LAST_LINES)
    try:
        proc = subprocess.Popen(
            line,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as exc:
        raise EngineError(f"{engine} could not be started: {exc}") from None
    assert proc.stdout is not None
    with proc:
        for text in proc.stdout:
            sys.stdout.write(text)
            sys.stdout.flush()
            last.append(text.rstrip("\n"))
    if proc.returncode != 0:
        tail = "\n".join(f"  {text}" for text in last)
        raise EngineError(
            f"{engine} build of {image} failed (exit status {proc.returncode}); its last "
            f"lines:\n{tail}"
        )
