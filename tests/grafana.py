"""The shipped Grafana dashboard as the tests read it: its panels' PromQL queries and
the substitution of the dashboard's variables, as Grafana does before it queries."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "unitserve.json"
# Grafana's own variables: the time range and the rate window it chooses for a panel.
GLOBALS = ("__range", "__rate_interval", "__interval")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Query:
    panel: str  # the panel's title as written (before repeat)
    ref: str  # the target's refId
    expr: str
    repeat: str | None  # the variable the panel is repeated for, if any


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside rows included, rows themselves excluded."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def queries(dashboard: dict[str, Any]) -> list[Query]:
    return [
        Query(panel["title"], target["refId"], target["expr"], panel.get("repeat"))
        for panel in panels(dashboard)
        for target in panel["targets"]
    ]


def variables_used(expr: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(expr)}


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with each ``$name`` / ``${name}`` replaced by `values[name]` (KeyError for a
    variable without a value, so that a query cannot reach Prometheus half-filled)."""
    return _VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr)
