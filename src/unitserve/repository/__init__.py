"""A model repository in MLServer's on-disk format, read into plain values.

``settings.json`` and the ``MLSERVER_*`` variables give the server's settings
(`read_server_settings`); each ``model-settings.json`` below the models folder gives
a model (`scan`, `find`; `RepositoryIndex` keeps them by name and reads again only
what changed), available or unavailable with a reason. Nothing here serves
a model: the registry builds served models from these values.
"""

from unitserve.repository.implementations import (
    MLSERVER_RUNTIMES,
    SELDON_CLASS,
    ImplementationError,
    is_mlserver_model,
    load_class,
    prepackaged_class_path,
)
from unitserve.repository.index import RepositoryIndex
from unitserve.repository.model_settings import (
    MODEL_SETTINGS_FILE,
    RepositoryModel,
    read_model_settings,
)
from unitserve.repository.scan import find, scan
from unitserve.repository.server_settings import (
    SETTINGS_FILE,
    ServerSettings,
    SettingsError,
    read_server_settings,
)

__all__ = [
    "MLSERVER_RUNTIMES",
    "MODEL_SETTINGS_FILE",
    "SELDON_CLASS",
    "SETTINGS_FILE",
    "ImplementationError",
    "RepositoryIndex",
    "RepositoryModel",
    "ServerSettings",
    "SettingsError",
    "find",
    "is_mlserver_model",
    "load_class",
    "prepackaged_class_path",
    "read_model_settings",
    "read_server_settings",
    "scan",
]
