"""One model of a repository, read from MLServer's ``model-settings.json``.

The file's keys, as MLServer reads them: ``name`` (default: the file's folder name),
``implementation``, ``parameters`` (``uri``, relative to the file; ``version``;
``extra``, which becomes the Seldon class's constructor parameters; ``format``;
``content_type``), ``max_batch_size``, ``max_batch_time``, ``inputs``, ``outputs``,
``platform``, ``versions``. MLServer's ``MLSERVER_MODEL_*`` variables fill what a file
leaves out (the file wins), and make a model of their own when a folder has no file.

A model that cannot be served is still a `RepositoryModel`, with the reason in
`error`: reading a repository never stops at one bad model, and the server can
list that model as unavailable, with its reason, while the others serve.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from unitserve.repository.implementations import (
    Implementation,
    ImplementationError,
    classify,
)

#: A model's settings file.
MODEL_SETTINGS_FILE = "model-settings.json"
#: The prefix of MLServer's per-model environment variables.
MODEL_ENV_PREFIX = "MLSERVER_MODEL_"

# The model-settings keys a variable may fill, and the parameters keys: "JSON" marks
# values written as JSON in the variable, as pydantic settings read lists and objects.
_MODEL_KEYS = {
    "name": "text",
    "implementation": "text",
    "platform": "text",
    "versions": "JSON",
    "inputs": "JSON",
    "outputs": "JSON",
    "max_batch_size": "text",
    "max_batch_time": "text",
}
_PARAMETER_KEYS = {
    "uri": "text",
    "version": "text",
    "format": "text",
    "content_type": "text",
    "extra": "JSON",
}


class ModelSettingsError(ValueError):
    """What makes one model's settings unusable, in one sentence."""


@dataclass(frozen=True)
class RepositoryModel:
    """One model found in a repository: what a served model's settings are filled from.

    `interface` is a prepackaged server's Seldon name (``SKLEARN_SERVER``) or
    ``SELDON_CLASS`` with `class_path`; `parameters` are the constructor parameters
    (``parameters.extra``); `uri` is the model's files, absolute (or a remote URI as
    written); `folder` holds the settings file. `error` says why the model cannot be
    served (then only `name`, `folder` and `settings_file` are sure to be meaningful).
    `max_batch_time` is in seconds, as MLServer writes it (see `max_batch_time_ms`).
    """

    name: str
    folder: Path
    settings_file: Path | None
    version: str | None = None
    implementation: str = ""
    interface: str = ""
    class_path: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    uri: str | None = None
    content_type: str | None = None
    format: str | None = None
    max_batch_size: int = 0
    max_batch_time: float = 0.0
    inputs: tuple[Mapping[str, Any], ...] = ()
    outputs: tuple[Mapping[str, Any], ...] = ()
    platform: str = ""
    versions: tuple[str, ...] = ()
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None

    @property
    def max_batch_time_ms(self) -> float:
        """`max_batch_time` in unitserve's unit (--max-batch-time is in milliseconds)."""
        return self.max_batch_time * 1000.0

    def refused(self, reason: str) -> RepositoryModel:
        return replace(self, error=reason)


def _variables(env: Mapping[str, str], keys: Mapping[str, str]) -> dict[str, Any]:
    """The values the MLSERVER_MODEL_* variables give for `keys`."""
    found: dict[str, Any] = {}
    for key, kind in keys.items():
        variable = MODEL_ENV_PREFIX + key.upper()
        if variable not in env:
            continue
        text = env[variable]
        if kind == "JSON":
            try:
                found[key] = json.loads(text)
            except json.JSONDecodeError:
                raise ModelSettingsError(f"{variable} is not JSON: {text[:60]!r}") from None
        else:
            found[key] = text
    return found


def _text(value: Any, where: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and where.endswith("version"):
        return str(value)  # "version": 1 means "1"
    if not isinstance(value, str):
        raise ModelSettingsError(f"{where} must be text, not {json.dumps(value)[:40]}")
    return value


def _number(value: Any, where: str, kind: type) -> Any:
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            raise ModelSettingsError(f"{where} must be a number, not {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelSettingsError(f"{where} must be a number, not {json.dumps(value)[:40]}")
    if kind is int and value != int(value):
        raise ModelSettingsError(f"{where} must be a whole number, not {value}")
    if value < 0:
        raise ModelSettingsError(f"{where} must not be negative, not {value}")
    return kind(value)


def _tensors(value: Any, where: str) -> tuple[Mapping[str, Any], ...]:
    """Declared inputs or outputs: MLServer's MetadataTensor (name, datatype, shape)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ModelSettingsError(f"{where} must be a list of tensors")
    for i, tensor in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(tensor, dict):
            raise ModelSettingsError(f"{at} must be an object with name, datatype and shape")
        for key, check in (("name", str), ("datatype", str), ("shape", list)):
            if not isinstance(tensor.get(key), check):
                raise ModelSettingsError(f"{at} needs {key} ({check.__name__})")
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in tensor["shape"]):
            raise ModelSettingsError(f"{at}.shape must hold whole numbers (-1 for any)")
    return tuple(value)


def resolve_uri(uri: str | None, folder: Path) -> str:
    """The model's files: `uri` relative to the settings file's folder (MLServer's
    rule), the folder itself without one, or a remote URI unchanged.
    ModelSettingsError if a local path does not exist."""
    if not uri:
        return str(folder.resolve())
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file") and len(parsed.scheme) > 1:  # c:\ is a path
        return uri
    path = Path(parsed.path if parsed.scheme == "file" else uri)
    full = path if path.is_absolute() else folder / path
    if not full.exists():
        raise ModelSettingsError(
            f"parameters.uri {uri!r} is {full.resolve()}, which does not exist"
        )
    return str(full.resolve())


def read_model_settings(path: Path, env: Mapping[str, str] | None = None) -> RepositoryModel:
    """The model that the settings file `path` describes; a model with `error` set if
    it cannot be served (see the module doc). Never raises for what the file holds."""
    env = os.environ if env is None else env
    folder = path.parent
    model = RepositoryModel(name=folder.name, folder=folder, settings_file=path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return model.refused(f"{path} cannot be read: {exc.strerror}")
    except UnicodeDecodeError:
        return model.refused(f"{path} is not UTF-8 text")
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as exc:
        return model.refused(f"{path} is not JSON: {exc}")
    if not isinstance(settings, dict):
        return model.refused(f"{path} must hold a JSON object")
    if isinstance(settings.get("name"), str) and settings["name"]:
        model = replace(model, name=settings["name"])
    try:
        return from_settings(settings, folder, path, env)
    except (ModelSettingsError, ImplementationError) as exc:
        return model.refused(f"{path}: {exc}")


def from_settings(
    settings: Mapping[str, Any], folder: Path, path: Path | None, env: Mapping[str, str]
) -> RepositoryModel:
    """The model that `settings` (a parsed model-settings.json, or {} for the
    environment alone) describe, with `folder` as its home.
    Raises ModelSettingsError or ImplementationError."""
    merged = {**_variables(env, _MODEL_KEYS), **settings}
    raw_parameters = settings.get("parameters")
    if raw_parameters is None:
        raw_parameters = {}
    if not isinstance(raw_parameters, dict):
        raise ModelSettingsError("parameters must be an object")
    parameters = {**_variables(env, _PARAMETER_KEYS), **raw_parameters}
    name = _text(merged.get("name"), "name") or folder.name
    implementation = _text(merged.get("implementation"), "implementation")
    if not implementation:
        raise ModelSettingsError(
            "there is no implementation (such as 'mlserver_sklearn.SKLearnModel' or "
            "'mymodel.MyModel')"
        )
    extra = parameters.get("extra")
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise ModelSettingsError("parameters.extra must be an object")
    versions = merged.get("versions") or []
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise ModelSettingsError("versions must be a list of texts (such as 'sklearn/1.5.0')")
    kind: Implementation = classify(implementation, folder)
    return RepositoryModel(
        name=name,
        folder=folder,
        settings_file=path,
        version=_text(parameters.get("version"), "parameters.version"),
        implementation=implementation,
        interface=kind.interface,
        class_path=kind.class_path,
        parameters=extra,
        uri=resolve_uri(_text(parameters.get("uri"), "parameters.uri"), folder),
        content_type=_text(parameters.get("content_type"), "parameters.content_type"),
        format=_text(parameters.get("format"), "parameters.format"),
        max_batch_size=_number(merged.get("max_batch_size", 0), "max_batch_size", int),
        max_batch_time=_number(merged.get("max_batch_time", 0.0), "max_batch_time", float),
        inputs=_tensors(merged.get("inputs"), "inputs"),
        outputs=_tensors(merged.get("outputs"), "outputs"),
        platform=_text(merged.get("platform"), "platform") or "",
        versions=tuple(versions),
    )
