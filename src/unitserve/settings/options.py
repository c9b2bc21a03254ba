"""How one setting of `unitserve serve` is read and checked: the `Option` record, the
readers of flag and environment text (Seldon's boolean words among them), and the two
kinds of mistake (`SettingsError`, status 2; `OutOfRange`, status 1)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SERVICE_TYPES = (
    "MODEL",
    "ROUTER",
    "TRANSFORMER",
    "OUTPUT_TRANSFORMER",
    "COMBINER",
    "OUTLIER_DETECTOR",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")

_TRUE = frozenset({"1", "true", "t"})
# The words distutils' strtobool accepts (Seldon parses flag values and BOOL
# parameters with it).
STRTOBOOL_WORDS = {
    "y": True,
    "yes": True,
    "t": True,
    "true": True,
    "on": True,
    "1": True,
    "n": False,
    "no": False,
    "f": False,
    "false": False,
    "off": False,
    "0": False,
}


def env_bool(text: str) -> bool:
    """Seldon's ``getenv_as_bool``: only 1, true and t (any case) are true."""
    return text.strip().lower() in _TRUE


def parse_flag_bool(text: str) -> bool:
    """An explicit value after a boolean flag (``--debug false``): the strtobool words."""
    value = STRTOBOOL_WORDS.get(text.strip().lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")
    return value


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def text_or_none(text: str) -> str | None:
    """An empty value counts as unset: the option's default applies."""
    return text or None


def predictor_labels(text: str) -> dict[str, Any]:
    # An unreadable value is ignored rather than refused: it only feeds a metric label.
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def is_word_true(text: str) -> bool:
    """Only the word ``true`` (any case) turns INCLUDE_METRICS_IN_CLIENT_RESPONSE on."""
    return text.lower() == "true"


def is_not_word_false(text: str) -> bool:
    """Only the word ``false`` (any case) turns SELDON_EXECUTOR_ENABLED off."""
    return text.lower() != "false"


def choice(value: str, choices: tuple[str, ...]) -> str:
    """`value` if it is one of `choices` (an environment value read case-blind)."""
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return value


def parse_size(text: str) -> int:
    """A byte size: plain bytes or with a K/M/G suffix (powers of 1024)."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    number = t[:-1] if scale != 1 else t
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 4194304, 4M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return value


@dataclass(frozen=True)
class Option:
    """One setting. `flag` is None for environment-only settings; `default` is the
    value `Settings` gets when neither the flag nor the variable is set (a reader
    that returns None also means "unset"). `low`/`high` bound a number."""

    name: str
    flag: str | None
    env: str | None
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    kind: str = "value"  # value | switch (optional boolean value) | optional-int
    choices: tuple[str, ...] | None = None
    env_parse: Callable[[str], Any] | None = None  # how the env text is read, if not `parse`
    origin: str = "seldon"  # seldon: same as seldon-core-microservice; unitserve: ours
    note: str = ""
    low: float | None = None
    high: float | None = None
    negatable: bool = False  # a switch that also has a --no-<name> flag

    def from_env(self, environ: Mapping[str, str]) -> Any:
        if self.env is None or self.env not in environ:
            return self.default
        raw = environ[self.env]
        reader = self.env_parse or self.parse
        try:
            value = reader(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise SettingsError(f"environment variable {self.env}={raw!r}: {exc}") from None
        return self.default if value is None else value

    def check(self, value: Any, where: str) -> None:
        """Refuse a number outside [low, high]; `where` names the flag or variable it
        came from, so the message points at what the user wrote."""
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        if isinstance(value, float) and not math.isfinite(value):
            raise OutOfRange(f"{where} must be a finite number, got {value}")
        if self.low is not None and value < self.low:
            raise OutOfRange(f"{where} must be at least {_number(self.low)}, got {_number(value)}")
        if self.high is not None and value > self.high:
            raise OutOfRange(f"{where} must be at most {_number(self.high)}, got {_number(value)}")


def _number(value: float) -> str:
    """A bound or value as the user would write it (1000000, not 1e+06)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


class SettingsError(Exception):
    """A flag or environment value that cannot be read: one line, exit status 2."""

    exit_status = 2


class OutOfRange(SettingsError):
    """A value that reads fine but that the server cannot use: one line, exit status 1."""

    exit_status = 1


# Port 0 is the system's choice of a free port (tests and local runs use it).
LOWEST_PORT, HIGHEST_PORT = 0, 65535
# Every timeout follows one rule: 0 means no limit, a negative value is a mistake.
NO_LIMIT = 0.0
