"""Every panel of deploy/grafana/unitserve.json, queried through a real Prometheus.

A real Prometheus server (Debian's `prometheus` package; skipped when missing)
scrapes a loaded unitserve once a second. The test sends a known mix of requests
(successes and errors, REST, gRPC and the Open Inference Protocol, feedback with
rewards, user metrics) and replaces a worker, then evaluates each panel's PromQL
through Prometheus's HTTP API with the dashboard's variables filled in as Grafana
fills them, and compares every answer with what it sent. A `unitserve graph` (examples/graph_chain)
is scraped by the same Prometheus, so that the per-node panel is checked with data:
each node answers, with the count of calls the test made.

Exact counts: every series exists before Prometheus's first scrape (a warm-up of
each kind of traffic), and the window of `$__range` / `$__rate_interval` runs from
the first scrape to the last one, evaluated at the last one. Prometheus then has no
window edge to extrapolate to, so an increase is the sent count (to a millionth)
and a rate is that count divided by the window.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from unitserve.metrics.worker import SELDON_BUCKETS
from unitserve.proto import inference_pb2 as v2
from unitserve.proto import prediction_pb2 as pb

from .. import grafana
from ..conftest import free_ports, stop_process, wait_until
from .metrics_text import samples
from .test_graph_cli import GraphServer

PROMETHEUS = shutil.which("prometheus")
DEPLOYMENT, MODEL = "dash-deployment", "dash-model"
# What the measured phase sends (the warm-up sends one of each, rewarded 1.0).
N_OK, N_BAD, N_404, N_GRPC, N_INFER = 30, 6, 4, 10, 7
REWARDS = (1.0, 2.0, 3.0, 0.5, -1.5)
WARM_REWARD = 1.0
TIMER_SECONDS = 0.0125  # Tagged's TIMER reports 12.5 ms
GAUGE = 3.0  # and its GAUGE 3
GRAPH = Path(__file__).parents[2] / "examples" / "graph_chain"
GRAPH_DEPLOYMENT = "dash-graph"  # not the model's: the variables list the model alone
GRAPH_NODES = {"label", "scale", "score"}  # each called once per prediction
N_GRAPH = 8
NODE_PANEL = "Graph: per-node latency p50 / p99"


class Prometheus:
    """One `prometheus` process on 127.0.0.1 scraping `targets` every second."""

    # How long Prometheus may take to start answering its API (its storage and rule
    # set up first: a few seconds on a busy machine).
    START_SECONDS = 60.0

    def __init__(self, tmp_path: Path, *targets: str) -> None:
        (self.port,) = free_ports(1)
        config = tmp_path / "prometheus.yml"
        listed = ", ".join(f"'{t}'" for t in targets)
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: unitserve\n"
            "    metrics_path: /prometheus\n"
            f"    static_configs: [{{targets: [{listed}]}}]\n"
        )
        self.log_path = tmp_path / "prometheus.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        self.api = f"{self.base}/api/v1"
        self.started = False

    def wait_ready(self) -> None:
        """Until Prometheus says it is ready (``/-/ready``); fails at once if it exits."""

        def ready() -> bool:
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            try:
                return httpx.get(f"{self.base}/-/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=self.START_SECONDS, every=0.2)

    def get(self, path: str, **params: Any) -> Any:
        """One API answer's data. Until the first answer, a refused connection or an
        answer that is not JSON (Prometheus still starting) is tried again, within
        START_SECONDS; afterwards either is a failure."""
        deadline = time.monotonic() + self.START_SECONDS
        while True:
            try:
                answer = httpx.get(f"{self.api}/{path}", params=params, timeout=10).json()
                break
            except (httpx.TransportError, json.JSONDecodeError):
                if self.started or time.monotonic() > deadline:
                    raise
                assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
                time.sleep(0.2)
        self.started = True
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.get("query", **params)
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])

    def scrape_times(self, target: str) -> list[float]:
        """The timestamps of every scrape of `target` so far."""
        result = self.get("query", query=f'up{{instance="{target}"}}[10m]')["result"]
        return [float(t) for t, _ in result[0]["values"]] if result else []

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def _json_predict(server: Any, body: Any) -> int:
    return server.post("/predict", json=body).status_code


def _traffic(
    server: Any,
    channel: grpc.Channel,
    ok: int,
    bad: int,
    missing: int,
    rpcs: int,
    infers: int,
    rewards: tuple[float, ...],
) -> None:
    predict = channel.unary_unary(
        "/seldon.protos.Model/Predict",
        request_serializer=pb.SeldonMessage.SerializeToString,
        response_deserializer=pb.SeldonMessage.FromString,
    )
    infer = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=v2.ModelInferRequest.SerializeToString,
        response_deserializer=v2.ModelInferResponse.FromString,
    )
    for _ in range(ok):
        assert _json_predict(server, {"data": {"ndarray": [[1.0, 2.0]]}}) == 200
    for _ in range(bad):
        assert (
            server.post(
                "/predict", content=b"{not json", headers={"content-type": "application/json"}
            ).status_code
            == 400
        )
    for _ in range(missing):
        assert server.get("/no-such-path").status_code == 404
    for reward in rewards:
        answer = server.post(
            "/send-feedback", json={"request": {"data": {"ndarray": [[1.0]]}}, "reward": reward}
        )
        assert answer.status_code == 200, answer.text
    message = pb.SeldonMessage()
    message.data.ndarray.values.add().list_value.values.add().number_value = 1.0
    for _ in range(rpcs):
        predict(message, timeout=10)
    request = v2.ModelInferRequest(model_name="Tagged")
    request.inputs.add(name="x", datatype="FP64", shape=[1, 2]).contents.fp64_contents.extend(
        [1.0, 2.0]
    )
    for _ in range(infers):
        infer(request, timeout=10)


def _metrics(server: Any) -> list[tuple[str, dict[str, str], float]]:
    text = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).text
    return samples(text)


def _graph_traffic(graph: GraphServer, n: int) -> None:
    for _ in range(n):
        answer = graph.client.post("/api/v1.0/predictions", json={"data": {"ndarray": [[9, 7]]}})
        assert answer.status_code == 200, answer.text


def _node_calls(graph: GraphServer) -> dict[str, float]:
    """Calls of each node that the graph's own endpoint counts so far."""
    found: dict[str, float] = {}
    for name, labels, value in _metrics(graph):
        if name == "unitserve_graph_node_duration_seconds_count":
            found[labels["node"]] = found.get(labels["node"], 0) + value
    return found


def _workers(server: Any) -> dict[str, int]:
    return {
        labels["worker_id"]: int(labels["pid"])
        for name, labels, _ in _metrics(server)
        if name == "unitserve_worker_info"
    }


def _replace_a_worker(server: Any) -> None:
    """SIGKILL worker 0 and wait until a new process serves its slot (a `crash` restart)."""
    before = wait_until(lambda: (w := _workers(server)) and len(w) == 1 and w, timeout=30)
    os.kill(before["0"], signal.SIGKILL)
    wait_until(lambda: len(w := _workers(server)) == 1 and w["0"] != before["0"], timeout=30)


# Start-up probes of the test's server fixture: not part of what the test sends.
PROBES = ("ready", "live", "ping")
WARM_UP = 9  # requests the warm-up sends


def _requests_counted(server: Any) -> float:
    """Requests the test sent that unitserve's own endpoint counts so far."""
    return sum(
        v
        for n, labels, v in _metrics(server)
        if n == "unitserve_requests_total" and labels["operation"] not in PROBES
    )


def _by(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1]) for r in result
    }


def _only(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def _close(value: float, expected: float, rel: float = 1e-3) -> bool:
    return math.isclose(value, expected, rel_tol=rel, abs_tol=1e-9)


def _nonzero(by: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    return {k: v for k, v in by.items() if not (v == 0 or math.isnan(v))}


def _timer_bucket() -> tuple[float, float]:
    """The edges of the Seldon TIMER bucket that holds Tagged's 12.5 ms."""
    upper = next(b for b in SELDON_BUCKETS if b >= TIMER_SECONDS)
    lower = max([0.0, *(b for b in SELDON_BUCKETS if b < TIMER_SECONDS)])
    return lower, upper


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)")
def test_every_dashboard_panel_answers_what_was_sent(fresh_server, tmp_path):
    server = fresh_server(
        # One worker: which worker a request reaches is the kernel's choice, and a series
        # that first appears inside the window (the other worker's) has no sample before
        # the traffic, so no exact increase.
        "Tagged",
        "--workers",
        "1",
        env={"SELDON_DEPLOYMENT_ID": DEPLOYMENT, "PREDICTIVE_UNIT_ID": MODEL},
    )
    channel = grpc.insecure_channel(server.grpc_target)
    target = f"127.0.0.1:{server.metrics_port}"
    graph = GraphServer(
        GRAPH / "graph.yaml", cwd=GRAPH, env={"SELDON_DEPLOYMENT_ID": GRAPH_DEPLOYMENT}
    )
    graph_target = f"127.0.0.1:{graph.metrics_port}"
    prometheus = None
    try:
        wait_until(graph.ready, timeout=60)
        _graph_traffic(graph, 1)  # the graph's node series exist before the first scrape
        wait_until(lambda: _node_calls(graph) == dict.fromkeys(GRAPH_NODES, 1), timeout=10)
        # Warm-up: one of each, and a first restart, so that every series exists before
        # Prometheus's first scrape.
        _traffic(server, channel, 1, 1, 1, 1, 1, (WARM_REWARD,))
        # A worker's counts reach the shared files a few times a second: a worker killed
        # before that would take them with it.
        wait_until(lambda: _requests_counted(server) == 6, timeout=10)
        _replace_a_worker(server)
        _traffic(server, channel, 1, 0, 0, 1, 1, ())  # the new worker's series too
        wait_until(lambda: _requests_counted(server) == WARM_UP, timeout=10)

        prometheus = Prometheus(tmp_path, target, graph_target)
        prometheus.wait_ready()
        wait_until(
            lambda: _safe(
                lambda: all(len(prometheus.scrape_times(t)) >= 2 for t in (target, graph_target))
            ),
            timeout=30,
        )

        # The measured phase.
        _replace_a_worker(server)
        _traffic(server, channel, N_OK, N_BAD, N_404, N_GRPC, N_INFER, REWARDS)
        _graph_traffic(graph, N_GRAPH)
        sent = N_OK + N_BAD + N_404 + N_GRPC + N_INFER + len(REWARDS)
        wait_until(lambda: _requests_counted(server) == WARM_UP + sent, timeout=10)
        graph_calls = dict.fromkeys(GRAPH_NODES, 1 + N_GRAPH)
        wait_until(lambda: _node_calls(graph) == graph_calls, timeout=10)
        node_counts = (
            "sum by (node) (unitserve_graph_node_duration_seconds_count"
            f'{{instance="{graph_target}"}})'
        )
        wait_until(
            lambda: _safe(
                lambda: (
                    {
                        r["metric"]["node"]: float(r["value"][1])
                        for r in prometheus.query(node_counts)
                    }
                    == graph_calls
                )
            ),
            timeout=20,
        )
        # Prometheus has the final values, and one more scrape after them.
        wait_until(
            lambda: _safe(
                lambda: (
                    _only(
                        prometheus.query(
                            f'sum(unitserve_requests_total{{instance="{target}", '
                            f'operation!~"{"|".join(PROBES)}"}})'
                        )
                    )
                    == WARM_UP + sent
                )
            ),
            timeout=20,
        )
        counts = [len(prometheus.scrape_times(t)) for t in (target, graph_target)]
        wait_until(
            lambda: all(
                len(prometheus.scrape_times(t)) > n
                for t, n in zip((target, graph_target), counts, strict=True)
            ),
            timeout=10,
        )
        times = prometheus.scrape_times(target)
        first, last = times[0], times[-1]
        window = last - first
        # One millisecond more than the span of the samples: the first sample is inside
        # the window (its start is 1 ms before it, so nothing is extrapolated).
        window_ms = int(window * 1000) + 1

        # Grafana writes a multi-value variable as a regex alternation, its dots escaped
        # (a backslash doubled inside a PromQL string).
        escaped = _grafana_regex(target)
        values = {
            "datasource": "prometheus",
            "deployment": DEPLOYMENT,
            "model": MODEL,
            "instance": f"({escaped})",
            "worker": ".*",
            "counter": "tagged_calls_total",
            "gauge": "tagged_gauge",
            "timer": "tagged_timer",
            "__range": f"{window_ms}ms",
            "__rate_interval": f"{window_ms}ms",
            "__interval": "1s",
        }
        _check_variables(prometheus, values, target)

        checks = _expectations(window)
        dashboard = grafana.load()
        seen = set()
        table = []
        failed: list[tuple[tuple[str, ...], str, list[dict[str, Any]]]] = []
        for query in grafana.queries(dashboard):
            expr = grafana.substitute(query.expr, values)
            result = prometheus.query(expr, at=last)
            key = (query.panel, query.ref)
            seen.add(key)
            assert key in checks, f"no expectation for panel {key}: add one"
            table.append((query.panel, query.ref, [(r["metric"], r["value"][1]) for r in result]))
            if not checks[key](result):
                failed.append((key, expr, result))
        # The per-node panel again, for the graph's instance: each node's quantiles.
        graph_values = {**values, "instance": f"({_grafana_regex(graph_target)})"}
        for query in grafana.queries(dashboard):
            if query.panel != NODE_PANEL:
                continue
            expr = grafana.substitute(query.expr, graph_values)
            result = prometheus.query(expr, at=last)
            answered = [(r["metric"], r["value"][1]) for r in result]
            table.append((f"{query.panel} (graph)", query.ref, answered))
            if not _node_quantiles(result):
                failed.append(((query.panel, query.ref, "graph"), expr, result))
        assert not failed, "\n".join(map(str, failed))
        assert seen == set(checks), set(checks) - seen
        _write_table(tmp_path / "panel_results.txt", table)
    finally:
        channel.close()
        graph.stop()
        if prometheus is not None:
            prometheus.stop()


def _grafana_regex(value: str) -> str:
    """`value` as Grafana writes it into a regex, its dots escaped (a backslash
    doubled inside a PromQL string)."""
    return value.replace(".", "\\\\.")


def _node_quantiles(result: list[dict[str, Any]]) -> bool:
    """A quantile for each node of the chain, each a plausible duration (an in-process
    node's call: more than nothing, less than a second)."""
    got = _by(result, "node")
    return got.keys() == {(n,) for n in GRAPH_NODES} and all(0 < v < 1 for v in got.values())


def _safe(predicate: Callable[[], bool]) -> bool:
    """`predicate()`, False while Prometheus is not answering yet."""
    try:
        return predicate()
    except (httpx.TransportError, AssertionError, IndexError, ValueError, KeyError):
        return False


def _check_variables(prometheus: Prometheus, values: dict[str, str], target: str) -> None:
    """Each query variable's `label_values(selector, label)`, asked the way Grafana asks
    Prometheus for it, lists what the test's server has."""
    import re

    dashboard = grafana.load()
    expected = {
        "deployment": {DEPLOYMENT, GRAPH_DEPLOYMENT},  # every deployment scraped
        "model": {MODEL},
        "instance": {target},
        "worker": {"0"},
        "counter": {"tagged_calls_total"},
        "gauge": {"tagged_gauge"},
        "timer": {"tagged_timer"},
    }
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["definition"])
        assert match, variable["definition"]
        selector = grafana.substitute(match.group(1), values)
        found = prometheus.get(f"label/{match.group(2)}/values", **{"match[]": selector})
        regex = variable.get("regex", "")
        if regex:
            pattern = re.compile(regex.strip("/"))
            found = [
                (m.group(m.lastindex) if m.lastindex else m.group(0))
                for v in found
                if (m := pattern.fullmatch(v))
            ]
        assert set(found) == expected[variable["name"]], (variable["name"], found)


def _expectations(window: float) -> dict[tuple[str, str], Callable[[list[dict[str, Any]]], bool]]:
    """For each (panel title, refId): what its answer must be, from what the test sent."""
    rest_predicts = N_OK + N_BAD
    total = N_OK + N_BAD + N_404 + N_GRPC + N_INFER + len(REWARDS)
    errors = N_BAD + N_404
    predict_calls = N_OK + N_GRPC + N_INFER  # each calls the user's predict and metrics()
    lower, upper = _timer_bucket()

    def rates(expected: dict[tuple[str, ...], float], *labels: str):
        def check(result):
            got = _nonzero(_by(result, *labels))
            want = {k: n / window for k, n in expected.items()}
            return got.keys() == want.keys() and all(_close(got[k], want[k]) for k in want)

        return check

    def counts(expected: dict[tuple[str, ...], float], *labels: str):
        def check(result):
            got = _nonzero(_by(result, *labels))
            # 1 ms of extrapolation over a window of a few seconds: a ten-thousandth or
            # so, far from the next whole request
            return got.keys() == expected.keys() and all(
                round(got[k]) == expected[k] and _close(got[k], expected[k]) for k in expected
            )

        return check

    def quantiles(result):
        got = {k: v for k, v in _by(result, "operation").items() if not math.isnan(v)}
        # the operations that had requests in the window answer; a predict took < 1 s
        return set(got) == {("predict",), ("unknown",), ("send_feedback",), ("infer",)} and (
            0 < got[("predict",)] < 1
        )

    def exactly(value: float):
        return lambda result: _close(_only(result), value)

    def empty(result):
        return result == []

    p = "Latency p50 / p90 / p99 by operation"
    return {
        ("Requests per second by operation", "A"): rates(
            {
                ("predict", "rest"): rest_predicts,
                ("predict", "grpc"): N_GRPC,
                ("unknown", "rest"): N_404,
                ("send_feedback", "rest"): len(REWARDS),
                ("infer", "v2"): N_INFER,
            },
            "operation",
            "protocol",
        ),
        ("Errors per second by code and operation", "A"): rates(
            {("predict", "400"): N_BAD, ("unknown", "404"): N_404}, "operation", "code"
        ),
        ("Error ratio", "A"): exactly(errors / total),
        ("Requests in the time range by code", "A"): counts(
            {
                ("200",): N_OK + len(REWARDS),
                ("OK",): N_GRPC + N_INFER,
                ("400",): N_BAD,
                ("404",): N_404,
            },
            "code",
        ),
        ("Requests in flight", "A"): lambda r: set(_by(r, "protocol").values()) == {0},
        (p, "A"): quantiles,
        (p, "B"): quantiles,
        (p, "C"): quantiles,
        ("Mean latency by operation", "A"): quantiles,
        ("Open Inference Protocol: inferences per second by protocol and code", "A"): rates(
            {("v2", "OK"): N_INFER}, "protocol", "code"
        ),
        # Every request but the unknown paths reached the served model (named after its
        # class); one worker serves it.
        ("Requests per second by served model", "A"): rates({("Tagged",): total - N_404}, "model"),
        ("Workers serving each model", "A"): lambda r: _by(r, "model") == {("Tagged",): 1},
        # The model's instance is no graph: no node series (the graph's instance is
        # checked on its own, with `_node_quantiles`).
        (NODE_PANEL, "A"): empty,
        (NODE_PANEL, "B"): empty,
        ("Workers alive", "A"): exactly(1),
        ("Workers alive by instance", "A"): exactly(1),
        ("Worker restarts by reason", "A"): lambda r: _by(r, "reason") == {("crash",): 2},
        ("Worker restarts in the interval", "A"): counts({("crash",): 1}, "reason"),
        ("Rewarded feedback per second", "A"): rates({(MODEL,): len(REWARDS)}, "model_name"),
        ("Mean reward per feedback", "A"): exactly(sum(REWARDS) / len(REWARDS)),
        ("Total reward", "A"): exactly(WARM_REWARD + sum(REWARDS)),
        ("$counter per second", "A"): rates(
            {("predict",): predict_calls, ("feedback",): len(REWARDS)}, "method"
        ),
        ("$gauge", "A"): lambda r: bool(r) and all(float(x["value"][1]) == GAUGE for x in r),
        ("$timer p50 / p99", "A"): lambda r: (
            _by(r, "method").keys() == {("predict",), ("feedback",)}
            and all(lower <= v <= upper for v in _by(r, "method").values())
        ),
        ("$timer p50 / p99", "B"): lambda r: (
            _by(r, "method").keys() == {("predict",), ("feedback",)}
            and all(lower <= v <= upper for v in _by(r, "method").values())
        ),
    }


def _write_table(path: Path, table: list[tuple[str, str, list[Any]]]) -> None:
    lines = [f"{panel} [{ref}]: {result}" for panel, ref, result in table]
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
