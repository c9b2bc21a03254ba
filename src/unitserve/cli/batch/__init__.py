"""``unitserve batch``: send every line of a file to a model, write the answers in order.

The flags, their environment variables and the line formats are those of
seldon-batch-processor, so an existing job runs unchanged: ``--data-type data`` lines are
bare arrays (``[[1, 2]]``), ``json`` and ``str`` lines are sent as jsonData and strData,
``raw`` lines are whole payloads; each request carries the tags ``batch_id``,
``batch_index`` and ``batch_instance_id``, and ``--batch-size`` rows go in one request,
the answer split back into one line per row.

What it adds: output line N always answers input line N (the original writes in
completion order); a request that still fails after its retries gets a failure line
(``{"status": {"info": "FAILURE", ...}}``), never a silent gap; ``--resume`` keeps the
complete lines an interrupted run wrote and carries on after them; ``--protocol v2``
sends the lines with the Open Inference Protocol; a progress bar (or periodic lines
when not on a terminal) and a closing summary. The input is read as it is sent and at
most a few requests per worker wait to be written, so memory stays flat on any file.

Here: the flags, their checks, the client and the closing summary. `sending` makes
lines into requests and answers into lines, `pipeline` runs the workers and the
ordered writer, `progress` counts and shows.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from unitserve.cli.batch.pipeline import kept_lines, process
from unitserve.cli.batch.progress import Stats
from unitserve.client import AsyncClient
from unitserve.client.lean import LeanAsyncClient

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": 30, "error": 40}


def _env(name: str, default: Any) -> Any:
    return os.environ.get(f"SELDON_BATCH_{name}", default)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        add_help=False,  # -h is --host, as in seldon-batch-processor
        help="send every line of a file to a model and write the answers in order",
        description="Send each line of --input-data-path to a model (REST or gRPC, Seldon "
        "or Open Inference Protocol) with a pool of workers, and write one answer line "
        "per input line, in input order, to --output-data-path. The flags and "
        "SELDON_BATCH_* variables are seldon-batch-processor's.",
    )
    p.add_argument("--help", action="help", help="show this help and exit")
    p.add_argument("-d", "--deployment-name", default=_env("DEPLOYMENT_NAME", ""))
    p.add_argument(
        "-g",
        "--gateway-type",
        choices=["ambassador", "istio", "seldon"],
        default=_env("GATEWAY_TYPE", "istio"),
        help="seldon: call the microservice's /api/v1.0/predictions directly",
    )
    p.add_argument("-n", "--namespace", default=_env("NAMESPACE", "default"))
    p.add_argument(
        "-h",
        "--host",
        default=_env("HOST", "istio-ingressgateway.istio-system.svc.cluster.local:80"),
    )
    # In seldon-batch-processor -t is declared twice and the later one, --batch-interval,
    # is the one that takes effect: kept so, for its command lines to mean the same here.
    p.add_argument("--transport", choices=["rest", "grpc"], default=_env("TRANSPORT", "rest"))
    p.add_argument(
        "-a",
        "--data-type",
        choices=["data", "json", "str", "raw"],
        default=_env("DATA_TYPE", "data"),
    )
    p.add_argument(
        "-p",
        "--payload-type",
        choices=["ndarray", "tensor", "tftensor"],
        default=_env("PAYLOAD_TYPE", "ndarray"),
    )
    p.add_argument("-w", "--workers", type=int, default=int(_env("WORKERS", 1)))
    p.add_argument(
        "-r",
        "--retries",
        type=int,
        default=int(_env("RETRIES", 3)),
        help="tries per request (connection failures and 503 are tried again)",
    )
    p.add_argument(
        "-i", "--input-data-path", default=_env("INPUT_DATA_PATH", "/assets/input-data.txt")
    )
    p.add_argument(
        "-o", "--output-data-path", default=_env("OUTPUT_DATA_PATH", "/assets/output-data.txt")
    )
    p.add_argument(
        "-m", "--method", choices=["predict", "feedback"], default=_env("METHOD", "predict")
    )
    p.add_argument("-l", "--log-level", choices=list(LOG_LEVELS), default=_env("LOG_LEVEL", "info"))
    p.add_argument("-b", "--benchmark", action="store_true", default=bool(_env("BENCHMARK", "")))
    p.add_argument(
        "-u",
        "--batch-id",
        default=_env("ID", None),
        help="the batch_id tag of every request (default: a new UUID for each run)",
    )
    p.add_argument("-s", "--batch-size", type=int, default=int(_env("SIZE", 1)))
    p.add_argument("-t", "--batch-interval", type=float, default=float(_env("MIN_INTERVAL", 0)))
    p.add_argument("--use-ssl", type=_bool, default=_bool(_env("USE_SSL", "false")))
    p.add_argument("--call-credentials-token", default=_env("CALL_CREDENTIALS_TOKEN", ""))
    p.add_argument("--ssl-verify", type=_bool, default=_bool(_env("SSL_VERIFY", "true")))
    # ours
    p.add_argument(
        "--protocol",
        choices=["seldon", "v2"],
        default="seldon",
        help="v2: the Open Inference Protocol (model name: --model, else --deployment-name)",
    )
    p.add_argument("--model", default="", help="the model's name for --protocol v2")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the complete lines of an interrupted run's output and carry on after them",
    )
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "lines", "none"],
        default="auto",
        help="a bar on a terminal, periodic lines otherwise (auto)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per try")
    p.set_defaults(func=run)


def _bool(text: str) -> bool:
    return str(text).strip().lower() in ("1", "true", "yes", "on")


def _client(args: argparse.Namespace) -> AsyncClient:
    gateway = ""
    headers: dict[str, str] = {}
    if args.gateway_type != "seldon":
        gateway = f"/seldon/{args.namespace}/{args.deployment_name}"
        if args.transport == "grpc":
            headers = {"seldon": args.deployment_name, "namespace": args.namespace}
    if args.call_credentials_token:
        headers["authorization"] = f"Bearer {args.call_credentials_token}"
    scheme = "https" if args.use_ssl or args.call_credentials_token else "http"
    # REST goes through the lean HTTP/1.1 pool: a general HTTP library's own work per
    # request is several times the rest of a small line's.
    kind = LeanAsyncClient if args.transport == "rest" else AsyncClient
    return kind(
        f"{scheme}://{args.host}" if args.transport == "rest" else args.host,
        protocol=args.protocol,
        transport=args.transport,
        model=args.model or args.deployment_name or None,
        payload=args.payload_type,
        gateway=gateway if args.protocol == "seldon" else None,
        timeout=args.timeout,
        retries=max(0, args.retries - 1),
        max_connections=max(1, args.workers),
        headers=headers,
    )


def _check(args: argparse.Namespace) -> str | None:
    if args.method == "feedback" and args.data_type != "raw":
        return "--method feedback needs --data-type raw"
    if args.data_type not in ("data", "raw") and args.batch_size > 1:
        return "--batch-size above 1 needs --data-type data or raw"
    if args.protocol == "v2" and not (args.model or args.deployment_name):
        return "--protocol v2 needs the model's name (--model or --deployment-name)"
    if args.protocol == "v2" and args.data_type == "json":
        return "--protocol v2 reads --data-type data, str or raw lines (JSON has no tensor form)"
    if args.protocol == "v2" and args.method != "predict":
        return "--protocol v2 sends predictions only"
    if args.gateway_type != "seldon" and not args.deployment_name:
        return f"--gateway-type {args.gateway_type} needs --deployment-name"
    if not Path(args.input_data_path).is_file():
        return f"no input file at {args.input_data_path}"
    return None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=LOG_LEVELS[args.log_level], format="%(asctime)s %(levelname)s %(message)s"
    )
    # One line per request from the HTTP library would bury the progress and the summary.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, LOG_LEVELS[args.log_level]))
    if args.batch_id is None:
        args.batch_id = str(uuid.uuid1())
    problem = _check(args)
    if problem:
        print(f"unitserve batch: error: {problem}", file=sys.stderr)
        return 2
    output = Path(args.output_data_path)
    skip = kept_lines(output) if args.resume else 0
    if skip:
        print(f"batch: resuming after the {skip} lines already in {output}", file=sys.stderr)
    started = time.monotonic()

    async def main() -> Stats:
        client = _client(args)
        try:
            with open(output, "a" if args.resume else "w", encoding="utf-8") as out:
                stats = await process(args, client, out, skip)
                stats.retried = client.retried
                return stats
        finally:
            await client.close()

    try:
        import uvloop

        stats = uvloop.run(main())
    except ImportError:  # pragma: no cover - uvloop is a dependency
        stats = asyncio.run(main())
    elapsed = time.monotonic() - started
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0.0

    print(
        f"batch: {stats.sent} requests sent, {stats.ok} lines ok, {stats.failed} failed, "
        f"{stats.retried} retried, "
        f"{stats.sent / elapsed if elapsed else 0:.1f} req/s, "
        f"p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms",
        file=sys.stderr,
    )
    if args.benchmark:
        print(f"Elapsed time: {elapsed}", file=sys.stderr)
    return 1 if stats.failed else 0
