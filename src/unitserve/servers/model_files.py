"""What every prepackaged server does the same way: find its model file, read the
``metadata.yaml`` beside it, import its library, and read the Open Inference request's
choice of outputs.
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from unitserve import storage
from unitserve.errors import SeldonMicroserviceException, StartupError

log = logging.getLogger("unitserve.servers")

METADATA_FILE = "metadata.yaml"

# The pip extra that brings each library, for the "not installed" message.
_EXTRAS = {
    "sklearn": "sklearn",
    "joblib": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "mlflow": "mlflow",
    "pandas": "mlflow",
}


def require(server: str, module: str) -> ModuleType:
    """Import `module` for `server`, or stop with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module.split(".")[0], module)
        raise StartupError(
            f"{server} needs the Python package {exc.name or module!r}, which is not "
            f"installed: install unitserve's extra {extra} "
            f"(in a clone: pip install -e '.[{extra}]')"
        ) from None


def model_folder(model_uri: str | None, server: str, names: tuple[str, ...] = ()) -> Path:
    """The local path of `model_uri` (fetched first when it is remote). A URI that names
    nothing is one line naming it and the model files `names` looked for there."""
    if not model_uri:
        raise StartupError(
            f"{server} needs model_uri: give --model-uri URI (or the parameter model_uri)"
        )
    try:
        return Path(storage.download(model_uri))
    except StartupError:
        raise
    except storage.NotFound as exc:
        looked = f" (looked for {', '.join(names)})" if names else ""
        raise StartupError(f"{server}: no model at {model_uri}{looked}: {exc}") from None
    except Exception as exc:
        raise StartupError(f"{server}: cannot fetch the model at {model_uri}: {exc}") from None


def find_model_file(model_uri: str | None, names: tuple[str, ...], server: str) -> Path:
    """The first of `names` in the model's folder (or the URI itself when it is one file);
    a one-line start-up error naming the URI and the names looked for otherwise."""
    local = model_folder(model_uri, server, names)
    if local.is_file():
        return local
    for name in names:
        candidate = local / name
        if candidate.is_file():
            return candidate
    raise StartupError(
        f"{server}: no model file at {model_uri}: looked for {', '.join(names)} in {local}"
    )


def read_metadata(model_path: str | Path | None) -> dict[str, Any]:
    """``metadata.yaml`` beside the model (`model_path`: its local file or folder, as
    fetched when the server was built, so that the metadata is that version's and no
    store is asked again), or {} when there is none. The worker checks it against the
    metadata schema as it does any class's ``init_metadata()``; a file that is not YAML
    is an error naming the file, not a silent {}."""
    if not model_path:
        return {}
    local = Path(model_path)
    path = (local.parent if local.is_file() else local) / METADATA_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        log.debug("no %s beside the model", path)
        return {}
    try:
        found = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    return found if found is not None else {}


def bad_input(exc: BaseException) -> SeldonMicroserviceException:
    """A library's refusal of the request's features (wrong count, wrong type) as the
    client's error: 400 (INVALID_ARGUMENT on gRPC) with the library's own sentence."""
    return SeldonMicroserviceException(str(exc).strip() or type(exc).__name__, status_code=400)


# ----------------------------------------------------------------------------- Open Inference

# The meta key where the Open Inference Protocol mapping lists the outputs the client
# asked for ([] for "the default"); it is absent on the Seldon protocol.
_REQUESTED = "outputs"


def requested_outputs(meta: Any) -> list[str] | None:
    """The outputs an Open Inference request asked for ([] for none named), or None on the
    Seldon protocol. Adaptive batching stacks only requests that ask for the same outputs,
    so a batch's are its first request's."""
    if not isinstance(meta, dict):
        return None
    batch = meta.get("batch")
    if isinstance(batch, list) and "rows" in meta:
        return requested_outputs(batch[0]) if batch else None
    names = meta.get(_REQUESTED)
    if not isinstance(names, list):
        return None
    return [str(n) for n in names]


def check_outputs(server: str, wanted: list[str], valid: tuple[str, ...]) -> list[str]:
    """`wanted`, or ``predict`` when empty; a 400 naming the valid outputs otherwise."""
    if not wanted:
        return ["predict"]
    for name in wanted:
        if name not in valid:
            quoted = ", ".join(f"'{v}'" for v in valid)
            raise SeldonMicroserviceException(
                f"{server} only supports {quoted} as outputs ({name} was received)",
                status_code=400,
            )
    return wanted


def is_table(value: Any) -> bool:
    """True for a pandas DataFrame. pandas is looked up, not imported: a value can only
    be a DataFrame once something (the model, a ``pd`` request) has imported it."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)
