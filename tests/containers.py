"""A container engine for the image tests: podman with the settings these machines need,
and a Debian base image with Python built from Debian's packages (no registry).

* The tool chain is podman, runc and mmdebstrap (Debian packages; CI's .ci/run installs
  them as root). Where it cannot be had the image tests skip with one line saying why;
  under CI (CI=true) they fail instead, so that CI cannot pass without them.
* podman reads a ``containers.conf`` of ours (CONTAINERS_CONF): no default ulimits (this
  kind of machine refuses to raise RLIMIT_NOFILE), runc rather than crun and cgroupfs
  (crun refuses cgroups in hybrid mode).
* The base image is built once by mmdebstrap and kept as a tarball under
  ~/.cache/unitserve/images, named by a hash of what went into it, so that changing the
  recipe builds a new one; podman imports it under the same key when its store lacks it.

Every image and container the tests make is named ``localhost/unitserve-test-*`` /
``unitserve-test-*`` and removed by them (the base image is the cache, and stays).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "unitserve"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
MMDEBSTRAP = [
    "mmdebstrap",
    "--variant=minbase",
    "--format=tar",
    f"--include={','.join(PACKAGES)}",
    SUITE,
]
# Bump to rebuild the base image when something the command line does not show changes.
RECIPE_VERSION = "1"
CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""
TOOLS = ("podman", "runc", "mmdebstrap")


def missing_tools() -> str | None:
    """Why the image tests cannot run here, or None."""
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"no {', '.join(absent)} (apt-get install podman buildah runc mmdebstrap)"
    if os.geteuid() != 0:
        return "the image tests run podman and mmdebstrap as root"
    return None


def require_tools() -> None:
    reason = missing_tools()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"image tests: {reason}; CI must run them (.ci/run installs the tools)")
    pytest.skip(f"image tests: {reason}")


def environment() -> dict[str, str]:
    """os.environ plus CONTAINERS_CONF pointing at our containers.conf."""
    conf = CACHE / "containers" / "containers.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    if not conf.is_file() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One session at a time builds the base image (several may run tests at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def base_image() -> str:
    """The Debian python3 base image, built and imported once per recipe."""
    key = hashlib.sha256(" ".join([RECIPE_VERSION, *MMDEBSTRAP]).encode()).hexdigest()[:12]
    name = f"localhost/unitserve-test-debian-python:{SUITE}-{key}"
    images = CACHE / "images"
    tarball = images / f"debian-python-{SUITE}-{key}.tar"
    with _locked(images / ".lock"):
        if podman("image", "exists", name, check=False).returncode == 0:
            return name
        if not tarball.is_file():
            scratch = tarball.with_name(tarball.name + ".partial")
            started = time.monotonic()
            done = subprocess.run(
                [*MMDEBSTRAP, str(scratch)],
                capture_output=True,
                text=True,
                timeout=1200,
                stdin=subprocess.DEVNULL,
            )
            if done.returncode != 0:
                scratch.unlink(missing_ok=True)
                raise AssertionError(f"mmdebstrap failed:\n{done.stderr[-3000:]}")
            scratch.replace(tarball)
            print(f"built {tarball} in {time.monotonic() - started:.0f} s")
        podman("import", str(tarball), name)
    return name


@pytest.fixture(scope="session")
def image_base() -> Iterator[str]:
    """The base image for the session's image tests (skipped, or failed under CI,
    without the tool chain). The build stages that the session's builds leave are kept
    until its end, so that a later module's builds reuse them, then removed."""
    require_tools()
    name = base_image()
    yield name
    remove_leftovers(name)


def remove_leftovers(base: str) -> None:
    """Remove the untagged images that builds on `base` left (their build stages and
    earlier builds of a tag): the ones whose first layer is `base`'s. Other users'
    images on the machine are left alone."""
    first = "{{index .RootFS.Layers 0}}"
    ours = podman("image", "inspect", "--format", first, base, check=False).stdout.strip()
    listed = podman("images", "--quiet", "--no-trunc", "--filter", "dangling=true", check=False)
    for image in listed.stdout.split():
        layer = podman("image", "inspect", "--format", first, image, check=False).stdout
        if ours and layer.strip() == ours:
            podman("rmi", "--force", image, check=False)
