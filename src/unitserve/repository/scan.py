"""Finding the models of a models folder, as MLServer and Seldon Core 2's agent lay it out.

Every ``model-settings.json`` below the folder is a model, at any depth (MLServer's
rule; hidden folders are skipped). Core 2's agent writes a model ``iris`` version 1
into ``iris_1/1/`` and names it ``iris_1`` in its settings file, so a model is found
by the ``name`` inside the file, never by its folder's name.

What a user expects beyond that:
- a top folder that holds files but no ``model-settings.json`` anywhere is listed as
  an unavailable model named after the folder, saying that the file is missing (a
  model copied without its settings shows up, instead of silently not existing);
- two files declaring the same name and version make neither servable: each is
  unavailable with a sentence naming both files, since which one the user meant
  cannot be guessed.
With no settings file at all, the ``MLSERVER_MODEL_*`` variables describe a single
model when they name an implementation (MLServer's single-model mode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from unitserve.repository.implementations import ImplementationError
from unitserve.repository.model_settings import (
    MODEL_ENV_PREFIX,
    MODEL_SETTINGS_FILE,
    ModelSettingsError,
    RepositoryModel,
    from_settings,
    read_model_settings,
)


def is_hidden(name: str) -> bool:
    """A folder that holds no model: .git, __pycache__ and the like."""
    return name.startswith((".", "__"))


def _settings_files(root: Path) -> Iterator[Path]:
    """Every model-settings.json under `root`, in a stable order, hidden folders skipped."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not is_hidden(d))
        if MODEL_SETTINGS_FILE in files:
            yield Path(folder) / MODEL_SETTINGS_FILE


def without_settings(
    root: Path, seen: list[Path], top_folders: Iterable[str]
) -> Iterator[RepositoryModel]:
    """The top folders (of `top_folders`, the names of `root`'s folders) that hold files
    but no model-settings.json (`seen`: the settings files found; see the module doc)."""
    with_settings = {p.relative_to(root).parts[0] for p in seen if p.parent != root}
    for name in sorted(top_folders):
        if is_hidden(name) or name in with_settings:
            continue
        entry = root / name
        if any(f for _, _, files in os.walk(entry) for f in files):
            yield RepositoryModel(
                name=entry.name,
                folder=entry,
                settings_file=None,
                error=f"{entry} holds no {MODEL_SETTINGS_FILE}, so nothing says how to serve it",
            )


def single_model(root: Path, env: Mapping[str, str]) -> list[RepositoryModel]:
    """MLServer's single-model mode: the MLSERVER_MODEL_* variables alone."""
    if not env.get(MODEL_ENV_PREFIX + "IMPLEMENTATION"):
        return []
    try:
        return [from_settings({}, root, None, env)]
    except (ModelSettingsError, ImplementationError) as exc:
        name = env.get(MODEL_ENV_PREFIX + "NAME") or root.name
        return [RepositoryModel(name=name, folder=root, settings_file=None, error=str(exc))]


def refuse_duplicates(models: list[RepositoryModel]) -> list[RepositoryModel]:
    """Each model whose name and version another file declares too, made unavailable."""
    by_key: dict[tuple[str, str | None], list[int]] = {}
    for i, model in enumerate(models):
        if model.settings_file is not None:
            by_key.setdefault((model.name, model.version), []).append(i)
    out = list(models)
    for (name, version), places in by_key.items():
        if len(places) < 2:
            continue
        files = " and ".join(str(models[i].settings_file) for i in places)
        which = f"model {name!r}" + (f" version {version!r}" if version else "")
        for i in places:
            out[i] = models[i].refused(f"{which} is declared twice, by {files}: rename one")
    return out


def scan(
    root: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> list[RepositoryModel]:
    """Every model of the models folder `root`, available or not (see the module doc)."""
    env = os.environ if env is None else env
    base = Path(root)
    files = list(_settings_files(base))
    models = [read_model_settings(path, env) for path in files]
    return completed(base, files, models, lambda: _folders_of(base), env)


def completed(
    base: Path,
    files: list[Path],
    models: list[RepositoryModel],
    top_folders: Callable[[], Iterable[str]],
    env: Mapping[str, str],
) -> list[RepositoryModel]:
    """`models`, read from the settings `files` found under `base`, with what the
    module doc adds: folders without settings, the single model of the environment,
    and duplicate names refused. `top_folders` names `base`'s folders (asked only when
    they matter)."""
    if not any(path.parent == base for path in files):  # not a single model's own folder
        models = models + list(without_settings(base, files, top_folders()))
    if not files:
        models = models + single_model(base, env)
    return refuse_duplicates(models)


def _folders_of(root: Path) -> list[str]:
    return [entry.name for entry in root.iterdir() if entry.is_dir()]


def find(
    root: str | os.PathLike[str],
    name: str,
    version: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[RepositoryModel]:
    """The models of `root` named `name` (and of `version`, when given), read afresh:
    Core 2's agent writes a model's files just before it asks for the load. An
    empty list means there is no such model (404 / NOT_FOUND)."""
    return [
        model
        for model in scan(root, env)
        if model.name == name and (version is None or model.version == version)
    ]
