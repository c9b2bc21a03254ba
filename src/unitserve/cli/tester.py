"""``unitserve test CONTRACT.json HOST PORT``: random requests shaped by a contract, and a
check of every answer against the contract's targets.

The flags and the contract format are those of seldon-core-microservice-tester, so an
existing contract and command line work unchanged. A contract lists ``features`` (the
columns of a request) and ``targets`` (the columns of an answer); each has a ``name``,
an ``ftype`` (``continuous`` with a ``dtype`` FLOAT or INT and an optional ``range``,
where ``"inf"`` leaves a side open, and an optional ``shape`` for several columns; or
``categorical`` with its ``values``) and an optional ``repeat`` (that many columns,
named name1, name2... for features and name:0, name:1... for targets).

Requests are generated as the original generates them (same distributions, values
rounded to three decimals, INT features as whole floats), so a model sees the same
kind of input from either tool. Unlike the original, each answer is checked: its
column names, count, types and ranges; a broken contract or a failed call makes the
exit status 1, with a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from unitserve.client import Client, ClientError

ENDPOINTS = ("predict", "send-feedback", "transform-input")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test",
        help="send random requests shaped by a contract and check the answers",
        description="Send requests generated from a contract (seldon-core-microservice-"
        "tester's format and flags) to a model microservice, and check each answer "
        "against the contract's targets. Exit status 1 when any answer breaks it.",
    )
    p.add_argument(
        "where",
        nargs="+",
        metavar="CONTRACT HOST PORT",
        help="the contract file, then the host and port (with --from-metadata: HOST PORT)",
    )
    p.add_argument("--endpoint", choices=ENDPOINTS, default="predict")
    p.add_argument("-b", "--batch-size", type=int, default=1, help="rows per request")
    p.add_argument("-n", "--n-requests", type=int, default=1, help="how many requests")
    p.add_argument("--grpc", action="store_true", help="send over gRPC (default REST)")
    p.add_argument("-t", "--tensor", action="store_true", help="send tensor, not ndarray")
    p.add_argument("-p", "--prnt", action="store_true", help="print requests and answers")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "ERROR"], default="ERROR")
    p.add_argument(
        "--from-metadata",
        action="store_true",
        help="build the contract from the model's metadata instead of a file",
    )
    p.add_argument("--seed", type=int, default=None, help="seed the random generator")
    p.set_defaults(func=run)


# ----------------------------------------------------------------------------- contract


class ContractError(ValueError):
    pass


def unfold(contract: dict[str, Any]) -> dict[str, Any]:
    """The contract with every ``repeat`` written out as that many columns."""
    if not isinstance(contract, dict) or not isinstance(contract.get("features"), list):
        raise ContractError("a contract is a JSON object with a list of 'features'")
    out: dict[str, list[dict[str, Any]]] = {"features": [], "targets": []}
    for key, sep, start in (("features", "", 1), ("targets", ":", 0)):
        for item in contract.get(key) or []:
            if not isinstance(item, dict) or "name" not in item or "ftype" not in item:
                raise ContractError(f"each of the contract's {key} needs a name and an ftype")
            repeat = item.get("repeat")
            if repeat is None:
                out[key].append(item)
                continue
            for i in range(int(repeat)):
                copy = {k: v for k, v in item.items() if k != "repeat"}
                copy["name"] = f"{item['name']}{sep}{i + start}"
                out[key].append(copy)
    return out


def _bound(value: Any) -> float:
    return math.inf if value == "inf" else float(value)


def _continuous(rng: np.random.Generator, f_range: list[Any], shape: list[int]) -> np.ndarray:
    lo, hi = f_range
    if lo == "inf" and hi == "inf":
        return rng.normal(size=shape)
    if lo == "inf":
        return float(hi) - rng.lognormal(size=shape)
    if hi == "inf":
        return float(lo) + rng.lognormal(size=shape)
    return rng.uniform(float(lo), float(hi), size=shape)


def generate(contract: dict[str, Any], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` rows of features: numeric columns as floats (INT ones whole), categorical
    columns as strings; a table mixing both is an object array, as the original's."""
    columns = []
    kinds = set()
    for feature in contract["features"]:
        kinds.add(feature["ftype"])
        if feature["ftype"] == "continuous":
            shape = [n, *feature.get("shape", [1])]
            batch = np.around(_continuous(rng, feature.get("range", ["inf", "inf"]), shape), 3)
            dtype = feature.get("dtype", "FLOAT")
            if dtype == "INT":
                batch = (batch + 0.5).astype(int).astype(float)
            elif dtype != "FLOAT":
                raise ContractError(f"feature {feature['name']!r}: unknown dtype {dtype!r}")
        elif feature["ftype"] == "categorical":
            values = feature.get("values") or []
            if not values:
                raise ContractError(f"feature {feature['name']!r} is categorical with no values")
            batch = np.array(values)[rng.integers(len(values), size=[n, 1])]
        else:
            raise ContractError(f"feature {feature['name']!r}: unknown ftype {feature['ftype']!r}")
        columns.append(batch)
    if len(kinds) == 1:
        return np.concatenate(columns, axis=1)
    return np.concatenate([c.astype(object) for c in columns], axis=1)


def from_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A contract from the model's metadata: continuous FLOAT columns (INT for integer
    datatypes), unbounded. A tensor entry (``name``, ``datatype``, ``shape``; a leading
    -1 is the batch) is one item as wide as its shape; a Seldon entry (``messagetype``
    with ``schema.names``) is one item per name. A tensor's columns have no names of
    their own, so an answer's column names are checked only when every target came
    with names."""

    def columns(tensors: Any, kind: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, tensor in enumerate(tensors or []):
            if not isinstance(tensor, dict):
                raise ContractError(f"{kind} {i} of the metadata is not an object")
            found = tensor.get("schema")
            schema: dict[str, Any] = found if isinstance(found, dict) else {}
            if "messagetype" in tensor and "datatype" not in tensor:
                names = schema.get("names") or []
                if tensor["messagetype"] not in ("ndarray", "tensor", "tftensor"):
                    raise ContractError(
                        f"{kind} {i} is {tensor['messagetype']}: no contract for it"
                    )
                if names:
                    out += [
                        {"name": str(n), "ftype": "continuous", "dtype": "FLOAT"} for n in names
                    ]
                    continue
                tensor = {"name": f"{kind}{i}", "shape": schema.get("shape") or []}
            shape = [int(d) for d in tensor.get("shape") or []]
            if shape and shape[0] == -1:
                shape = shape[1:]
            if any(d < 0 for d in shape):
                raise ContractError(f"{kind} {tensor.get('name')!r} has an open shape {shape}")
            datatype = str(tensor.get("datatype", "FP64"))
            if datatype == "BYTES":
                raise ContractError(f"{kind} {tensor.get('name')!r} holds BYTES: no contract")
            item: dict[str, Any] = {
                "name": tensor.get("name") or f"{kind}{i}",
                "ftype": "continuous",
                "dtype": "INT" if "INT" in datatype else "FLOAT",
                UNNAMED: True,
            }
            if math.prod(shape) != 1:
                item["shape"] = [math.prod(shape)]
            out.append(item)
        return out

    features = columns(metadata.get("inputs"), "input")
    if not features:
        raise ContractError("the model's metadata lists no inputs to build requests from")
    return {"features": features, "targets": columns(metadata.get("outputs"), "output")}


#: Marks a contract item built from a tensor, whose columns have no names to check.
UNNAMED = "_unnamed"


# ----------------------------------------------------------------------------- checks


def check(answer: Any, contract: dict[str, Any], rows: int) -> list[str]:
    """What in `answer` (an `Answer`) breaks the contract's targets; empty when nothing."""
    targets = contract["targets"]
    if not targets:
        return []
    if answer.kind not in ("ndarray", "tensor", "tftensor"):
        return [f"the answer holds {answer.kind or 'no data'}, not an array of targets"]
    problems = []
    names = answer.names
    expected = [t["name"] for t in targets]
    if names and names != expected and not any(t.get(UNNAMED) for t in targets):
        problems.append(f"the answer's names {names} are not the targets' {expected}")
    arr = np.asarray(answer.data)
    if arr.ndim == 1:
        arr = arr.reshape(rows, -1) if rows and arr.size % rows == 0 else arr.reshape(1, -1)
    table = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr
    if table.shape[0] != rows:
        problems.append(f"the answer has {table.shape[0]} rows for {rows} in the request")
    widths = [math.prod(t.get("shape", [1])) for t in targets]
    if table.shape[1] != sum(widths):
        return [*problems, f"the answer has {table.shape[1]} columns, the targets {sum(widths)}"]
    col = 0
    for target, width in zip(targets, widths, strict=True):
        values = table[:, col : col + width].reshape(-1)
        col += width
        problems += _check_column(target, values)
    return problems


def _check_column(target: dict[str, Any], values: np.ndarray) -> list[str]:
    name = target["name"]
    if target["ftype"] == "categorical":
        allowed = list(target.get("values") or [])
        bad = [v for v in values.tolist() if v not in allowed]
        return [f"target {name!r}: {bad[:3]} not among {allowed}"] if bad else []
    try:
        numbers = values.astype(float)
    except (TypeError, ValueError):
        return [f"target {name!r}: not numbers ({values[:3].tolist()})"]
    problems = []
    if target.get("dtype") == "INT" and not np.all(np.mod(numbers, 1) == 0):
        problems.append(f"target {name!r}: dtype INT but {numbers[:3].tolist()} are not whole")
    if "range" in target:
        lo, hi = (_bound(b) for b in target["range"])
        lo = -math.inf if target["range"][0] == "inf" else lo
        outside = numbers[(numbers < lo) | (numbers > hi)]
        if outside.size:
            shown = target["range"]
            problems.append(f"target {name!r}: {outside[:3].tolist()} outside the range {shown}")
    return problems


# ----------------------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> int:
    where = list(args.where)
    if args.from_metadata and len(where) == 2:
        where.insert(0, "")
    if len(where) != 3:
        print("unitserve test: error: give CONTRACT HOST PORT", file=sys.stderr)
        return 2
    contract_path, host, port_text = where
    if not port_text.isdigit():
        print(f"unitserve test: error: PORT must be a number, got {port_text!r}", file=sys.stderr)
        return 2
    transport = "grpc" if args.grpc else "rest"
    payload = "tensor" if args.tensor else "ndarray"
    rng = np.random.default_rng(args.seed)
    with Client(f"{host}:{port_text}", transport=transport, payload=payload) as client:
        try:
            if args.from_metadata:
                contract = unfold(from_metadata(client.metadata()))
            else:
                contract = unfold(json.loads(Path(contract_path).read_text()))
        except (OSError, ValueError, ClientError) as exc:
            print(f"unitserve test: error: no contract: {exc}", file=sys.stderr)
            return 2
        names = [f["name"] for f in contract["features"]]
        failed, broken = 0, 0
        for i in range(args.n_requests):
            try:
                batch = generate(contract, args.batch_size, rng)
            except ContractError as exc:
                print(f"unitserve test: error: {exc}", file=sys.stderr)
                return 2
            if args.prnt:
                print(f"{'-' * 40}\nSENDING NEW REQUEST:\n")
                print(batch)
            try:
                if args.endpoint == "send-feedback":
                    predicted = client.predict(batch, names=names)
                    sent = {"data": {"names": names, "ndarray": batch.tolist()}}
                    answer = client.feedback(sent, predicted, reward=1.0)
                elif args.endpoint == "transform-input":
                    answer = client.transform_input(batch, names=names)
                else:
                    answer = client.predict(batch, names=names)
            except ClientError as exc:
                failed += 1
                print(f"request {i + 1}: failed: {exc}")
                continue
            if args.prnt:
                print(f"RECEIVED RESPONSE:\n{json.dumps(answer.raw)}\n")
            if args.endpoint == "send-feedback":
                continue
            problems = check(answer, contract, args.batch_size)
            if problems:
                broken += 1
                for problem in problems:
                    print(f"request {i + 1}: {problem}")
    ok = args.n_requests - failed - broken
    summary = f"{args.n_requests} requests: {ok} kept the contract"
    if failed or broken:
        print(f"{summary}, {broken} broke it, {failed} failed", file=sys.stderr)
        return 1
    if args.prnt or args.n_requests:
        print(summary, file=sys.stderr)
    return 0
