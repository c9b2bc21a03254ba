"""The s2i convention: a component folder says how to start it in ``.s2i/environment``.

Seldon's s2i images run ``seldon-core-microservice $MODEL_NAME --service-type
$SERVICE_TYPE [--persistence $PERSISTENCE]`` from variables baked into the image
(from the folder's ``.s2i/environment``). `unitserve serve` with no interface
argument does the same, reading each variable from the environment first and
from ``.s2i/environment`` in the working directory second, so that both a
container (variables in its environment) and a developer's checkout (the file)
start with the same bare command. `unitserve build` and `manifest` read the
file too.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

from unitserve.settings import SERVICE_TYPES, SettingsError

ENV_FILE = Path(".s2i") / "environment"
S2I_VARIABLES = ("MODEL_NAME", "SERVICE_TYPE", "PERSISTENCE")


def read_environment_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines and ``#`` comments skipped, one pair of
    surrounding quotes removed); {} when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise SettingsError(f"{path} line {number}: expected KEY=VALUE, got {line!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def lookup(environ: Mapping[str, str], directory: Path) -> dict[str, tuple[str, str]]:
    """The s2i variables that are set: name → (value, where it came from).
    The environment wins over the file, variable by variable."""
    path = directory / ENV_FILE
    from_file = read_environment_file(path)
    found: dict[str, tuple[str, str]] = {}
    for name in S2I_VARIABLES:
        if environ.get(name):
            found[name] = (environ[name], "environment")
        elif from_file.get(name):
            found[name] = (from_file[name], str(ENV_FILE))
    return found


def check_service_type(value: str, where: str) -> str:
    kind = value.strip().upper()
    if kind not in SERVICE_TYPES:
        raise SettingsError(
            f"SERVICE_TYPE={value!r} ({where}) must be one of {', '.join(SERVICE_TYPES)}"
        )
    return kind


def check_persistence(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"PERSISTENCE={value!r} ({where}) must be an integer") from None


def apply_start(
    args: argparse.Namespace, environ: Mapping[str, str], directory: Path
) -> tuple[str | None, str]:
    """For `unitserve serve` without an interface name: the model name from
    MODEL_NAME, and --service-type / --persistence filled from SERVICE_TYPE /
    PERSISTENCE unless given as flags. Returns (model name or None, a line saying
    where the values came from, for the log)."""
    found = lookup(environ, directory)
    if "SERVICE_TYPE" in found and getattr(args, "service_type", None) is None:
        args.service_type = check_service_type(*found["SERVICE_TYPE"])
    if "PERSISTENCE" in found and getattr(args, "persistence", None) is None:
        args.persistence = check_persistence(*found["PERSISTENCE"])
    origin = ", ".join(f"{name}={value} ({where})" for name, (value, where) in found.items())
    model = found.get("MODEL_NAME")
    return (model[0] if model else None), origin
