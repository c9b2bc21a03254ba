"""The server's settings, read as MLServer reads them: ``settings.json`` in the models
folder, then ``MLSERVER_*`` environment variables, then MLServer's defaults.

A value in ``settings.json`` wins over the environment (MLServer's settings are
pydantic settings, whose constructor arguments, here the file's values, come before
the environment). The models folder is the exception: the command line's folder wins,
then ``MLSERVER_MODELS_DIR`` (what MLServer's image passes to ``mlserver start``),
then the working directory.

Every value keeps the name of where it came from, so that the server can log how it
was configured, and a bad value is refused with a sentence naming its source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The server's settings file, in the models folder.
SETTINGS_FILE = "settings.json"
#: The prefix of MLServer's server-wide environment variables.
ENV_PREFIX = "MLSERVER_"
#: The variable MLServer's image passes as the folder of ``mlserver start``.
MODELS_DIR_ENV = "MLSERVER_MODELS_DIR"


class SettingsError(ValueError):
    """A server setting that cannot be used: its message is one sentence for the user."""


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off"}


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("must be true or false")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError("must be a whole number")


def _as_port(value: Any) -> int:
    port = _as_int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return port


def _as_workers(value: Any) -> int:
    """MLServer's parallel workers: 0 is inference in the server's own process, which
    for unitserve is one worker."""
    number = _as_int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _as_optional_size(value: Any) -> int | None:
    if value is None:
        return None
    number = _as_int(value)
    if number < 1:
        raise ValueError("must be a positive number of bytes")
    return number


def _as_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


#: Each setting MLServer has that unitserve honours: its reader and MLServer's default.
#: The environment variable is ``MLSERVER_`` and the name in capitals.
FIELDS: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "debug": (_as_bool, False),
    "parallel_workers": (_as_workers, 1),
    "load_models_at_startup": (_as_bool, True),
    "server_name": (_as_text, "mlserver"),
    "host": (_as_text, "0.0.0.0"),
    "http_port": (_as_port, 8080),
    "grpc_port": (_as_port, 8081),
    "metrics_port": (_as_port, 8082),
    "grpc_max_message_length": (_as_optional_size, None),
}


@dataclass(frozen=True)
class ServerSettings:
    """MLServer's server-wide settings, as unitserve honours them."""

    models_dir: Path
    debug: bool = False
    parallel_workers: int = 1
    load_models_at_startup: bool = True
    server_name: str = "mlserver"
    host: str = "0.0.0.0"
    http_port: int = 8080
    grpc_port: int = 8081
    metrics_port: int = 8082
    grpc_max_message_length: int | None = None
    #: Where each value came from: "settings.json", an environment variable's name,
    #: "the command line" or "default".
    origins: dict[str, str] = field(default_factory=dict, compare=False)
    #: Keys of settings.json that unitserve does not use (MLServer's others).
    ignored: tuple[str, ...] = ()

    def described(self) -> str:
        """One line for the log: each setting that is not a default, and its source."""
        parts = [
            f"{name}={getattr(self, name)!r} ({origin})"
            for name, origin in self.origins.items()
            if origin != "default"
        ]
        return ", ".join(parts) or "all defaults"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path} cannot be read: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{path} is not UTF-8 JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{path} must hold a JSON object, not {type(value).__name__}")
    return value


def models_dir_of(
    folder: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[Path, str]:
    """The models folder and where it came from: the command line's folder, else
    MLSERVER_MODELS_DIR, else the working directory."""
    if folder is not None:
        return Path(folder), "the command line"
    if env.get(MODELS_DIR_ENV):
        return Path(env[MODELS_DIR_ENV]), MODELS_DIR_ENV
    return Path.cwd(), "the working directory"


def read_server_settings(
    folder: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> ServerSettings:
    """The server's settings for the models folder `folder` (see the module doc).
    Raises SettingsError for a settings.json or a variable that cannot be used."""
    env = os.environ if env is None else env
    models_dir, dir_origin = models_dir_of(folder, env)
    if not models_dir.is_dir():
        raise SettingsError(f"the models folder {models_dir} (from {dir_origin}) is not a folder")
    settings_path = models_dir / SETTINGS_FILE
    from_file = _read_file(settings_path) if settings_path.is_file() else {}
    values: dict[str, Any] = {}
    origins = {"models_dir": dir_origin}
    for name, (read, default) in FIELDS.items():
        variable = ENV_PREFIX + name.upper()
        if name in from_file:
            raw, origin = from_file[name], f"{settings_path.name}"
        elif variable in env:
            raw, origin = env[variable], variable
        else:
            values[name], origins[name] = default, "default"
            continue
        try:
            values[name] = read(raw)
        except ValueError as exc:
            raise SettingsError(f"{name} from {origin} is {raw!r}: it {exc}") from None
        origins[name] = origin
    ignored = tuple(sorted(k for k in from_file if k not in FIELDS))
    return ServerSettings(models_dir=models_dir, origins=origins, ignored=ignored, **values)
