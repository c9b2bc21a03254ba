"""The wheels an image installs from its build context: unitserve's own, and with
``--wheelhouse`` every dependency, for the image's Python and platform.

unitserve is on no package index, so the image cannot ``pip install unitserve``:
`own_wheel` writes a wheel of the unitserve that is running, from the files of the
imported package and the metadata of its installed distribution. That works the same
for an editable install of a source tree and for an installed wheel, needs no build
backend, and gives the same bytes for the same files (fixed timestamps and order), so
an unchanged unitserve keeps the image's install layer cached.

`download_wheelhouse` asks pip for the wheels of unitserve's dependencies (and of the
chosen extras and of ``requirements.txt``) for another interpreter and platform, into
a scratch folder first, so that a requirement with no wheel stops the build before
anything in the context is replaced.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import unitserve
from unitserve.cli.generated import PackagingError
from unitserve.version import __version__

DISTRIBUTION = "unitserve"
WHEEL_TAG = "py3-none-any"  # pure Python
# 1980-01-01, the earliest time a zip entry can hold: the same files give the same wheel.
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Debian bookworm (and the python:3.x-slim images built on it) has glibc 2.36; wheels
# built for any older glibc run there.
GLIBC = (2, 36)
_PYTHON_IN_TAG = re.compile(r"(?:^|/)python:(\d+)\.(\d+)")


class WheelError(PackagingError):
    """A reason not to go on (one line)."""


def wheel_name() -> str:
    return f"{DISTRIBUTION}-{__version__}-{WHEEL_TAG}.whl"


def _package_files() -> list[tuple[str, Path]]:
    """(name in the wheel, file) for every file of the imported unitserve package."""
    root = Path(unitserve.__file__).resolve().parent
    files = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        files.append((f"unitserve/{path.relative_to(root).as_posix()}", path))
    return files


def _metadata_files() -> dict[str, bytes]:
    """The distribution's METADATA and entry points (the ``unitserve`` command)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise WheelError(
            "unitserve is not installed as a distribution: cannot make its wheel"
        ) from None
    out = {}
    for name in ("METADATA", "entry_points.txt"):
        text = dist.read_text(name)
        if text is None:
            raise WheelError(f"the installed unitserve has no {name}: cannot make its wheel")
        # An editable install's metadata says the version of its source tree.
        out[name] = text.encode()
    return out


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def own_wheel(directory: Path) -> Path:
    """Write unitserve's wheel into `directory` (kept as is if the bytes are the same)."""
    info = f"{DISTRIBUTION}-{__version__}.dist-info"
    entries: list[tuple[str, bytes]] = [(n, p.read_bytes()) for n, p in _package_files()]
    for name, data in _metadata_files().items():
        entries.append((f"{info}/{name}", data))
    wheel_text = (
        f"Wheel-Version: 1.0\nGenerator: unitserve {__version__}\nRoot-Is-Purelib: true\n"
        f"Tag: {WHEEL_TAG}\n"
    )
    entries.append((f"{info}/WHEEL", wheel_text.encode()))
    record = [_record_line(n, d) for n, d in entries] + [f"{info}/RECORD,,"]
    entries.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / wheel_name()
    scratch = target.with_suffix(".tmp")
    with zipfile.ZipFile(scratch, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in entries:
            entry = zipfile.ZipInfo(name, _FIXED_TIME)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(entry, data)
    if target.is_file() and target.read_bytes() == scratch.read_bytes():
        scratch.unlink()
    else:
        scratch.replace(target)
    return target


def fix_times(directory: Path) -> None:
    """Give every file and folder under `directory` (and it) one fixed modification time.

    Some engines (buildah, so podman) cache a COPY step by the copied files' contents
    and times: a wheelhouse downloaded again, with the same wheels, must not look new.
    """
    stamp = 315532800  # 1980-01-01, as in the wheel's own entries
    for path in [*directory.rglob("*"), directory]:
        os.utime(path, (stamp, stamp), follow_symlinks=False)


def python_version(given: str | None, base_image: str) -> str:
    """X.Y of the image's Python: `given`, else a ``python:X.Y…`` base image's tag, else
    the running interpreter's."""
    if given:
        if not re.fullmatch(r"3\.\d+", given):
            raise WheelError(f"--python-version {given!r}: give it as 3.X, e.g. 3.11")
        return given
    match = _PYTHON_IN_TAG.search(base_image)
    if match:
        return f"{match[1]}.{match[2]}"
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def platforms(machine: str | None = None) -> list[str]:
    """The wheel platform tags a Debian bookworm image on this machine's architecture
    runs, newest first."""
    arch = machine or platform.machine()
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC[1], 16, -1)]
    return [*tags, f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


def download_wheelhouse(
    target: Path,
    unitserve_wheel: Path,
    extras: list[str],
    requirements: Path | None,
    version: str,
) -> list[Path]:
    """Every wheel the image needs besides unitserve's own, into `target` (replacing
    what it held). A requirement with no wheel for the platform raises WheelError
    naming it, and `target` is left untouched."""
    wanted = f"{DISTRIBUTION}[{','.join(extras)}]" if extras else DISTRIBUTION
    nodot = version.replace(".", "")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "--python-version",
        version,
        "--implementation",
        "cp",
        "--abi",
        f"cp{nodot}",
    ]
    for tag in platforms():
        command += ["--platform", tag]
    with tempfile.TemporaryDirectory(prefix="unitserve-wheelhouse-") as scratch:
        command += ["--dest", scratch, f"{wanted} @ {unitserve_wheel.resolve().as_uri()}"]
        if requirements is not None:
            command += ["-r", str(requirements)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            missing = _NOT_FOUND.search(done.stderr)
            if missing:
                raise WheelError(
                    f"no wheel of {missing[1]} for Python {version} on {platforms()[0]} "
                    "(or older): --wheelhouse needs a wheel of every requirement"
                )
            last = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            raise WheelError(f"pip download failed: {last[0]}")
        wheels = sorted(p for p in Path(scratch).glob("*.whl") if p.name != wheel_name())
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        return [Path(shutil.copy2(w, target / w.name)) for w in wheels]
