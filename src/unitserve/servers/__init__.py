"""Seldon's prepackaged model servers (``SKLEARN_SERVER`` and friends) as ordinary classes.

A SeldonDeployment node that says ``implementation: SKLEARN_SERVER`` and ``modelUri: …``
carries no code of its own: the server class comes with the wrapper. These are those
classes, written for unitserve: plain user classes that import their library and
`unitserve.storage`, and that the engine, both protocols, batching and graphs treat like
any other class.

`IMPLEMENTATIONS` maps each implementation name to its class's import path. The table
imports nothing, so that it can be read (by the command line, the graph runner or a
model repository) without the model libraries installed; the library is imported when a
server is built, and a missing one is a one-line start-up error naming the extra.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "IMPLEMENTATIONS", "NOT_SERVED", "class_path", "not_served"]

#: Seldon's implementation name → the import path of the class serving it.
IMPLEMENTATIONS: dict[str, str] = {
    "SKLEARN_SERVER": "unitserve.servers.sklearn.SKLearnServer",
    "XGBOOST_SERVER": "unitserve.servers.xgboost.XGBoostServer",
    "LIGHTGBM_SERVER": "unitserve.servers.lightgbm.LightGBMServer",
    "MLFLOW_SERVER": "unitserve.servers.mlflow.MLFlowServer",
}

#: The pip extra of unitserve that installs each server's library.
EXTRAS: dict[str, str] = {
    "SKLEARN_SERVER": "sklearn",
    "XGBOOST_SERVER": "xgboost",
    "LIGHTGBM_SERVER": "lightgbm",
    "MLFLOW_SERVER": "mlflow",
}


def class_path(name: str) -> str | None:
    """The import path of the server named `name` (an implementation name), or None."""
    return IMPLEMENTATIONS.get(name)


#: Seldon's other prepackaged servers, which front another inference server (TensorFlow
#: Serving, Triton) or run on the Open Inference Protocol only: unitserve does not run
#: them, and says so rather than looking for a class of that name.
NOT_SERVED: dict[str, str] = {
    "TENSORFLOW_SERVER": "a proxy in front of TensorFlow Serving",
    "TRITON_SERVER": "NVIDIA Triton",
    "HUGGINGFACE_SERVER": "MLServer's Hugging Face runtime",
    "TEMPO_SERVER": "a Tempo pipeline on MLServer",
}


def not_served(name: str) -> str | None:
    """One line saying why `name`, one of Seldon's other servers, is not run here; None
    for any other name."""
    what = NOT_SERVED.get(name)
    if what is None:
        return None
    return (
        f"{name} is one of Seldon's prepackaged servers ({what}), which unitserve does not "
        f"run; unitserve runs {', '.join(IMPLEMENTATIONS)}, or a class of your own"
    )
