"""deploy/grafana/unitserve.json is a dashboard Grafana imports as is, whose queries
only use variables it defines and metrics unitserve serves (or is about to serve)."""

from __future__ import annotations

import json
import re

import jsonschema

from .. import grafana

SCHEMA = json.loads((grafana.ROOT / "tests/data/grafana_dashboard.schema.json").read_text())
METRICS_DOC = (grafana.ROOT / "docs/metrics.md").read_text()
# Metrics a dashboard panel shows before the code that records them has landed: the
# per-node latency of `unitserve graph`. Its panel says that it has no data until then.
PLANNED = {"unitserve_graph_node_duration_seconds"}
_METRIC = re.compile(r"\b((?:unitserve|seldon_api)_[a-z_]+)")
_SUFFIXES = ("_bucket", "_sum", "_count")


def test_dashboard_matches_grafanas_required_fields():
    jsonschema.validate(grafana.load(), SCHEMA)


def test_panel_ids_are_unique_and_panels_do_not_overlap():
    dashboard = grafana.load()
    nested = [p for row in dashboard["panels"] for p in row.get("panels", [])]
    every = [*dashboard["panels"], *nested]
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_query_uses_defined_variables_and_the_prometheus_datasource():
    dashboard = grafana.load()
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    datasource = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert datasource["query"] == "prometheus"
    for panel in grafana.panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            unknown = grafana.variables_used(target["expr"]) - defined - set(grafana.GLOBALS)
            assert not unknown, (panel["title"], unknown)
        if panel.get("repeat"):
            assert panel["repeat"] in defined
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        unknown = grafana.variables_used(query) - defined
        assert not unknown, (variable["name"], unknown)


def test_every_metric_queried_is_documented_or_planned():
    dashboard = grafana.load()
    texts = [q.expr for q in grafana.queries(dashboard)]
    texts += [v.get("definition", "") for v in dashboard["templating"]["list"]]
    names = {m for text in texts for m in _METRIC.findall(text)}
    assert names, "no unitserve metric queried"
    for name in names:
        base = name
        for suffix in _SUFFIXES:
            base = base.removesuffix(suffix)
        if base in PLANNED:
            continue
        assert f"`{base}`" in METRICS_DOC or f"`{name}`" in METRICS_DOC, name


def test_dashboard_covers_what_operators_look_at():
    """One panel at least per subject of the dashboard, found by the metric it queries."""
    exprs = " ".join(q.expr for q in grafana.queries(grafana.load()))
    for needed in (
        "rate(unitserve_requests_total",
        'code!~"2..|OK"',
        "histogram_quantile(0.5, ",
        "histogram_quantile(0.9, ",
        "histogram_quantile(0.99, ",
        "unitserve_requests_in_flight",
        "unitserve_worker_info",
        "unitserve_worker_restarts_total",
        "seldon_api_model_feedback_reward_total",
        'operation="infer"',
        "unitserve_graph_node_duration_seconds_bucket",
        '"$counter"',
        '"$gauge"',
        '"${timer}_bucket"',
    ):
        assert needed in exprs, needed
