"""`unitserve batch` reads its input as it sends it: on a file of a few hundred MB its
peak memory stays that of a small file. The lines are small requests padded with spaces
(JSON allows them), so that the file is large while the run stays short."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LINES = 2500
PAD = 100_000  # bytes of spaces per line: about 250 MB in all
# Run the batch under a parent that reports its children's peak resident memory (kB).
PEAK = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def _peak_kb(server, source: Path, out: Path) -> int:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK,
            sys.executable,
            "-m",
            "unitserve",
            "batch",
            "-g",
            "seldon",
            "-h",
            f"127.0.0.1:{server.http_port}",
            "-w",
            "4",
            "-i",
            str(source),
            "-o",
            str(out),
            "--progress",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_input(serve, tmp_path: Path) -> None:
    server = serve("Component")
    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text("".join(f"[[{i}, 1]]\n" for i in range(50)))
    padding = " " * PAD
    with open(large, "w") as f:
        for i in range(LINES):
            f.write(f"[[{i}, 1]]{padding}\n")
    assert large.stat().st_size > 200 * 1024 * 1024
    baseline = _peak_kb(server, small, tmp_path / "small-out.txt")
    peak = _peak_kb(server, large, tmp_path / "large-out.txt")
    with open(tmp_path / "large-out.txt") as f:
        assert sum(1 for _ in f) == LINES
    print(f"batch peak RSS: {baseline} kB on a small file, {peak} kB on the large one")
    # Reading the whole file would cost its 250 MB; a streaming run costs a few lines.
    assert peak < baseline + 40 * 1024, (baseline, peak)
