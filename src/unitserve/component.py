"""Load the user's class and learn, once, how to call it.

`load_component` imports ``Module`` (file Module.py, class Module) or
``pkg.module.Class`` from the working directory, types the constructor
parameters and builds the instance. `MethodTable` records which methods exist,
whether each one takes ``meta`` and whether it is ``async`` — decided by
inspecting signatures at start-up, never by calling and catching TypeError.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unitserve.errors import StartupError
from unitserve.servers import class_path, not_served
from unitserve.settings import STRTOBOOL_WORDS
from unitserve.user_model import SeldonComponent

log = logging.getLogger("unitserve")

PARAMETER_TYPES = ("INT", "FLOAT", "DOUBLE", "STRING", "BOOL", "JSON")


def import_user_class(interface_name: str, search_path: str | None = None) -> type:
    """Import the class named by `interface_name`, with `search_path` (default: the
    working directory) on sys.path. A prepackaged server's implementation name
    (``SKLEARN_SERVER``, ...) stands for its class."""
    interface_name = class_path(interface_name) or interface_name
    path = search_path or os.getcwd()
    if path not in sys.path:
        sys.path.append(path)
    module_name, _, class_name = interface_name.rpartition(".")
    if not module_name:
        module_name = class_name = interface_name
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            other_server = not_served(interface_name)
            if other_server is not None:
                raise StartupError(other_server) from None
            raise StartupError(
                f"cannot import the model module '{module_name}': no file {module_name}.py "
                f"(or package) in {path}"
            ) from None
        raise StartupError(f"importing '{module_name}' failed: {exc}") from exc
    except SyntaxError as exc:
        raise StartupError(
            f"importing '{module_name}' failed: syntax error in {exc.filename} line {exc.lineno}: "
            f"{exc.msg}"
        ) from None
    except Exception as exc:
        raise StartupError(
            f"importing '{module_name}' failed: {type(exc).__name__}: {exc}"
        ) from exc
    user_class = getattr(module, class_name, None)
    if user_class is None:
        raise StartupError(f"module '{module_name}' has no class '{class_name}'")
    return user_class


def _convert(name: str, value: Any, kind: str) -> Any:
    def bad() -> StartupError:
        return StartupError(
            f"Bad model parameter: {name} with value {value!r} can't be parsed as a {kind}"
        )

    if kind == "INT":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad() from None
    if kind in ("FLOAT", "DOUBLE"):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad() from None
    if kind == "STRING":
        return str(value)
    if kind == "BOOL":
        if isinstance(value, bool):
            return value
        word = STRTOBOOL_WORDS.get(str(value).strip().lower())
        if word is None:
            raise bad()
        return word
    if kind == "JSON":
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad() from None
    raise StartupError(
        f"Bad model parameter type: {kind} for {name}; valid are {', '.join(PARAMETER_TYPES)}"
    )


def parse_parameters(text: str) -> dict[str, Any]:
    """`--parameters` JSON → constructor keyword arguments."""
    try:
        items = json.loads(text)
    except ValueError as exc:
        raise StartupError(f"--parameters is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise StartupError('--parameters must be a JSON list of {"name", "value", "type"}')
    kwargs: dict[str, Any] = {}
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or "value" not in item
        ):
            raise StartupError(f'Bad model parameter {item!r}: needs "name", "value", "type"')
        kind = str(item.get("type", "STRING")).upper()
        kwargs[item["name"]] = _convert(item["name"], item["value"], kind)
    return kwargs


def construct(user_class: type, kwargs: dict[str, Any]) -> Any:
    """Instantiate the user class; a wrong parameter name or a failing constructor is
    a start-up error naming the class."""
    name = getattr(user_class, "__name__", str(user_class))
    try:
        inspect.signature(user_class).bind(**kwargs)
    except TypeError as exc:
        raise StartupError(f"{name}({', '.join(kwargs)}): {exc}") from None
    except ValueError:
        pass  # no signature to check (builtin or C type): let the call decide
    try:
        return user_class(**kwargs)
    except StartupError:
        raise  # already one line for the user (a prepackaged server's missing model)
    except Exception as exc:
        raise StartupError(f"{name}() constructor raised {type(exc).__name__}: {exc}") from exc


def load_component(interface_name: str, parameters: str, search_path: str | None = None) -> Any:
    return construct(import_user_class(interface_name, search_path), parse_parameters(parameters))


# ----------------------------------------------------------------------------- method table


@dataclass(frozen=True, slots=True)
class UserMethod:
    """A bound user method and how to call it."""

    name: str
    fn: Callable[..., Any]
    takes_meta: bool
    is_async: bool


def _takes_meta(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            return True
        if p.name == "meta" and p.kind is not p.POSITIONAL_ONLY:
            return True
    return False


def _inherited_stub(obj: Any, name: str) -> bool:
    """True when `name` is the `SeldonComponent` base implementation (ours or
    seldon_core's), i.e. a method the user did not write."""
    for klass in type(obj).__mro__:
        if name in vars(klass):
            return klass is SeldonComponent or (
                klass.__name__ == "SeldonComponent" and klass.__module__.startswith("seldon_core")
            )
    return False


def _method(obj: Any, name: str) -> UserMethod | None:
    fn = getattr(obj, name, None)
    if fn is None or not callable(fn) or _inherited_stub(obj, name):
        return None
    is_async = inspect.iscoroutinefunction(fn) or (
        not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)
    )
    return UserMethod(name, fn, _takes_meta(fn), is_async)


_DEPRECATED_WARNED: set[str] = set()


def _deprecated(obj: Any, name: str) -> UserMethod | None:
    m = _method(obj, name)
    if m is not None and name not in _DEPRECATED_WARNED:
        _DEPRECATED_WARNED.add(name)
        log.warning("%s is deprecated: use the *_raw method instead", name)
    return m


@dataclass(frozen=True, slots=True)
class MethodTable:
    """Every user method unitserve may call, looked up once (slots: a repository
    server holds one per model, and thirty fields in a dict cost a kilobyte more)."""

    predict: UserMethod | None
    predict_raw: UserMethod | None
    predict_rest: UserMethod | None
    predict_grpc: UserMethod | None
    transform_input: UserMethod | None
    transform_input_raw: UserMethod | None
    transform_input_rest: UserMethod | None
    transform_input_grpc: UserMethod | None
    transform_output: UserMethod | None
    transform_output_raw: UserMethod | None
    transform_output_rest: UserMethod | None
    transform_output_grpc: UserMethod | None
    route: UserMethod | None
    route_raw: UserMethod | None
    route_rest: UserMethod | None
    route_grpc: UserMethod | None
    aggregate: UserMethod | None
    aggregate_raw: UserMethod | None
    aggregate_rest: UserMethod | None
    aggregate_grpc: UserMethod | None
    send_feedback: UserMethod | None
    send_feedback_raw: UserMethod | None
    send_feedback_rest: UserMethod | None
    send_feedback_grpc: UserMethod | None
    health_status: UserMethod | None
    health_status_raw: UserMethod | None
    tags: UserMethod | None
    metrics: UserMethod | None
    init_metadata: UserMethod | None
    load: UserMethod | None

    @classmethod
    def of(cls, obj: Any) -> MethodTable:
        values = {}
        for name in cls.__dataclass_fields__:
            getter = _deprecated if name.endswith(("_rest", "_grpc")) else _method
            values[name] = getter(obj, name)
        return cls(**values)


def class_names_of(obj: Any) -> Callable[[int], list[str]] | list[str] | None:
    """The user's class names: a method (called per response), a plain list attribute
    (accepted with a warning, as Seldon does) or None for the ``t:i`` default."""
    attr = getattr(obj, "class_names", None)
    if attr is None or (callable(attr) and _inherited_stub(obj, "class_names")):
        return None
    if callable(attr):
        return attr
    warnings.warn("class_names as an attribute is deprecated: make it a method", stacklevel=1)
    return list(attr)
