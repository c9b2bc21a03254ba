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
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from unitserve.client import AsyncClient, ClientError
from unitserve.client.lean import LeanAsyncClient
from unitserve.errors import ServingError
from unitserve.protocol.v2 import datatypes, tensors

log = logging.getLogger("unitserve.batch")

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


# ----------------------------------------------------------------------------- jobs


@dataclass(slots=True)
class Job:
    """A request to send: consecutive input lines, and where its answer lines go."""

    first: int
    lines: list[str]
    done: asyncio.Future[list[str]] = field(repr=False)


class Stats:
    def __init__(self, total_bytes: int, start_byte: int) -> None:
        self.sent = self.ok = self.failed = self.retried = 0
        self.lines = 0
        self.latencies: list[float] = []
        self.seen = 0
        self.started = time.monotonic()
        self.total_bytes, self.read_bytes, self.start_byte = total_bytes, start_byte, start_byte

    def latency(self, seconds: float) -> None:
        # A fixed-size random sample keeps memory flat on any file.
        self.seen += 1
        if len(self.latencies) < 100_000:
            self.latencies.append(seconds)
        else:
            slot = random.randrange(self.seen)
            if slot < len(self.latencies):
                self.latencies[slot] = seconds


def failure(reason: str, tags: dict[str, Any]) -> str:
    return json.dumps({"status": {"info": "FAILURE", "reason": reason, "status": 1}, "meta": tags})


def _tags(args: argparse.Namespace, index: int, instance: str) -> dict[str, Any]:
    return {"batch_id": args.batch_id, "batch_instance_id": instance, "batch_index": index}


@functools.cache
def _node() -> int:
    return uuid.getnode()


def _uuid1() -> str:
    """A new time-based UUID (version 1), as the original's tags carry. Given the node,
    the standard library makes it in Python, a few times faster than asking the system's
    uuid library for each line."""
    return str(uuid.uuid1(_node()))


def _array(value: Any) -> np.ndarray:
    """An input line's array as the original sends it: numbers go through protobuf's
    ListValue there, which holds doubles only, so whole numbers come back as floats."""
    arr = np.array(value)
    return arr.astype(float) if arr.dtype.kind in "biu" else arr


async def _predict_one(client: AsyncClient, args: argparse.Namespace, job: Job) -> list[str]:
    index, line = job.first, job.lines[0]
    instance = _uuid1()
    tags = _tags(args, index, instance)
    try:
        data = json.loads(line)
        if args.protocol == "v2":
            return [await _infer(client, args, data, tags)]
        if args.method == "feedback":
            answer = await client.feedback(
                data.get("request"),
                data.get("response"),
                data.get("reward", 0.0),
                data.get("truth"),
            )
            raw = dict(answer.raw)
            meta = dict(raw.get("meta") or {})
            meta["tags"] = {**meta.get("tags", {}), **tags}
            raw["meta"] = meta
            return [json.dumps(raw)]
        if args.data_type == "data":
            answer = await client.predict(_array(data), tags=tags)
        elif args.data_type == "str":
            answer = await client.predict(str_data=data, tags=tags)
        elif args.data_type == "json":
            answer = await client.predict(json_data=data, tags=tags)
        else:
            data["meta"] = data.get("meta") or {}
            data["meta"]["tags"] = {**(data["meta"].get("tags") or {}), **tags}
            answer = await client.predict(raw=data)
        return [json.dumps(answer.raw)]
    except (ClientError, ServingError, ValueError, TypeError, AttributeError, KeyError) as exc:
        return [failure(str(exc), tags if args.method == "predict" else {"tags": tags})]


async def _infer(
    client: AsyncClient, args: argparse.Namespace, data: Any, tags: dict[str, Any]
) -> str:
    """One line with the Open Inference Protocol: a bare array (``data``) or a whole
    inference request (``raw``); the answer as the protocol's JSON, tags in its parameters."""
    if args.data_type == "raw":
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), list):
            raise ValueError("a raw line must be an inference request: an object with inputs")
        inputs = {}
        for i, item in enumerate(data["inputs"]):
            if not isinstance(item, dict):
                raise ValueError(f"input {i} of the raw line is not an object")
            where = f"input {i}"
            datatype = datatypes.by_name(item.get("datatype"), where)
            shape = tensors.read_shape(item.get("shape"), where)
            inputs[str(item.get("name", f"input-{i}"))] = tensors.from_json(
                item.get("data"), datatype, shape, datatype.is_bytes, where
            )
    elif isinstance(data, str):
        # --data-type str: the line's text as one BYTES element.
        inputs = {"input-0": np.array([data], dtype=object)}
    else:
        inputs = {"input-0": np.asarray(data)}
    answer = await client.infer(inputs, parameters={k: v for k, v in tags.items()})
    outputs = []
    for name, arr in answer.outputs.items():
        datatype = datatypes.of_array(arr, name)
        values = arr.reshape(-1).tolist()
        if datatype.is_bytes:
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
        outputs.append(
            {"name": name, "datatype": datatype.name, "shape": list(arr.shape), "data": values}
        )
    body: dict[str, Any] = {"model_name": answer.model_name}
    if answer.model_version:
        body["model_version"] = answer.model_version
    body["id"] = answer.id
    body["parameters"] = {**answer.parameters, **tags}
    body["outputs"] = outputs
    return json.dumps(body)


async def _predict_many(client: AsyncClient, args: argparse.Namespace, job: Job) -> list[str]:
    """Several lines in one request; the answer split into one line per input line."""
    puid = _uuid1()
    indexes = range(job.first, job.first + len(job.lines))
    instances = [f"{puid}-item-{n}" for n in range(len(job.lines))]
    base = {"batch_id": args.batch_id}
    row_tags = [
        {**base, "batch_index": i, "batch_instance_id": inst}
        for i, inst in zip(indexes, instances, strict=True)
    ]
    try:
        loaded = [json.loads(line) for line in job.lines]
        raw_tags: list[dict[str, Any]] = [{} for _ in loaded]
        if args.data_type == "raw":
            raw, payload = _join_raw(loaded, base)
            raw_tags = [(d.get("meta") or {}).get("tags") or {} for d in loaded]
            answer = await client.predict(raw=raw)
        else:
            payload = args.payload_type
            arrays = [_array(x) for x in loaded]
            if any(a.shape[:1] != (1,) for a in arrays):
                raise ValueError(
                    "When using mini-batching each row should contain single instance."
                )
            answer = await client.predict(np.concatenate(arrays), payload=payload, tags=base)
    except (ClientError, ServingError, ValueError, TypeError, KeyError, AttributeError) as exc:
        return [failure(str(exc), tags) for tags in row_tags]
    out = []
    response = answer.raw
    for i, tags in enumerate(row_tags):
        try:
            new = copy.deepcopy(response)
            meta = new.setdefault("meta", {})
            meta["tags"] = {**raw_tags[i], **(meta.get("tags") or {})}
            if payload == "ndarray":
                new["data"]["ndarray"] = [response["data"]["ndarray"][i]]
            elif payload == "tensor":
                shape = response["data"]["tensor"]["shape"]
                rows = np.array(response["data"]["tensor"]["values"]).reshape(shape)
                new["data"]["tensor"]["shape"][0] = 1
                new["data"]["tensor"]["values"] = rows[i].tolist()
            else:
                raise ValueError("only ndarray and tensor answers can be split into rows")
            meta["tags"]["batch_index"] = tags["batch_index"]
            meta["tags"]["batch_instance_id"] = tags["batch_instance_id"]
            out.append(json.dumps(new))
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            out.append(failure(str(exc), tags))
    return out


def _join_raw(loaded: list[Any], tags: dict[str, Any]) -> tuple[dict[str, Any], str]:
    first = loaded[0].get("data") or {}
    names = [(d.get("data") or {}).get("names") for d in loaded]
    if any(n != names[0] for n in names):
        raise ValueError("All names in mini-batch must be the same.")
    if "ndarray" in first:
        arrays = [np.array(d["data"]["ndarray"]) for d in loaded]
        if any(a.shape[:1] != (1,) for a in arrays):
            raise ValueError("When using mini-batching each row should contain single instance.")
        data = {"names": names[0], "ndarray": np.concatenate(arrays).tolist()}
        return {"data": data, "meta": {"tags": tags}}, "ndarray"
    if "tensor" in first:
        shapes = [d["data"]["tensor"]["shape"] for d in loaded]
        if any(s[0] != 1 or s[1:] != shapes[0][1:] for s in shapes):
            raise ValueError("each line must hold one instance, all of the same width")
        values = [v for d in loaded for v in d["data"]["tensor"]["values"]]
        tensor = {"shape": [len(loaded), *shapes[0][1:]], "values": values}
        return {"data": {"names": names[0], "tensor": tensor}, "meta": {"tags": tags}}, "tensor"
    raise ValueError("raw input with predict in mini-batch mode requires data payload")


# ----------------------------------------------------------------------------- the run


def _read_jobs(
    stream: IO[bytes], skip: int, size: int, stats: Stats
) -> Iterator[tuple[int, list[str]]]:
    """(first line's index, lines) for each request, after the `skip` lines kept."""
    index = 0
    chunk: list[str] = []
    first = skip
    for raw in stream:
        stats.read_bytes += len(raw)
        if index < skip:
            index += 1
            continue
        if not chunk:
            first = index
        chunk.append(raw.decode("utf-8").rstrip("\r\n"))
        index += 1
        if len(chunk) == size:
            yield first, chunk
            chunk = []
    if chunk:
        yield first, chunk


def kept_lines(path: Path) -> int:
    """The complete lines an interrupted run wrote (a cut-off last line is removed)."""
    if not path.exists():
        return 0
    count = 0
    end = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            count += block.count(b"\n")
            last = block.rfind(b"\n")
            if last >= 0:
                end = f.tell() - len(block) + last + 1
    if end != path.stat().st_size:
        os.truncate(path, end)
    return count


class Progress:
    def __init__(self, mode: str, stats: Stats) -> None:
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.stats = mode, stats
        self.last = time.monotonic()

    def tick(self, final: bool = False) -> None:
        now = time.monotonic()
        every = 0.2 if self.mode == "bar" else 10.0
        if self.mode == "none" or (not final and now - self.last < every):
            return
        self.last = now
        s = self.stats
        elapsed = max(now - s.started, 1e-9)
        rate = s.lines / elapsed
        todo = s.total_bytes - s.start_byte
        share = (s.read_bytes - s.start_byte) / todo if todo > 0 else 1.0
        eta = elapsed * (1 - share) / share if share > 0 else 0.0
        if self.mode == "bar":
            filled = int(30 * share)
            bar = "#" * filled + "-" * (30 - filled)
            end = "\n" if final else ""
            sys.stderr.write(
                f"\r[{bar}] {share:4.0%} {s.lines} lines {rate:.0f}/s ETA {eta:.0f}s{end}"
            )
        else:
            sys.stderr.write(
                f"batch: {s.lines} lines written, {s.failed} failed, {rate:.0f} lines/s, "
                f"{share:.0%} read, ETA {eta:.0f}s\n"
            )
        sys.stderr.flush()


async def _process(args: argparse.Namespace, client: AsyncClient, out: IO[str], skip: int) -> Stats:
    path = Path(args.input_data_path)
    stats = Stats(path.stat().st_size, 0)
    progress = Progress(args.progress, stats)
    workers = max(1, args.workers)
    todo: asyncio.Queue[Job | None] = asyncio.Queue(workers * 2)
    ordered: asyncio.Queue[Job | None] = asyncio.Queue(workers * 4)
    send = _predict_many if args.batch_size > 1 and args.protocol == "seldon" else _predict_one

    async def worker() -> None:
        while (job := await todo.get()) is not None:
            started = time.monotonic()
            try:
                lines = await send(client, args, job)
            except Exception as exc:  # a line the code did not foresee
                # The writer waits for every job in order: a job left unanswered would
                # stop the whole run, so whatever went wrong becomes its failure lines.
                log.exception("batch: line %d could not be sent", job.first)
                instance = _uuid1()
                lines = [
                    failure(f"{type(exc).__name__}: {exc}", _tags(args, job.first + n, instance))
                    for n in range(len(job.lines))
                ]
            took = time.monotonic() - started
            stats.sent += 1
            stats.latency(took)
            job.done.set_result(lines)
            if args.batch_interval > 0 and took < args.batch_interval:
                await asyncio.sleep(args.batch_interval - took)

    async def writer() -> None:
        while (job := await ordered.get()) is not None:
            for line in await job.done:
                out.write(line + "\n")
                stats.lines += 1
                if line.startswith('{"status": {"info": "FAILURE"'):
                    stats.failed += 1
                else:
                    stats.ok += 1
            progress.tick()

    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(worker()) for _ in range(workers)]
    write_task = asyncio.create_task(writer())
    with open(path, "rb") as stream:
        if skip:
            stats.start_byte = -1  # set once the kept lines are skipped
        for first, lines in _read_jobs(stream, skip, args.batch_size, stats):
            if stats.start_byte < 0:
                stats.start_byte = stats.read_bytes - sum(len(x) + 1 for x in lines)
            job = Job(first, lines, loop.create_future())
            # The writer's queue first: it bounds how far reading runs ahead of writing.
            await ordered.put(job)
            await todo.put(job)
        stats.start_byte = max(stats.start_byte, 0)
    for _ in tasks:
        await todo.put(None)
    await ordered.put(None)
    await asyncio.gather(*tasks)
    await write_task
    progress.tick(final=True)
    return stats


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
                stats = await _process(args, client, out, skip)
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
