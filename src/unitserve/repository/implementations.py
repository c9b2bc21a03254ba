"""What a model-settings.json's ``implementation`` names, and how it is served.

Three kinds:

- one of MLServer's runtimes for a library (``mlserver_sklearn.SKLearnModel``...): it is
  served by unitserve's prepackaged server for that library, named as Seldon Core
  names them (``SKLEARN_SERVER``); the servers' table is looked up only when a model
  is built, so that reading a repository needs none of the libraries;
- a Seldon class, named by its import path (``mymodel.MyModel``) and found in the
  model's folder first, as MLServer finds a custom runtime;
- an MLServer custom runtime (a class deriving from ``mlserver.MLModel``): refused,
  because its API is MLServer's and unitserve serves Seldon's.

MLServer's other runtimes (Hugging Face, Alibi, ...) have no unitserve server and are
refused by name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: MLServer's runtime import paths → the Seldon Core name of the server serving them.
MLSERVER_RUNTIMES = {
    "mlserver_sklearn.SKLearnModel": "SKLEARN_SERVER",
    "mlserver_xgboost.XGBoostModel": "XGBOOST_SERVER",
    "mlserver_lightgbm.LightGBMModel": "LIGHTGBM_SERVER",
    "mlserver_mlflow.MLflowRuntime": "MLFLOW_SERVER",
}

_IMPORTING = threading.Lock()

#: The interface of a model that is a Seldon class (its import path is in `class_path`).
SELDON_CLASS = "SELDON_CLASS"


class ImplementationError(ValueError):
    """An implementation that cannot be served: the message is one sentence."""


@dataclass(frozen=True)
class Implementation:
    """How one model is served: `interface` is a prepackaged server's name
    (``SKLEARN_SERVER``) or SELDON_CLASS, with the class's import path."""

    interface: str
    class_path: str | None = None

    @property
    def prepackaged(self) -> bool:
        return self.interface != SELDON_CLASS


def classify(implementation: str, folder: Path) -> Implementation:
    """The kind of `implementation` for a model in `folder`, without importing it.
    ImplementationError if it can be seen not to be servable."""
    if implementation in MLSERVER_RUNTIMES:
        return Implementation(MLSERVER_RUNTIMES[implementation])
    if not all(part.isidentifier() for part in implementation.split(".")):
        raise ImplementationError(
            f"implementation {implementation!r} is not an import path such as "
            "'mymodel.MyModel' (a module, a dot, a class name)"
        )
    module, _, name = implementation.rpartition(".")
    if not module:  # Seldon's MODEL_NAME rule: "MyModel" is class MyModel in MyModel.py
        module = name
        implementation = f"{name}.{name}"
    top = module.split(".")[0]
    if top.startswith("mlserver"):
        raise ImplementationError(
            f"implementation {implementation!r} is an MLServer runtime that unitserve has no "
            f"server for (it serves {', '.join(sorted(MLSERVER_RUNTIMES))} and Seldon classes)"
        )
    if not _module_in(folder, top) and importlib.util.find_spec(top) is None:
        raise ImplementationError(
            f"implementation {implementation!r}: there is no module {top!r} in the model's "
            f"folder {folder} nor installed"
        )
    return Implementation(SELDON_CLASS, implementation)


def _module_in(folder: Path, name: str) -> bool:
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()


def is_mlserver_model(cls: type) -> bool:
    """True if `cls` derives from MLServer's MLModel (told by the names in its method
    resolution order, so that mlserver need not be installed or imported)."""
    return any(
        k.__name__ == "MLModel" and k.__module__.split(".")[0] == "mlserver" for k in cls.__mro__
    )


def _refused_runtime(class_path: str) -> ImplementationError:
    return ImplementationError(
        f"{class_path} is an MLServer custom runtime (it derives from mlserver.MLModel): "
        "unitserve serves Seldon classes, with predict(X, names), and MLServer's prepackaged "
        "runtimes by name, so write the model as a Seldon class"
    )


def load_class(class_path: str, folder: Path) -> type:
    """The Seldon class `class_path` ("module.Class"), imported with the model's folder
    first on the import path. A module of the same name imported from another model's
    folder is imported afresh (two models may each have a ``model.py``).
    ImplementationError for a class that cannot be served."""
    with _IMPORTING:  # sys.path and sys.modules are shared: one model's import at a time
        return _load_class(class_path, folder)


def _load_class(class_path: str, folder: Path) -> type:
    module_name, _, class_name = class_path.rpartition(".")
    top = module_name.split(".")[0]
    where = str(folder.resolve())
    _forget_other(top, where)
    sys.path.insert(0, where)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if (exc.name or "").split(".")[0] == "mlserver":
            raise _refused_runtime(class_path) from None
        raise ImplementationError(f"{class_path} cannot be imported: {exc}") from None
    except Exception as exc:
        raise ImplementationError(
            f"importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        sys.path.remove(where)
    found: Any = getattr(module, class_name, None)
    if not isinstance(found, type):
        raise ImplementationError(f"module {module_name} has no class {class_name!r}")
    if is_mlserver_model(found):
        raise _refused_runtime(class_path)
    return found


def _forget_other(top: str, folder: str) -> None:
    """Drop `top` and its submodules from sys.modules if they came from elsewhere."""
    loaded = sys.modules.get(top)
    if loaded is None or not _module_in(Path(folder), top):
        return  # not imported yet, or an installed module: left alone
    origin = getattr(loaded, "__file__", None)
    if origin is not None and Path(origin).resolve().is_relative_to(folder):
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def prepackaged_class_path(interface: str) -> str:
    """The import path ("package.module:Class") of the prepackaged server `interface`,
    from the servers' table. ImplementationError if this installation has none."""
    try:
        from unitserve.servers import IMPLEMENTATIONS  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise ImplementationError(
            f"the prepackaged server {interface} is not part of this installation"
        ) from None
    path = IMPLEMENTATIONS.get(interface)
    if path is None:
        raise ImplementationError(f"there is no prepackaged server {interface}")
    return str(path)
