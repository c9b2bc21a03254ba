"""The image of the identity component, measured: what it adds to its base image (each
layer's size), how long a code-only rebuild takes, and how long a container takes from
`podman run` to a 200 on /ready.

    .venv/bin/python benchmarks/image.py [--starts 5]      (make bench-image)

It uses podman and the Debian base image of the image tests (tests/containers.py: built
once by mmdebstrap, then cached) and removes the images and containers it makes.
Targets: at most 150 MB added, a code-only rebuild in at most 10 s, start to ready in
at most 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import containers  # noqa: E402
from tests.conftest import free_ports  # noqa: E402

IMAGE = "localhost/unitserve-test-bench-image:1"
MB = 1_000_000


def unitserve(*args: str, cwd: Path) -> float:
    """Run `unitserve ARGS`; its wall time in seconds."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "unitserve", *args],
        cwd=cwd,
        env=containers.environment(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def layers(image: str) -> list[tuple[int, str]]:
    """(bytes, instruction) of each layer of `image`, oldest first."""
    out = containers.podman("history", "--no-trunc", "--format", "json", image).stdout
    return [(int(layer["size"]), layer.get("CreatedBy", "")) for layer in reversed(json.loads(out))]


def image_size(image: str) -> int:
    out = containers.podman("image", "inspect", "--format", "{{.Size}}", image).stdout
    return int(out.strip())


def start_to_ready(port: int) -> float:
    started = time.monotonic()
    cid = containers.podman("run", "-d", "-p", f"127.0.0.1:{port}:9000", IMAGE).stdout.strip()
    try:
        deadline = started + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.01)
        raise TimeoutError("not ready after 60 s")
    finally:
        containers.podman("rm", "--force", "--time", "2", cid, check=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--starts", type=int, default=5, help="container starts to time")
    args = p.parse_args()
    reason = containers.missing_tools()
    if reason:
        sys.exit(f"bench-image: {reason}")
    base = containers.base_image()
    with tempfile.TemporaryDirectory(prefix="unitserve-bench-image-") as scratch:
        work = Path(scratch)
        unitserve("init", "demo", cwd=work)
        build = ["build", "demo", "--wheelhouse", "--base-image", base, "--image", IMAGE]
        build += ["--engine", "podman", "--network", "none"]
        try:
            first = unitserve(*build, cwd=work)
            with (work / "demo" / "Demo.py").open("a") as code:
                code.write(f"\n# changed at {time.time()}\n")
            started = time.monotonic()
            containers.podman("build", "--network", "none", "-t", IMAGE, str(work / "demo"))
            rebuild = time.monotonic() - started
            with (work / "demo" / "Demo.py").open("a") as code:
                code.write(f"\n# changed again at {time.time()}\n")
            rebuild_cli = unitserve(*build, cwd=work)
            base_bytes, total = image_size(base), image_size(IMAGE)
            added = [(size, how) for size, how in layers(IMAGE)[len(layers(base)) :]]
            starts = [start_to_ready(port) for port in free_ports(args.starts)]
        finally:
            containers.podman("rmi", "--force", IMAGE, check=False)
            containers.remove_leftovers(base)
    print("| layer (added to the base image) | size |")
    print("| --- | ---: |")
    for size, how in added:
        how = how.replace("/bin/sh -c #(nop) ", "").replace("|", "\\|")
        print(f"| `{how[:90]}` | {size / MB:.1f} MB |")
    print()
    print("| measure | value | target |")
    print("| --- | ---: | ---: |")
    print(f"| base image | {base_bytes / MB:.0f} MB | |")
    print(f"| added over the base | {(total - base_bytes) / MB:.1f} MB | ≤ 150 MB |")
    print(f"| first build (`unitserve build --wheelhouse --image`) | {first:.1f} s | |")
    print(f"| code-only rebuild (`podman build`) | {rebuild:.1f} s | ≤ 10 s |")
    print(f"| code-only rebuild (`unitserve build --wheelhouse --image`) | {rebuild_cli:.1f} s | |")
    print(
        f"| start to /ready (median of {len(starts)}; min {min(starts):.2f}, "
        f"max {max(starts):.2f}) | {statistics.median(starts):.2f} s | ≤ 2 s |"
    )


if __name__ == "__main__":
    main()
