"""The commands the image tests run: `unitserve` itself (with podman's settings in its
environment), and `unitserve build ... --wheelhouse --image` with no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .. import containers
from ..conftest import clean_env

PREFIX = "localhost/unitserve-test-image"


def unitserve(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The `unitserve` command, with podman's settings in its environment."""
    env = clean_env({"CONTAINERS_CONF": containers.environment()["CONTAINERS_CONF"]})
    done = subprocess.run(
        [sys.executable, "-m", "unitserve", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"unitserve {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def build(folder: Path, tag: str, base: str, images: list[str], *options: str) -> str:
    """`unitserve build FOLDER --wheelhouse --image ... OPTIONS`, with no network; the
    build output. The image's name goes into `images`, for the caller to remove."""
    image = f"{PREFIX}-{folder.name.lower()}:{tag}"
    images.append(image)
    done = unitserve(
        "build", folder.name, *options, "--wheelhouse", "--base-image", base, "--image", image,
        "--engine", "podman", "--network", "none", cwd=folder.parent,
    )  # fmt: skip
    return done.stdout
