"""Server CPU per request of the three-node local chain against one node, in-process.

No sockets and no load tool: a graph worker's REST app and a plain worker's REST app are
built as the workers build them (their served models, engines, invokers, request accounting and the
Prometheus recorder writing to a scratch multiprocess directory, on uvloop) and driven
with the same small body through the ASGI interface, one request at a time. What is
measured is this process's CPU time (every thread: the graph walks on a thread of its
own) per request; the two servers take turns round by round, and the best round of each
is kept, so that other work on a shared machine disturbs the ratio as little as it can.

    .venv/bin/python benchmarks/graph_cpu.py [--requests 3000] [--rounds 7]
    .venv/bin/python benchmarks/graph_cpu.py --profile graph   # cProfile of the chain

HTTP parsing (uvicorn, httptools) costs both servers the same and is left out, so the
ratio here is a little above what a client of the real servers sees.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop

from unitserve import component
from unitserve import metadata as model_metadata
from unitserve.calls import Invoker
from unitserve.graph import spec as graph_spec
from unitserve.graph.nodes import LocalNode
from unitserve.graph.serving import GraphInvoker, GraphModel, build_plan, make_nodes
from unitserve.graph.sources import LocalSource
from unitserve.graph.walk import Graph
from unitserve.metrics import worker as worker_metrics
from unitserve.models.model_settings import ModelSettings
from unitserve.models.registry import ModelRegistry
from unitserve.models.served_model import ServedModel
from unitserve.runtime import wiring
from unitserve.runtime.control import LocalChannel
from unitserve.settings import resolve
from unitserve.transport.accounting import RequestAccounting
from unitserve.transport.rest.app import RestApp

CHAIN = Path(__file__).parent / "models" / "graph"
# The benchmark's small payload.
BODY = orjson.dumps({"data": {"names": ["a", "b", "c", "d"], "ndarray": [[1.0, 2.0, 3.0, 4.0]]}})
PATH = "/api/v1.0/predictions"


def plain_server(metrics: worker_metrics.WorkerMetrics) -> tuple[RestApp, Invoker]:
    """`unitserve serve` of the chain's model node (built on the running loop)."""
    settings = resolve(argparse.Namespace(), {}, "Node")
    user = component.construct(component.import_user_class("Node", str(CHAIN / "model")), {})
    model = ServedModel(
        ModelSettings.of(settings),
        user,
        recorder=metrics,
        threads=settings.user_threads,
        request_timeout=settings.request_timeout,
        batch_observer=metrics,
        loaded=True,
    )
    model.state.mark_ready()
    registry = ModelRegistry(LocalChannel())
    registry.add(model)
    assert model.invoker is not None
    app = wiring.rest_app(settings, registry, RequestAccounting(metrics), None)
    return app, model.invoker


def graph_server(metrics: worker_metrics.WorkerMetrics) -> tuple[RestApp, GraphInvoker]:
    """`unitserve graph benchmarks/models/graph/chain.yaml` (built on the running loop)."""
    settings = resolve(argparse.Namespace(), {}, "graph")
    spec = graph_spec.load(CHAIN / "chain.yaml")
    sources: dict[str, LocalSource | None] = {
        node.name: LocalSource(CHAIN / node.name, "Node") for node in spec.root.walk()
    }
    plan = build_plan(spec, sources, routing_injection=True)
    nodes = make_nodes(plan, settings, metrics, loaded=True)
    for node in nodes.values():
        if isinstance(node, LocalNode):
            node.metadata = model_metadata.build(None, node.spec.model_metadata, node.spec.image)
    graph = Graph(spec, nodes, routing_injection=True, metrics=metrics)
    model = GraphModel(graph, settings)
    model.state.mark_ready()
    registry = ModelRegistry(LocalChannel())
    registry.add(model)
    assert isinstance(model.invoker, GraphInvoker)
    app = wiring.rest_app(settings, registry, RequestAccounting(metrics), None)
    return app, model.invoker


async def post(app: RestApp, body: bytes) -> tuple[int, bytes]:
    """One POST through the ASGI interface, as uvicorn hands it to the app."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 9000),
        "http_version": "1.1",
        "scheme": "http",
        "root_path": "",
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


async def cpu_per_request(app: RestApp, metrics: Any, requests: int) -> float:
    """Microseconds of process CPU per request over `requests` sequential requests,
    with the recorder's periodic flush included."""
    started = time.process_time()
    for _ in range(requests):
        await post(app, BODY)
    metrics.flush()
    return (time.process_time() - started) / requests * 1e6


async def main(args: argparse.Namespace) -> dict[str, Any]:
    metrics = worker_metrics.WorkerMetrics(resolve(argparse.Namespace(), {}, "bench"), "0")
    plain, plain_invoker = plain_server(metrics)
    chain, chain_invoker = graph_server(metrics)
    try:
        for app in (plain, chain):
            status, answer = await post(app, BODY)
            assert status == 200, answer
            await cpu_per_request(app, metrics, 300)  # warm-up
        if args.profile:
            app = chain if args.profile == "graph" else plain
            invoker: Any = chain_invoker if args.profile == "graph" else plain_invoker
            # cProfile sees one thread: the event loop's, and the thread that runs the
            # walk (or the user call) with a profiler of its own.
            on_loop, off_loop = cProfile.Profile(), cProfile.Profile()
            name = "_walk" if args.profile == "graph" else "_run_sync"
            inner = getattr(invoker, name)

            def profiled(*a: Any) -> Any:
                off_loop.enable()
                try:
                    return inner(*a)
                finally:
                    off_loop.disable()

            setattr(invoker, name, profiled)
            on_loop.enable()
            await cpu_per_request(app, metrics, args.requests)
            on_loop.disable()
            for title, profile in (("event loop", on_loop), ("worker thread", off_loop)):
                print(f"==================== {title}", file=sys.stderr)
                stats = pstats.Stats(profile, stream=sys.stderr)
                stats.sort_stats("tottime").print_stats(args.top)
            return {}
        rounds: dict[str, list[float]] = {"single": [], "graph": []}
        for _ in range(args.rounds):
            rounds["single"].append(await cpu_per_request(plain, metrics, args.requests))
            rounds["graph"].append(await cpu_per_request(chain, metrics, args.requests))
        single, graph = min(rounds["single"]), min(rounds["graph"])
        return {
            "single_us": round(single, 1),
            "graph_us": round(graph, 1),
            "ratio": round(graph / single, 3),
            "rounds": {k: [round(v, 1) for v in vs] for k, vs in rounds.items()},
        }
    finally:
        plain_invoker.close()
        chain_invoker.close()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per server")
    parser.add_argument("--profile", choices=["graph", "single"], help="cProfile one server")
    parser.add_argument("--top", type=int, default=35, help="rows of the profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="graph-cpu-") as directory:
        worker_metrics.use_directory(directory)
        print(json.dumps(uvloop.run(main(args)), indent=1))


if __name__ == "__main__":
    cli()
