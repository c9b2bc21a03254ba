"""Virtual environments for the real clients and reference servers the tests drive.

Some of them pin versions that clash with ours (tritonclient wants protobuf 6, MLServer
its own FastAPI and uvloop), so each gets a virtual environment of its own, built on
first use from `tests/client_requirements/<name>.txt` and kept outside the clone (in
``~/.cache/unitserve/venvs``, or ``UNITSERVE_CLIENT_VENVS``) so that a later run, or CI
on the same machine, does not build it again. A requirements file that changed since
the build rebuilds it. A test that needs one calls `client_python(name)`: it is skipped,
saying why, when the environment cannot be built (no package index reachable).

A requirements file may ask for an interpreter version with a ``# python: 3.12`` line
(seldon-core 1.19 does not install on newer Pythons); the build then uses that version's
interpreter, from PATH or from pyenv's versions, and the test is skipped when there is none.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REQUIREMENTS = Path(__file__).parent / "client_requirements"
VENVS = Path(os.environ.get("UNITSERVE_CLIENT_VENVS", Path.home() / ".cache/unitserve/venvs"))


def _base_python(requirements: Path) -> str:
    """The interpreter to build with: the one a `# python: X.Y` line asks for, else ours."""
    wanted = re.search(r"^#\s*python:\s*(\d+\.\d+)\s*$", requirements.read_text(), re.M)
    if not wanted:
        return sys.executable
    version = wanted.group(1)
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p) for p in pyenv.glob(f"{version}.*/bin/python{version}"))
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "-V"], capture_output=True).returncode == 0:
            return candidate
    pytest.skip(f"{requirements.name} needs Python {version}, and none is installed")


def client_python(name: str) -> Path:
    """The Python interpreter of the environment `name`, built if missing or stale."""
    requirements = REQUIREMENTS / f"{name}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    venv = VENVS / name
    stamp = venv / ".unitserve-requirements"
    python = venv / "bin" / "python"
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time, whoever asks
        if stamp.exists() and stamp.read_text() == digest and python.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [_base_python(requirements), "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                pytest.skip(f"cannot build the {name} environment: {' '.join(tail)}")
        stamp.write_text(digest)
        return python
