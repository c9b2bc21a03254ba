"""A models folder as the registry's model source (`unitserve start`).

Every load looks at the folder again (Seldon Core 2's agent writes a model's files
just before it asks for the load), through a `RepositoryIndex`: a look costs a stat
per folder and settings file and reads only what changed, on a thread, never on the
event loop. Each `model-settings.json`
becomes the settings of a served model: an MLServer runtime name is served by the
prepackaged server for its library, a Seldon class is imported from the model's
folder, ``parameters.extra`` are the constructor's keywords, ``parameters.uri`` its
``model_uri``, and MLServer's batching limits the model's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from unitserve import component
from unitserve.errors import StartupError, UnknownModel
from unitserve.models.model_settings import ModelSettings
from unitserve.models.served_model import ServedModel
from unitserve.repository import (
    ImplementationError,
    RepositoryIndex,
    RepositoryModel,
    load_class,
    prepackaged_class_path,
)

log = logging.getLogger("unitserve")

# The prepackaged servers that read a request naming no content type as the model
# settings' parameters.content_type says (MLflow's runtime takes its model's signature).
CONTENT_TYPE_SERVERS = frozenset({"SKLEARN_SERVER", "XGBOOST_SERVER", "LIGHTGBM_SERVER"})

# What a ServedModel needs from the worker that serves it, beyond its settings.
ModelMaker = Callable[[ModelSettings, Callable[[], Any]], ServedModel]


class RepositorySource:
    def __init__(
        self, models_dir: Path, make: ModelMaker, env: Mapping[str, str] | None = None
    ) -> None:
        self.models_dir = models_dir
        self.make = make
        self.env = dict(os.environ if env is None else env)
        self.index = RepositoryIndex(models_dir, self.env)

    async def _found(self, name: str) -> list[RepositoryModel]:
        return await asyncio.to_thread(self.index.find, name)

    @property
    def missing(self) -> str:
        return f"there is no model of that name in {self.models_dir}"

    async def builders(self) -> dict[str, Callable[[], ServedModel]]:
        # The first model of each name, as `build` takes `find`'s first.
        first: dict[str, RepositoryModel] = {}
        for model in await asyncio.to_thread(self.index.models):
            first.setdefault(model.name, model)
        return {name: functools.partial(self._make, first[name]) for name in sorted(first)}

    async def build(self, name: str) -> ServedModel:
        found = await self._found(name)
        if not found:
            raise UnknownModel(f"unknown model {name!r}: {self.missing}")
        return self._make(found[0])

    def _make(self, model: RepositoryModel) -> ServedModel:
        return self.make(settings_of(model), lambda: build_user(model))

    async def index_entries(self, held: set[str]) -> list[dict[str, Any]]:
        # On a thread, as the loads' looks: a look stats every folder and settings file
        # (milliseconds in a folder of a thousand models), and reads those that changed.
        entries = []
        for model in await asyncio.to_thread(self.index.models):
            if model.name in held:
                continue
            entry: dict[str, Any] = {"name": model.name}
            if model.version is not None:
                entry["version"] = model.version
            entry["state"] = "UNAVAILABLE"
            entry["reason"] = model.error or ""
            entries.append(entry)
        return entries


def settings_of(model: RepositoryModel) -> ModelSettings:
    """The served model's settings from a repository model."""
    return ModelSettings(
        implementation=model.class_path or model.interface or model.implementation,
        name=model.name,
        version=model.version,
        parameters=dict(model.parameters),
        uri=model.uri,
        max_batch_size=model.max_batch_size,
        max_batch_time=model.max_batch_time_ms,
    )


def build_user(model: RepositoryModel) -> Any:
    """The user object of `model` (on a worker thread: imports and reads files).
    Raises with one sentence saying why it cannot be built."""
    if model.error is not None:
        raise ImplementationError(model.error)
    kwargs = dict(model.parameters)
    try:
        if model.class_path is None:  # a prepackaged server
            user_class = component.import_user_class(prepackaged_class_path(model.interface))
            if model.uri is not None:
                kwargs.setdefault("model_uri", model.uri)
            if model.content_type and model.interface in CONTENT_TYPE_SERVERS:
                # MLServer's runtimes read a request that names no content type as
                # the model settings' parameters.content_type says.
                kwargs.setdefault("content_type", model.content_type)
        else:
            user_class = load_class(model.class_path, model.folder)
        return component.construct(user_class, kwargs)
    except StartupError as exc:
        raise ImplementationError(str(exc)) from None
