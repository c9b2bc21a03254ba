"""What a component folder says about itself, for `unitserve build`: the class it
serves (``MODEL_NAME``), its graph node type and the rest of ``.s2i/environment``,
whether it has a ``requirements.txt``, and which `unitserve` command its image runs.
A folder may also hold no class: it is then the rest of a prepackaged server's image,
or of a model repository server's.

The class is checked by reading its module's source, not by importing it: the
model's own imports (its libraries) need not be installed where the image is built.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from unitserve.cli import s2i
from unitserve.cli.generated import PackagingError
from unitserve.settings import SettingsError


@dataclass(frozen=True)
class Component:
    """What a component folder says about itself, mostly from ``.s2i/environment``."""

    directory: Path
    model_name: str
    service_type: str
    environment: dict[str, str] = field(default_factory=dict)  # every variable, in file order
    has_requirements: bool = False
    command: str = "serve"  # `unitserve serve`, or `start` for a repository server

    @classmethod
    def read(
        cls, directory: Path, model_name: str | None = None, service_type: str | None = None
    ) -> Component:
        if not directory.is_dir():
            raise PackagingError(f"{directory} is not a directory")
        try:
            env = s2i.read_environment_file(directory / s2i.ENV_FILE)
            name = model_name or env.get("MODEL_NAME")
            kind = s2i.check_service_type(
                service_type or env.get("SERVICE_TYPE") or "MODEL",
                "--type" if service_type else str(s2i.ENV_FILE),
            )
            if "PERSISTENCE" in env:
                s2i.check_persistence(env["PERSISTENCE"], str(s2i.ENV_FILE))
        except SettingsError as exc:
            raise PackagingError(str(exc)) from None
        if not name:
            raise PackagingError(
                f"no MODEL_NAME in {directory / s2i.ENV_FILE}: run `unitserve init` or give "
                "--model-name"
            )
        check_class(directory, name)
        env = {"MODEL_NAME": name, "SERVICE_TYPE": kind, "PERSISTENCE": "0"} | {
            k: v for k, v in env.items() if k not in ("MODEL_NAME", "SERVICE_TYPE")
        }
        return cls(directory, name, kind, env, (directory / "requirements.txt").is_file())

    @classmethod
    def prepackaged(cls, directory: Path, implementation: str) -> Component:
        """A prepackaged server's image: DIR holds no class, only what else the image
        needs (a requirements.txt, say); `unitserve serve NAME` serves the server."""
        if not directory.is_dir():
            raise PackagingError(f"{directory} is not a directory")
        env = {"MODEL_NAME": implementation, "SERVICE_TYPE": "MODEL", "PERSISTENCE": "0"}
        has_requirements = (directory / "requirements.txt").is_file()
        return cls(directory, implementation, "MODEL", env, has_requirements)

    @classmethod
    def server(cls, directory: Path, models_dir: str) -> Component:
        """A repository server's image (`unitserve start`): no model inside, the models
        come at run time in MLSERVER_MODELS_DIR; DIR holds what else the image needs."""
        if not directory.is_dir():
            raise PackagingError(f"{directory} is not a directory")
        env = {"MLSERVER_MODELS_DIR": models_dir}
        has_requirements = (directory / "requirements.txt").is_file()
        return cls(directory, "", "MODEL", env, has_requirements, "start")


def _names_bound(tree: ast.Module) -> set[str] | None:
    """The names a module binds at its top level; None if it cannot be told without
    running it (``from x import *``)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def check_class(directory: Path, name: str) -> None:
    """Refuse a MODEL_NAME whose module file is missing or does not define the class,
    read without importing it (its imports may not be installed here)."""
    module, _, class_name = name.rpartition(".")
    if not module:
        module = class_name = name
    path = directory / f"{module.replace('.', '/')}.py"
    if not path.is_file():
        path = directory / module.replace(".", "/") / "__init__.py"
    if not path.is_file():
        raise PackagingError(f"model class {name}: no {module.replace('.', '/')}.py in {directory}")
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except SyntaxError as exc:
        raise PackagingError(f"model class {name}: {path} line {exc.lineno}: {exc.msg}") from None
    bound = _names_bound(tree)
    if bound is not None and class_name not in bound:
        raise PackagingError(f"model class {name}: {path} defines no {class_name}")
